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
  return f.specials == sim::Specials::fn ? "NaN only (S.1111.111), no inf" : "NaN only, no inf";
}
}  // namespace

void add_formats_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("formats", "List the built-in number formats and their limits");
  cmd->footer("Custom formats are written eXmY (X = 2..11 exponent bits, Y = 0..52 mantissa bits), e.g. e6m9, "
              "with an IEEE bias of 2^(X-1)-1; eXmYfn has no infinity (like e4m3fn).");
  cmd->callback([] {
    TextTable table({"format", "bits", "e", "m", "bias", "max finite", "min normal", "min subnormal", "epsilon",
                     "specials"});
    for (const sim::Format& f : sim::standard_formats()) {
      table.add({f.name, std::to_string(f.total_bits()), std::to_string(f.exponent_bits),
                 std::to_string(f.mantissa_bits), std::to_string(f.bias), sim::shortest(f.max_finite()),
                 with_power(f.min_normal()), with_power(f.min_subnormal()), with_power(f.epsilon()), specials(f)});
    }
    table.print(std::cout);
  });
}

}  // namespace mpscope::cli
