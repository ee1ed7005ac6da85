// `mpscope inspect VALUE`: a terminal Float Toy. For each format: the bit fields, the exact value the input rounds
// to, the rounding error and its sign, the category, the neighbours and the ulp.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "app/cli/commands.hpp"
#include "app/cli/terminal.hpp"
#include "sim/decimal.hpp"
#include "sim/format.hpp"
#include "sim/rounding.hpp"

namespace mpscope::cli {

namespace {

struct InspectOptions {
  std::string value;
  std::vector<std::string> formats;
  std::string rounding = "nearest";
  bool bits = false;
  bool saturate = false;
  bool no_subnormals = false;
};

std::string binary(std::uint64_t x, int width) {
  std::string s;
  for (int i = width - 1; i >= 0; --i) s += ((x >> i) & 1) != 0 ? '1' : '0';
  return s;
}

std::string hex(std::uint64_t x, int bits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llX", (bits + 3) / 4, static_cast<unsigned long long>(x));
  return buf;
}

std::uint64_t parse_bits(const std::string& text, const sim::Format& f) {
  std::uint64_t v = 0;
  std::size_t used = 0;
  try {
    if (text.starts_with("0b") || text.starts_with("0B")) {
      v = std::stoull(text.substr(2), &used, 2);
      used += 2;
    } else {
      v = std::stoull(text, &used, 0);  // 0x.. hex, or decimal
    }
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || text[0] == '-')
    throw InputError("--bits: '" + text + "' is not a bit pattern (write it as 0x3C00, 0b0011110000000000 or 15360)");
  if (f.total_bits() < 64 && (v >> f.total_bits()) != 0)
    throw InputError("--bits: " + text + " has more than the " + std::to_string(f.total_bits()) + " bits of " + f.name);
  return v;
}

std::string error_direction(double rounded, const sim::ParsedReal& input) {
  const std::string d = sim::difference(rounded, input);
  if (d == "0") return "exact";
  return d[0] == '-' ? "rounded down" : "rounded up";
}

void describe(std::ostream& out, const sim::Format& f, std::uint64_t bits, const sim::ParsedReal* input,
              const Palette& colour) {
  const int m = f.mantissa_bits, e = f.exponent_bits;
  const double value = sim::decode(bits, f);
  const sim::Category category = sim::classify_bits(bits, f);
  std::string title = f.name + "  (e" + std::to_string(e) + "m" + std::to_string(m) +
                      (f.specials == sim::Specials::fn ? "fn" : "") + ", bias " + std::to_string(f.bias);
  if (!f.switches().empty()) title += ", " + f.switches();
  out << title << ")\n";
  out << "  bits        " << colour.sign() << ((bits >> (e + m)) & 1) << colour.reset() << " " << colour.exponent()
      << binary((bits >> m) & f.exponent_field_max(), e) << colour.reset() << " " << colour.mantissa()
      << (m > 0 ? binary(bits & f.mantissa_mask(), m) : "-") << colour.reset() << "   " << hex(bits, f.total_bits())
      << "\n";
  out << "  value       " << sim::exact_decimal(value) << "\n";
  if (input != nullptr) {
    if (category == sim::Category::nan && input->kind != sim::ParsedReal::Kind::nan) {
      out << "  error       overflow: no finite value of " << f.name << " is this large, and it has no infinity\n";
    } else if (category == sim::Category::infinite && input->kind == sim::ParsedReal::Kind::finite) {
      out << "  error       overflow to infinity\n";
    } else if (input->kind == sim::ParsedReal::Kind::finite) {
      out << "  error       " << sim::difference(value, *input) << "  relative "
          << sim::relative_difference(value, *input) << "  (" << error_direction(value, *input) << ")\n";
    }
  }
  out << "  category    " << sim::to_string(category) << "\n";
  if (std::isfinite(value)) {
    // Past the largest finite value of a format without infinity there is only NaN: no neighbour.
    const auto neighbour = [](double x) { return std::isnan(x) ? std::string("none") : sim::shortest(x); };
    out << "  neighbours  " << neighbour(sim::next_down(value, f)) << "  <  x  <  " << neighbour(sim::next_up(value, f))
        << "\n";
    out << "  ulp         " << sim::shortest(sim::ulp(value, f)) << "\n";
  }
}

void run_inspect(const InspectOptions& o) {
  std::vector<sim::Format> formats;
  for (const auto& name : o.formats) {
    try {
      formats.push_back(sim::parse_format(name));
    } catch (const std::invalid_argument& e) {
      throw InputError(std::string("--format: ") + e.what());
    }
  }
  if (formats.empty()) formats.assign(sim::standard_formats().begin(), sim::standard_formats().end());
  for (auto& f : formats) {
    if (o.saturate) f = f.with_overflow(sim::Overflow::saturate);
    if (o.no_subnormals) f = f.with_subnormals(false);
  }
  sim::Rounding mode{};
  try {
    mode = sim::parse_rounding(o.rounding);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("--rounding: ") + e.what());
  }
  if (mode == sim::Rounding::stochastic)
    throw InputError("--rounding: stochastic rounding has no single answer; use quantize --rounding stochastic");

  const Palette colour{use_colour(stdout)};
  std::ostringstream out;
  if (o.bits) {
    if (formats.size() != 1) throw InputError("--bits needs exactly one --format (the pattern's format)");
    describe(out, formats[0], parse_bits(o.value, formats[0]), nullptr, colour);
  } else {
    sim::ParsedReal input;
    try {
      input = sim::parse_real(o.value);
    } catch (const std::invalid_argument& e) {
      throw InputError(e.what());
    }
    out << "input " << o.value << ", rounding " << sim::to_string(mode) << "\n\n";
    for (std::size_t i = 0; i < formats.size(); ++i) {
      if (i > 0) out << "\n";
      describe(out, formats[i], sim::encode(input, formats[i], mode), &input, colour);
    }
  }
  std::cout << out.str();
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Show how a value is stored in each format (a terminal Float Toy)");
  cmd->add_option("value", options->value, "A decimal or hex-float number: 0.1, -2.5, 1e-8, 0x1p-24, inf, nan")
      ->required();
  cmd->add_option("-f,--format", options->formats, "Format(s) to show (default: all built-in formats)")
      ->delimiter(',');
  cmd->add_option("-r,--rounding", options->rounding, "nearest, toward-zero, up or down")->capture_default_str();
  cmd->add_flag("--bits", options->bits, "Read VALUE as a bit pattern of the one --format (0x3C00, 0b..., 15360)");
  cmd->add_flag("--saturate", options->saturate, "Overflow saturates to the largest finite value");
  cmd->add_flag("--no-subnormals", options->no_subnormals, "Flush results below the smallest normal to zero");
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace mpscope::cli
