#include "sim/format.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace mpscope::sim {

int Format::emax() const {
  // ieee, unsigned_scale and mantissa-less formats reserve the all-ones exponent; fn and none keep it for finite
  // values.
  const bool all_ones_finite = (specials == Specials::fn || specials == Specials::none) && mantissa_bits > 0;
  const int top_field = static_cast<int>(exponent_field_max()) - (all_ones_finite ? 0 : 1);
  return top_field - bias;
}

std::uint64_t Format::max_finite_bits() const {
  if (mantissa_bits == 0) return (exponent_field_max() - 1) << mantissa_bits;
  if (specials == Specials::none) return (exponent_field_max() << mantissa_bits) | mantissa_mask();
  if (specials == Specials::fn) return (exponent_field_max() << mantissa_bits) | (mantissa_mask() - 1);
  return ((exponent_field_max() - 1) << mantissa_bits) | mantissa_mask();
}

std::uint64_t Format::infinity_bits() const { return exponent_field_max() << mantissa_bits; }

std::uint64_t Format::nan_bits() const {
  if (!has_nan()) throw std::logic_error(name + " has no NaN encoding");
  if (mantissa_bits == 0) return exponent_field_max();
  if (specials == Specials::fn) return (exponent_field_max() << mantissa_bits) | mantissa_mask();
  return (exponent_field_max() << mantissa_bits) | (std::uint64_t{1} << (mantissa_bits - 1));
}

double Format::max_finite() const {
  const std::uint64_t mantissa = max_finite_bits() & mantissa_mask();
  return std::ldexp(static_cast<double>((std::uint64_t{1} << mantissa_bits) + mantissa), emax() - mantissa_bits);
}
double Format::min_normal() const { return std::ldexp(1.0, emin()); }
double Format::min_subnormal() const { return std::ldexp(1.0, emin() - mantissa_bits); }
double Format::epsilon() const { return std::ldexp(1.0, -mantissa_bits); }

bool Format::within_float32() const {
  return mantissa_bits <= 23 && emin() >= -126 && emax() <= 127 && emin() - mantissa_bits >= -149;
}

bool Format::values_fit_float32() const {
  return mantissa_bits <= 23 && emax() <= 127 && emin() - mantissa_bits >= -149;
}

Format Format::with_subnormals(bool keep) const {
  Format f = *this;
  f.subnormals = keep;
  return f;
}

Format Format::with_overflow(Overflow mode) const {
  Format f = *this;
  if (saturates_always()) return f;  // nothing to overflow to
  f.overflow = mode;
  return f;
}

bool Format::saturates_always() const {
  return specials == Specials::none || specials == Specials::unsigned_scale;
}

std::string Format::switches() const {
  std::string s;
  if (!subnormals && has_zero()) s += "no-subnormals";
  if (overflow == Overflow::saturate && !saturates_always()) s += s.empty() ? "saturate" : ",saturate";
  return s;
}

bool operator==(const Format& a, const Format& b) {
  return a.exponent_bits == b.exponent_bits && a.mantissa_bits == b.mantissa_bits && a.bias == b.bias &&
         a.subnormals == b.subnormals && a.overflow == b.overflow && a.specials == b.specials;
}

Format make_format(int exponent_bits, int mantissa_bits, Specials specials) {
  if (exponent_bits < 2 || exponent_bits > 11)
    throw std::invalid_argument("exponent bits must be 2..11, got " + std::to_string(exponent_bits));
  if (mantissa_bits < 0 || mantissa_bits > 52)
    throw std::invalid_argument("mantissa bits must be 0..52, got " + std::to_string(mantissa_bits));
  if (specials == Specials::fn && mantissa_bits == 0)
    throw std::invalid_argument("an fn format needs at least one mantissa bit (its NaN is S.1..1.1..1)");
  if (specials == Specials::none && mantissa_bits == 0)
    throw std::invalid_argument("a format without specials needs at least one mantissa bit");
  if (specials == Specials::unsigned_scale && mantissa_bits != 0)
    throw std::invalid_argument("an unsigned scale format has no mantissa bits");
  Format f;
  f.exponent_bits = exponent_bits;
  f.mantissa_bits = mantissa_bits;
  f.bias = (1 << (exponent_bits - 1)) - 1;
  f.specials = specials;
  if (f.saturates_always()) f.overflow = Overflow::saturate;
  if (specials == Specials::unsigned_scale) f.subnormals = false;  // every field but all-ones is a power of two
  // (snprintf rather than string concatenation: GCC 12 reports a false -Wrestrict on the latter)
  char name[16];
  std::snprintf(name, sizeof name, "e%dm%d%s", exponent_bits, mantissa_bits, specials == Specials::fn ? "fn" : "");
  f.name = name;
  return f;
}

namespace {
Format named(int e, int m, const char* name, Specials specials = Specials::ieee) {
  Format f = make_format(e, m, specials);
  f.name = name;
  return f;
}

const std::array<Format, 7>& standard_table() {
  static const std::array<Format, 7> table = {
      named(11, 52, "fp64"), named(8, 23, "fp32"), named(8, 10, "tf32"), named(5, 10, "fp16"),
      named(8, 7, "bf16"),   named(5, 2, "e5m2"),  named(4, 3, "e4m3fn", Specials::fn)};
  return table;
}

bool parse_int(std::string_view text, int& out) {
  if (text.empty()) return false;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

const Format& fp64() { return standard_table()[0]; }
const Format& fp32() { return standard_table()[1]; }
const Format& tf32() { return standard_table()[2]; }
const Format& fp16() { return standard_table()[3]; }
const Format& bf16() { return standard_table()[4]; }
const Format& e5m2() { return standard_table()[5]; }
const Format& e4m3fn() { return standard_table()[6]; }
std::span<const Format> standard_formats() { return standard_table(); }

namespace {
const std::array<Format, 4>& microscaling_table() {
  // (named apart from the IEEE-style eXmY of the same shapes, which keep their names and their inf and NaN)
  static const std::array<Format, 4> table = {
      named(3, 2, "fp6_e3m2", Specials::none), named(2, 3, "fp6_e2m3", Specials::none),
      named(2, 1, "fp4_e2m1", Specials::none), named(8, 0, "ue8m0", Specials::unsigned_scale)};
  return table;
}
}  // namespace

const Format& fp6_e3m2() { return microscaling_table()[0]; }
const Format& fp6_e2m3() { return microscaling_table()[1]; }
const Format& fp4_e2m1() { return microscaling_table()[2]; }
const Format& ue8m0() { return microscaling_table()[3]; }
std::span<const Format> microscaling_formats() { return microscaling_table(); }

Format parse_format(std::string_view text) {
  const std::string s = lower(text);
  for (const Format& f : standard_table())
    if (s == f.name) return f;
  if (s == "half" || s == "float16") return fp16();
  if (s == "float" || s == "float32" || s == "single") return fp32();
  if (s == "double" || s == "float64") return fp64();
  if (s == "bfloat16") return bf16();
  if (s == "e4m3" || s == "fp8_e4m3") return e4m3fn();  // the only E4M3 in use (OCP / NVIDIA / PyTorch e4m3fn)
  if (s == "fp8_e5m2") return e5m2();
  for (const Format& f : microscaling_table())
    if (s == f.name) return f;
  if (s == "fp4") return fp4_e2m1();
  if (s == "e8m0fnu") return ue8m0();  // PyTorch's float8_e8m0fnu

  // eXmY or eXmYfn
  if (s.size() >= 4 && s[0] == 'e') {
    std::string_view body(s);
    body.remove_prefix(1);
    Specials specials = Specials::ieee;
    if (body.ends_with("fn")) {
      specials = Specials::fn;
      body.remove_suffix(2);
    }
    const auto m_pos = body.find('m');
    int e = 0, m = 0;
    if (m_pos != std::string_view::npos && parse_int(body.substr(0, m_pos), e) &&
        parse_int(body.substr(m_pos + 1), m)) {
      try {
        return make_format(e, m, specials);
      } catch (const std::invalid_argument& err) {
        throw std::invalid_argument("format '" + std::string(text) + "': " + err.what());
      }
    }
  }
  throw std::invalid_argument("unknown format '" + std::string(text) +
                              "' (expected fp64, fp32, tf32, fp16, bf16, e5m2, e4m3fn, fp6_e3m2, fp6_e2m3, fp4_e2m1, "
                              "ue8m0, or eXmY / eXmYfn with X = 2..11 exponent bits and Y = 0..52 mantissa bits)");
}

std::string_view to_string(Rounding mode) {
  switch (mode) {
    case Rounding::nearest_even: return "nearest";
    case Rounding::toward_zero: return "toward-zero";
    case Rounding::up: return "up";
    case Rounding::down: return "down";
    case Rounding::stochastic: return "stochastic";
  }
  return "?";
}

Rounding parse_rounding(std::string_view text) {
  const std::string s = lower(text);
  if (s == "nearest" || s == "nearest-even" || s == "rne" || s == "rn") return Rounding::nearest_even;
  if (s == "toward-zero" || s == "zero" || s == "rz" || s == "truncate") return Rounding::toward_zero;
  if (s == "up" || s == "ru" || s == "toward-positive") return Rounding::up;
  if (s == "down" || s == "rd" || s == "toward-negative") return Rounding::down;
  if (s == "stochastic" || s == "sr") return Rounding::stochastic;
  throw std::invalid_argument("unknown rounding '" + std::string(text) +
                              "' (expected nearest, toward-zero, up, down or stochastic)");
}

std::string_view to_string(Category category) {
  switch (category) {
    case Category::zero: return "zero";
    case Category::subnormal: return "subnormal";
    case Category::normal: return "normal";
    case Category::infinite: return "infinite";
    case Category::nan: return "NaN";
  }
  return "?";
}

std::string with_article(const std::string& name) {
  const bool vowel_sound = !name.empty() && std::string_view("aefhilmnorsx").find(name[0]) != std::string_view::npos;
  return (vowel_sound ? "an " : "a ") + name;
}

}  // namespace mpscope::sim
