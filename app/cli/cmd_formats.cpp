// `mpscope formats`: every built-in format with its parameters and limits.
#include <cmath>
#include <iostream>

#include "app/cli/commands.hpp"
#include "app/cli/table.hpp"
#include "sim/decimal.hpp"
#include "sim/format.hpp"

namespace mpscope::cli {

namespace {
std::string with_power(double x) {
  const int e = std::ilogb(x);
  const bool power_of_two = std::ldexp(1.0, e) == x;
  return sim::shortest(x) + (power_of_two ? " (2^" + std::to_string(e) + ")" : "");
}

std::string specials(const sim::Format& f) {
  if (f.has_infinity()) return "inf, NaN";
  switch (f.specials) {
    case sim::Specials::fn: return "NaN only (S.1111.111), no inf";
    case sim::Specials::none: return "none: all finite, saturates";
    case sim::Specials::unsigned_scale: return "NaN (0xFF); unsigned, no zero";
    default: return "NaN only, no inf";
  }
}
}  // namespace

void add_formats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("formats", "List the built-in number formats and their limits");
  cmd->footer("The last four are OCP Microscaling's (MX v1.0) element formats and its block scale (ue8m0).\n"
              "Custom formats are written eXmY (X = 2..11 exponent bits, Y = 0..52 mantissa bits), e.g. e6m9, "
              "with an IEEE bias of 2^(X-1)-1; eXmYfn has no infinity (like e4m3fn). e4m3 means e4m3fn, the only "
              "E4M3 in use.");
  cmd->callback([] {
    TextTable table({"format", "bits", "e", "m", "bias", "max finite", "min normal", "min subnormal", "epsilon",
                     "specials"});
    const auto add = [&table](const sim::Format& f) {
      const bool has_subnormals = f.has_zero();
      table.add({f.name, std::to_string(f.total_bits()), std::to_string(f.exponent_bits),
                 std::to_string(f.mantissa_bits), std::to_string(f.bias), sim::shortest(f.max_finite()),
                 with_power(f.min_normal()), has_subnormals ? with_power(f.min_subnormal()) : "-",
                 with_power(f.epsilon()), specials(f)});
    };
    for (const sim::Format& f : sim::standard_formats()) add(f);
    for (const sim::Format& f : sim::microscaling_formats()) add(f);
    table.print(std::cout);
  });
}

}  // namespace mpscope::cli
