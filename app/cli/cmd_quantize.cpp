// `mpscope quantize`: round every element of an .npy array to a format; report what rounding did.
#include <chrono>
#include <iostream>

#include "app/cli/commands.hpp"
#include "app/cli/files.hpp"
#include "sim/npy.hpp"
#include "sim/round_array.hpp"

namespace mpscope::cli {

namespace {

struct QuantizeOptions {
  std::string format;
  std::string rounding = "nearest";
  std::uint64_t seed = 0;
  bool saturate = false;
  bool no_subnormals = false;
  bool force = false;
  std::string input, output;
};

std::string share(std::int64_t count, std::int64_t total) {
  if (total == 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld (%.4g%%)", static_cast<long long>(count), 100.0 * static_cast<double>(count) / static_cast<double>(total));
  return buf;
}

void run_quantize(const QuantizeOptions& o) {
  sim::Format f;
  sim::Rounding mode{};
  try {
    f = sim::parse_format(o.format);
    mode = sim::parse_rounding(o.rounding);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
  if (o.saturate) f = f.with_overflow(sim::Overflow::saturate);
  if (o.no_subnormals) f = f.with_subnormals(false);
  if (!f.values_fit_float32())
    throw InputError("--format " + o.format + ": its values do not all fit the float32 output (quantize writes float32)");
  check_input(o.input);
  check_output(o.output, o.force, {o.input});

  const sim::NpyArray in = sim::read_npy(o.input);
  std::vector<float> rounded(static_cast<std::size_t>(in.size()));
  sim::RandomStream random(o.seed);
  sim::RoundingEffects effects;
  const auto start = std::chrono::steady_clock::now();
  if (in.dtype == sim::DType::float32) {
    const auto values = in.values<float>(o.input);
    sim::round_array(values, rounded, f, mode, &random);
    effects = sim::count_rounding_effects(values, rounded, f);
  } else if (in.dtype == sim::DType::float64) {
    const auto values = in.values<double>(o.input);
    std::vector<double> wide(values.size());
    sim::round_array(values, wide, f, mode, &random);
    effects = sim::count_rounding_effects(values, wide, f);
    for (std::size_t i = 0; i < wide.size(); ++i) rounded[i] = static_cast<float>(wide[i]);  // exact: f fits float32
  } else {
    throw InputError(o.input + ": expected float32 or float64 data, found " + std::string(sim::to_string(in.dtype)));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sim::write_npy(o.output, sim::NpyArray::from<float>(rounded, in.shape));

  std::cerr << "quantized " << in.size() << " values " << in.shape_string() << " to " << f.name
            << (f.switches().empty() ? "" : " (" + f.switches() + ")") << ", rounding " << sim::to_string(mode)
            << " in " << seconds * 1e3 << " ms\n"
            << "  underflow (nonzero -> 0)      " << share(effects.underflow, effects.elements) << "\n"
            << "  subnormal results             " << share(effects.subnormal, effects.elements) << "\n"
            << "  overflow (finite -> inf/NaN)  " << share(effects.overflow, effects.elements) << "\n";
  if (f.overflow == sim::Overflow::saturate)
    std::cerr << "  saturated (clamped to max)    " << share(effects.saturated, effects.elements) << "\n";
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  auto* cmd = app.add_subcommand("quantize", "Round every value of an .npy array (float32 or float64) to a format; "
                                             "writes float32 holding the rounded values");
  cmd->add_option("-f,--format", o->format, "Target format (fp16, bf16, e4m3fn, e5m2, tf32, eXmY, ...)")->required();
  cmd->add_option("-r,--rounding", o->rounding, "nearest, toward-zero, up, down or stochastic")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the stochastic-rounding stream (same seed, same result)")
      ->capture_default_str();
  cmd->add_flag("--saturate", o->saturate, "Overflow saturates to the largest finite value instead of inf/NaN");
  cmd->add_flag("--no-subnormals", o->no_subnormals, "Flush results below the smallest normal to zero");
  cmd->add_flag("--force", o->force, "Replace OUT if it exists");
  cmd->add_option("in", o->input, "Input .npy (float32 or float64, C order)")->required();
  cmd->add_option("out", o->output, "Output .npy (float32)")->required();
  cmd->callback([o] { run_quantize(*o); });
}

}  // namespace mpscope::cli
