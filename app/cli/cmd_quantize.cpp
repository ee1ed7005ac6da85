// `mpscope quantize`: round every element of an .npy array to a format, or quantize it in blocks to a block-scaled
// format (sim/block_scaling.hpp); report what rounding did.
#include <chrono>
#include <cmath>
#include <iostream>

#include "app/cli/commands.hpp"
#include "app/cli/files.hpp"
#include "sim/block_scaling.hpp"
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
  // block-scaled formats
  std::string scale_rule;  // "" = ocp
  int axis = -1;
  std::string scales;
};

std::string compact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string blocks_text(const sim::BlockFormat& f, const sim::BlockQuantized& q, int axis) {
  const std::string count = std::to_string(q.row_blocks * q.blocks_per_row);
  if (f.block == 0) return "one scale for the whole tensor";
  if (f.block_rows != 1)
    return count + " tiles of " + std::to_string(f.block_rows) + " rows x " + std::to_string(f.block) + " along axis " +
           std::to_string(axis) + " (rows: the other axes)";
  return count + " blocks of " + std::to_string(f.block) + " along axis " + std::to_string(axis);
}

std::string share(std::int64_t count, std::int64_t total) {
  if (total == 0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld (%.4g%%)", static_cast<long long>(count), 100.0 * static_cast<double>(count) / static_cast<double>(total));
  return buf;
}

// A float32 or float64 array's values as float32 (float64 rounded to nearest: block quantizers take float32).
std::vector<float> float32_values(const sim::NpyArray& in, const std::string& path, bool& narrowed) {
  narrowed = in.dtype == sim::DType::float64;
  if (in.dtype == sim::DType::float32) {
    const auto v = in.values<float>(path);
    return {v.begin(), v.end()};
  }
  if (in.dtype == sim::DType::float64) {
    const auto v = in.values<double>(path);
    return {v.begin(), v.end()};
  }
  throw InputError(path + ": expected float32 or float64 data, found " + std::string(sim::to_string(in.dtype)));
}

void run_block_quantize(const QuantizeOptions& o) {
  const sim::BlockFormat& f = sim::block_format(o.format);
  sim::BlockOptions options;
  try {
    options.rounding = sim::parse_element_rounding(o.rounding);
    if (!o.scale_rule.empty()) options.rule = sim::parse_scale_rule(o.scale_rule);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string(e.what()) + (o.scale_rule.empty() ? " (--rounding)" : ""));
  }
  if (!o.scale_rule.empty() && f.scale != sim::ScaleKind::e8m0)
    throw InputError("--scale-rule: " + f.name + " has E4M3 block scales; the rules ocp and round-up choose MX formats' "
                     "power-of-two scales");
  if (o.saturate || o.no_subnormals)
    throw InputError("--saturate and --no-subnormals apply to element formats; " + f.name + "'s elements always saturate "
                     "and keep subnormals");
  options.seed = o.seed;
  check_input(o.input);
  check_output(o.output, o.force, {o.input});
  if (!o.scales.empty()) check_output(o.scales, o.force, {o.input, o.output});

  const sim::NpyArray in = sim::read_npy(o.input);
  const auto rank = static_cast<int>(in.shape.size());
  if (rank == 0) throw InputError(o.input + ": a scalar has no axis to block along");
  if (o.axis < -rank || o.axis >= rank)
    throw InputError("--axis " + std::to_string(o.axis) + ": " + o.input + " has " + std::to_string(rank) + " axes " +
                     in.shape_string());
  const int axis = o.axis < 0 ? o.axis + rank : o.axis;
  bool narrowed = false;
  const std::vector<float> values = float32_values(in, o.input, narrowed);

  // (before, length, after) -> rows of `length` along the axis, blocked, and back
  std::int64_t before = 1, after = 1;
  for (int d = 0; d < axis; ++d) before *= in.shape[static_cast<std::size_t>(d)];
  for (int d = axis + 1; d < rank; ++d) after *= in.shape[static_cast<std::size_t>(d)];
  const std::int64_t length = in.shape[static_cast<std::size_t>(axis)], rows = before * after;
  std::vector<float> lines(values.size());
  const auto index = [&](std::int64_t row, std::int64_t i) {  // element i of row `row` in the array's layout
    return static_cast<std::size_t>((row / after * length + i) * after + row % after);
  };
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < length; ++i) lines[static_cast<std::size_t>(r * length + i)] = values[index(r, i)];
  const auto start = std::chrono::steady_clock::now();
  const sim::BlockQuantized q = sim::quantize_blocks(lines, rows, length, f, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<float> out(values.size());
  double squared = 0;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < length; ++i) {
      const auto at = static_cast<std::size_t>(r * length + i);
      out[index(r, i)] = q.values[at];
      const double d = static_cast<double>(q.values[at]) - static_cast<double>(lines[at]);
      if (std::isfinite(d)) squared += d * d;
    }
  const std::int64_t blocks = q.blocks_per_row;
  const bool per_row = f.block > 0 && f.block_rows == 1;  // scales in the array's shape, the axis counting blocks
  if (!o.scales.empty()) {
    // E8M0 or E4M3 bytes; float32 scales (FP8 current and block scaling) as the float32 1 / scale
    const auto place = [&](auto& target, const auto& source) {
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t b = 0; b < blocks; ++b)
          target[static_cast<std::size_t>((r / after * blocks + b) * after + r % after)] = source[static_cast<std::size_t>(r * blocks + b)];
    };
    std::vector<std::int64_t> shape = in.shape;
    shape[static_cast<std::size_t>(axis)] = blocks;
    if (!per_row) shape = {q.row_blocks, q.blocks_per_row};
    if (f.scale == sim::ScaleKind::fp32) {
      std::vector<float> scales = q.block_scales;
      if (per_row) place(scales, q.block_scales);
      sim::write_npy(o.scales, sim::NpyArray::from<float>(scales, shape));
    } else {
      std::vector<std::uint8_t> bytes(q.scale_bits.size());
      place(bytes, q.scale_bits);
      sim::write_npy(o.scales, sim::NpyArray::from<std::uint8_t>(bytes, shape));
    }
  }
  sim::write_npy(o.output, sim::NpyArray::from<float>(out, in.shape));

  float scale_min = INFINITY, scale_max = 0;
  for (float s : q.block_scales)
    if (std::isfinite(s) && s > 0) scale_min = std::min(scale_min, s), scale_max = std::max(scale_max, s);
  const auto n = static_cast<std::int64_t>(values.size());
  std::cerr << "quantized " << n << " values " << in.shape_string() << (narrowed ? " (float64, rounded to float32 first)" : "")
            << " to " << f.name << ": " << blocks_text(f, q, axis)
            << (f.scale == sim::ScaleKind::e8m0 ? ", scale rule " + std::string(sim::to_string(options.rule)) : "")
            << ", elements rounded " << sim::to_string(options.rounding) << ", in " << seconds * 1e3 << " ms\n"
            << "  underflows (nonzero -> 0)     " << share(q.underflows, n) << "\n"
            << "  overflows (clipped to max)    " << share(q.saturated, n) << "\n"
            << "  block scales                  " << (scale_max > 0 ? compact(scale_min) + " .. " + compact(scale_max) : "none") << "\n"
            << "  mse                           " << (n > 0 ? squared / static_cast<double>(n) : 0.0) << "\n";
  if (f.scale == sim::ScaleKind::e4m3_and_fp32) std::cerr << "  tensor scale                  " << q.tensor_scale << "\n";
  if (!o.scales.empty())
    std::cerr << "  scales written to " << o.scales << " ("
              << (f.scale == sim::ScaleKind::e8m0   ? "E8M0 bytes: biased exponents, 2^(byte - 127)"
                  : f.scale == sim::ScaleKind::fp32 ? "float32 1 / scale: value = element x it"
                                                    : "E4M3 bytes")
              << ")\n";
}

void run_quantize(const QuantizeOptions& o) {
  if (sim::is_block_format(o.format)) return run_block_quantize(o);
  if (!o.scale_rule.empty() || !o.scales.empty() || o.axis != -1)
    throw InputError("--scale-rule, --scales and --axis apply to block-scaled formats (" + sim::block_format_names() + "); " +
                     o.format + " rounds every value on its own");
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
  auto* cmd = app.add_subcommand("quantize", "Round every value of an .npy array (float32 or float64) to a format, or "
                                             "quantize it in blocks to a block-scaled format; writes float32 holding "
                                             "the (dequantized) values");
  cmd->add_option("-f,--format", o->format, "Target format: an element format (fp16, bf16, e4m3fn, e5m2, tf32, fp4_e2m1, "
                                            "eXmY, ...) or a block-scaled one (" + sim::block_format_names() + ")")->required();
  cmd->add_option("-r,--rounding", o->rounding, "nearest, toward-zero, up, down or stochastic; block-scaled formats: "
                                                "nearest (ties to even), nearest-away or stochastic")->capture_default_str();
  cmd->add_option("--scale-rule", o->scale_rule, "MX formats' block scale: ocp (floor(log2 amax) - emax, the default) or "
                                                 "round-up (TransformerEngine's: amax / max rounded up to a power of two)");
  cmd->add_option("--axis", o->axis, "Block-scaled formats: the axis whose consecutive values form the blocks (the "
                                     "GEMM's K)")->capture_default_str();
  cmd->add_option("--scales", o->scales, "Block-scaled formats: also write the block scales here (.npy, uint8: E8M0 "
                                         "biased exponents, or NVFP4's E4M3 bytes)");
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
