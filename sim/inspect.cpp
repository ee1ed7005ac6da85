#include "sim/inspect.hpp"

#include <cmath>
#include <cstdio>

#include "sim/rounding.hpp"

namespace mpscope::sim {

FormatReading read_bits(const Format& f, std::uint64_t bits, const ParsedReal* input) {
  FormatReading r;
  r.format = f;
  r.bits = bits;
  const int m = f.mantissa_bits, e = f.exponent_bits;
  r.sign = static_cast<int>((bits >> (e + m)) & 1);
  r.exponent_field = (bits >> m) & f.exponent_field_max();
  r.mantissa_field = bits & f.mantissa_mask();
  r.value = decode(bits, f);
  r.category = classify_bits(bits, f);
  r.exact = exact_decimal(r.value);
  if (input != nullptr) {
    if (r.category == Category::nan && !f.is_signed() && input->negative) {
      r.direction = f.name + " has no negative values (NaN)";
    } else if (r.category == Category::nan && input->kind != ParsedReal::Kind::nan) {
      r.direction = "overflow: no finite value of " + f.name + " is this large, and it has no infinity";
    } else if (r.category == Category::infinite && input->kind == ParsedReal::Kind::finite) {
      r.direction = "overflow to infinity";
    } else if (input->kind == ParsedReal::Kind::finite) {
      r.error = difference(r.value, *input);
      r.relative_error = relative_difference(r.value, *input);
      r.direction = r.error == "0" ? "exact" : (r.error[0] == '-' ? "rounded down" : "rounded up");
    }
  }
  if (std::isfinite(r.value)) {
    const auto neighbour = [](double x) { return std::isnan(x) ? std::optional<double>{} : std::optional<double>{x}; };
    r.next_down = neighbour(sim::next_down(r.value, f));
    r.next_up = neighbour(sim::next_up(r.value, f));
    r.ulp = sim::ulp(r.value, f);
  }
  return r;
}

std::string binary_digits(std::uint64_t x, int width) {
  std::string s;
  for (int i = width - 1; i >= 0; --i) s += ((x >> i) & 1) != 0 ? '1' : '0';
  return s;
}

std::string hex_digits(std::uint64_t x, int bits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llX", (bits + 3) / 4, static_cast<unsigned long long>(x));
  return buf;
}

}  // namespace mpscope::sim
