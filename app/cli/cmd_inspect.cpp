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
#include "sim/inspect.hpp"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"

namespace mpscope::cli {

namespace {

struct InspectOptions {
  std::string value;
  std::vector<std::string> formats;
  std::string rounding;  // "": nearest, or toward-zero for the FP8 accumulator
  bool bits = false;
  bool saturate = false;
  bool no_subnormals = false;
};

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

void describe(std::ostream& out, const sim::Format& f, std::uint64_t bits, const sim::ParsedReal* input,
              const Palette& colour) {
  const sim::FormatReading r = sim::read_bits(f, bits, input);
  const int m = f.mantissa_bits, e = f.exponent_bits;
  std::string title = f.name + "  (e" + std::to_string(e) + "m" + std::to_string(m) +
                      (f.specials == sim::Specials::fn ? "fn" : "") + ", bias " + std::to_string(f.bias);
  if (f.name == sim::fp8_accumulator().name)
    title += ", Hopper's FP8 accumulator chain: binary32's range, 14 significant bits, each block's result cut toward zero";
  if (f.specials == sim::Specials::none) title += ", no inf/NaN, saturating";
  if (f.specials == sim::Specials::unsigned_scale) title += ", unsigned power of two, no zero";
  if (!f.switches().empty()) title += ", " + f.switches();
  out << title << ")\n";
  out << "  bits        " << colour.sign() << (f.is_signed() ? std::to_string(r.sign) : "-") << colour.reset()
      << " " << colour.exponent()
      << sim::binary_digits(r.exponent_field, e) << colour.reset() << " " << colour.mantissa()
      << (m > 0 ? sim::binary_digits(r.mantissa_field, m) : "-") << colour.reset() << "   "
      << sim::hex_digits(bits, f.total_bits()) << "\n";
  out << "  value       " << r.exact << "\n";
  if (!r.error.empty())
    out << "  error       " << r.error << "  relative " << r.relative_error << "  (" << r.direction << ")\n";
  else if (!r.direction.empty())
    out << "  error       " << r.direction << "\n";
  out << "  category    " << sim::to_string(r.category) << "\n";
  if (r.ulp) {
    // Past the largest finite value of a format without infinity there is only NaN: no neighbour.
    const auto neighbour = [](std::optional<double> x) { return x ? sim::shortest(*x) : std::string("none"); };
    out << "  neighbours  " << neighbour(r.next_down) << "  <  x  <  " << neighbour(r.next_up) << "\n";
    out << "  ulp         " << sim::shortest(*r.ulp) << "\n";
  }
}

void run_inspect(const InspectOptions& o) {
  std::vector<sim::Format> formats;
  for (const auto& name : o.formats) {
    if (name == sim::fp8_accumulator().name) {
      formats.push_back(sim::fp8_accumulator());
      continue;
    }
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
    // the FP8 accumulator chain cuts toward zero: its default when it is the only format
    const bool accumulator = formats.size() == 1 && formats[0].name == sim::fp8_accumulator().name;
    mode = sim::parse_rounding(o.rounding.empty() ? (accumulator ? "toward-zero" : "nearest") : o.rounding);
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
      if (input.kind == sim::ParsedReal::Kind::nan && !formats[i].has_nan()) {
        out << formats[i].name << "  has no NaN: every pattern is a number\n";
        continue;
      }
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
  cmd->add_option("-f,--format", options->formats, "Format(s) to show (default: all built-in formats; also fp8acc, the "
                                                   "14-bit chain of Hopper's FP8 GEMMs)")
      ->delimiter(',');
  cmd->add_option("-r,--rounding", options->rounding, "nearest (the default), toward-zero (the default for fp8acc, the "
                                                      "FP8 accumulator), up or down");
  cmd->add_flag("--bits", options->bits, "Read VALUE as a bit pattern of the one --format (0x3C00, 0b..., 15360)");
  cmd->add_flag("--saturate", options->saturate, "Overflow saturates to the largest finite value");
  cmd->add_flag("--no-subnormals", options->no_subnormals, "Flush results below the smallest normal to zero");
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace mpscope::cli
