// `mpscope gemm`: D = A·B + C under an accumulation model (fp32, exact, h100: Hopper's tensor cores and cuBLAS(Lt)
// for fp16, bf16, tf32 and FP8 inputs), optionally with the error against the exact result.
#include <cmath>
#include <iostream>
#include <optional>

#include "app/cli/commands.hpp"
#include "app/cli/files.hpp"
#include "sim/decimal.hpp"
#include "sim/gemm.hpp"
#include "sim/npy.hpp"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"

namespace mpscope::cli {

namespace {

struct GemmOptions {
  std::string arith;
  std::string format = "fp16", format_b, fp8_accumulation;
  std::vector<std::string> files;  // A B [C] OUT
  bool report = false;
  bool force = false;
};

// A 2-D float32 array from `path`, named `role` in messages.
sim::NpyArray read_matrix(const std::string& path, const std::string& role) {
  check_input(path);
  sim::NpyArray a = sim::read_npy(path);
  if (a.dtype != sim::DType::float32)
    throw InputError(role + " (" + path + "): expected float32 data, found " + std::string(sim::to_string(a.dtype)));
  if (a.shape.size() != 2)
    throw InputError(role + " (" + path + "): expected a 2-D matrix, found shape " + a.shape_string());
  return a;
}

sim::MatrixView view(const sim::NpyArray& a) {
  return sim::MatrixView::row_major(a.values<float>().data(), a.shape[0], a.shape[1]);
}

sim::Format format_option(const std::string& option, const std::string& name) {
  try {
    return sim::parse_format(name);
  } catch (const std::invalid_argument& e) {
    throw InputError(option + ": " + e.what());
  }
}

void require_format(const sim::NpyArray& a, const sim::Format& f, const std::string& role, const std::string& path) {
  const sim::MatrixView v = view(a);
  const std::int64_t bad = sim::first_non_representable(v, f);
  if (bad < 0) return;
  const std::int64_t r = bad / v.cols, c = bad % v.cols;
  const float x = v(r, c);
  throw InputError(role + " (" + path + "): element [" + std::to_string(r) + ", " + std::to_string(c) + "] = " +
                   sim::shortest(x) + " is not " + sim::with_article(f.name) + " value (nearest " + f.name + ": " +
                   sim::shortest(sim::round(x, f)) + "); round the inputs first, e.g. "
                   "mpscope quantize --format " + f.name + " IN.npy OUT.npy");
}

void report_error(const std::vector<float>& d, const std::vector<float>& exact, std::int64_t n) {
  double max_rel = 0, sum_rel = 0;
  std::int64_t counted = 0, differing = 0, zero_exact_nonzero = 0, max_at = -1;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (std::isnan(d[i]) && std::isnan(exact[i])) continue;
    if (d[i] != exact[i]) ++differing;
    if (exact[i] == 0 || !std::isfinite(exact[i])) {
      if (d[i] != exact[i]) ++zero_exact_nonzero;
      continue;
    }
    const double rel = std::fabs(static_cast<double>(d[i]) - exact[i]) / std::fabs(static_cast<double>(exact[i]));
    if (rel > max_rel || max_at < 0) {
      max_rel = std::max(max_rel, rel);
      if (rel == max_rel) max_at = static_cast<std::int64_t>(i);
    }
    sum_rel += rel;
    ++counted;
  }
  std::cerr << "error against the exact result (exact sum rounded once to fp32):\n"
            << "  elements differing:  " << differing << " of " << d.size() << "\n"
            << "  relative error max:  " << sim::shortest(max_rel);
  if (max_at >= 0 && max_rel > 0) std::cerr << "  at [" << max_at / n << ", " << max_at % n << "]";
  std::cerr << "\n  relative error mean: " << sim::shortest(counted ? sum_rel / static_cast<double>(counted) : 0.0)
            << "  over " << counted << " elements with a nonzero finite exact result\n";
  if (zero_exact_nonzero > 0)
    std::cerr << "  " << zero_exact_nonzero << " elements differ where the exact result is zero or not finite\n";
}

void run_gemm(const GemmOptions& o) {
  sim::Accumulation model{};
  try {
    model = sim::parse_accumulation(o.arith);
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("--arith: ") + e.what());
  }
  if (o.files.size() != 3 && o.files.size() != 4)
    throw InputError("expected A.npy B.npy [C.npy] OUT.npy, got " + std::to_string(o.files.size()) + " file names");
  const bool has_c = o.files.size() == 4;
  const std::string& out = o.files.back();
  std::vector<std::filesystem::path> inputs(o.files.begin(), o.files.end() - 1);
  for (const auto& in : inputs) check_input(in);
  check_output(out, o.force, inputs);

  const sim::NpyArray a = read_matrix(o.files[0], "A"), b = read_matrix(o.files[1], "B");
  if (a.shape[1] != b.shape[0])
    throw InputError("A is " + a.shape_string() + " and B is " + b.shape_string() + ": A's columns must equal B's rows");
  const sim::Format format_a = format_option("--format", o.format);
  const sim::Format format_b = o.format_b.empty() ? format_a : format_option("--format-b", o.format_b);
  const bool fp8 = (format_a == sim::e4m3fn() || format_a == sim::e5m2()) && (format_b == sim::e4m3fn() || format_b == sim::e5m2());
  if (!o.fp8_accumulation.empty() && !(model == sim::Accumulation::h100 && fp8))
    throw InputError("--fp8-accumulation: applies to --arith h100 with FP8 inputs (e4m3fn, e5m2) only");
  std::optional<sim::TensorCoreModel> tensor_core;
  if (model == sim::Accumulation::h100) {
    try {
      tensor_core = sim::hopper_model(format_a, format_b,
                                      sim::parse_fp8_accumulation(o.fp8_accumulation.empty() ? "promoted" : o.fp8_accumulation));
    } catch (const std::invalid_argument& e) {
      throw InputError(std::string(o.fp8_accumulation.empty() || !fp8 ? "--format: " : "--fp8-accumulation: ") + e.what());
    }
  }
  require_format(a, format_a, "A", o.files[0]);
  require_format(b, format_b, "B", o.files[1]);
  sim::NpyArray c;
  sim::MatrixView c_view;
  if (has_c) {
    c = read_matrix(o.files[2], "C");
    if (c.shape[0] != a.shape[0] || c.shape[1] != b.shape[1])
      throw InputError("C (" + o.files[2] + ") is " + c.shape_string() + ", expected (" + std::to_string(a.shape[0]) +
                       ", " + std::to_string(b.shape[1]) + ")");
    c_view = view(c);
  }
  const std::int64_t m = a.shape[0], n = b.shape[1];
  std::vector<float> d(static_cast<std::size_t>(m * n));
  if (tensor_core) {
    sim::tensor_core_gemm(*tensor_core, view(a), view(b), c_view, d);
  } else {
    sim::gemm(model, view(a), view(b), c_view, d);
  }
  sim::write_npy(out, sim::NpyArray::from<float>(d, {m, n}));
  std::cerr << "D = A·B" << (has_c ? " + C" : "") << " (" << m << "x" << a.shape[1] << " times " << a.shape[1] << "x"
            << n << ") with " << sim::to_string(model) << " accumulation"
            << (tensor_core ? " (" + tensor_core->describe() + ")" : "") << " -> " << out << "\n";
  if (o.report) {
    std::vector<float> exact(d.size());
    sim::gemm(sim::Accumulation::exact, view(a), view(b), c_view, exact);
    report_error(d, exact, n);
  }
}

}  // namespace

void add_gemm_command(CLI::App& app) {
  auto o = std::make_shared<GemmOptions>();
  auto* cmd = app.add_subcommand("gemm", "D = A·B + C under an accumulation model (fp16, bf16, tf32 or FP8 inputs)");
  cmd->add_option("--arith", o->arith, "Accumulation: fp32 (sequential FMA), exact (rounded once), h100 (Hopper's "
                                       "tensor cores and cuBLAS(Lt): docs/formats.md)")
      ->required();
  cmd->add_option("--format", o->format, "The format A and B hold: fp16 (default), bf16, tf32, e4m3fn, e5m2, ...");
  cmd->add_option("--format-b", o->format_b, "B's format when it differs from A's (e.g. --format e5m2 --format-b e4m3fn)");
  cmd->add_option("--fp8-accumulation", o->fp8_accumulation,
                  "h100 with FP8 inputs: promoted (cuBLASLt's default: into float32 every 128 products) or fast "
                  "(use_fast_accum: a 14-bit chain)");
  cmd->add_option("files", o->files, "A.npy B.npy [C.npy] OUT.npy: A (M,K), B (K,N) float32 holding values of their "
                                     "format; C (M,N) float32; OUT gets D (M,N) float32")
      ->required();
  cmd->add_flag("--report", o->report, "Print the max and mean relative error against the exact model");
  cmd->add_flag("--force", o->force, "Replace OUT if it exists");
  cmd->callback([o] { run_gemm(*o); });
}

}  // namespace mpscope::cli
