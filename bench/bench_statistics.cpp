// The statistics a recorded step makes, per kernel variant on this CPU: the log2 histogram of a tensor and the
// rounding-effect counts of a cast, on 4096-value tensors shaped like the recorded ones (weights, ReLU activations,
// small gradients: 10 to 25 binades). ns per value; compare variants within one run.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "analysis/histogram_kernels.hpp"
#include "sim/round_array.hpp"
#include "sim/simd/round_kernels.hpp"

using namespace mpscope;

namespace {

constexpr std::size_t tensor_size = 4096;

// kind 0: weights N(0, 0.1); 1: ReLU activations (half zeros); 2: gradients, log-normal around 1e-4
std::vector<float> tensor(int kind) {
  std::mt19937 rng(static_cast<unsigned>(kind) + 1);
  std::normal_distribution<float> normal;
  std::vector<float> v(tensor_size);
  for (float& x : v) {
    if (kind == 0) x = normal(rng) * 0.1f;
    if (kind == 1) x = std::max(normal(rng), 0.0f);
    if (kind == 2) x = normal(rng) * 1e-4f * std::exp(normal(rng));
  }
  return v;
}

void set_rate(benchmark::State& state) {  // (time per iteration / values) in ns
  state.counters["ns_per_value"] = benchmark::Counter(static_cast<double>(tensor_size) * 1e-9,
                                                      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void histogram(benchmark::State& state, int kind) {
  const std::vector<float> values = tensor(kind);
  const auto kernels = analysis::detail::runnable_histograms();
  if (static_cast<std::size_t>(state.range(0)) >= kernels.size()) return state.SkipWithError("variant not runnable here");
  const auto& kernel = kernels[static_cast<std::size_t>(state.range(0))];
  state.SetLabel(std::string(kernel.isa));
  for (auto _ : state) benchmark::DoNotOptimize(kernel.of_float(values));
  set_rate(state);
}

// Counts of an fp16 cast, from float values (cast) or from double results (store).
void rounding_effects(benchmark::State& state, bool from_double) {
  const sim::Isa isa = static_cast<sim::Isa>(state.range(0));
  if (!sim::isa_supported(isa)) return state.SkipWithError("ISA not supported here");
  state.SetLabel(std::string(sim::to_string(isa)));
  const std::vector<float> narrow = tensor(1);
  const std::vector<double> wide(narrow.begin(), narrow.end());
  std::vector<float> rounded(tensor_size);
  sim::round_array(narrow, rounded, sim::fp16(), sim::Rounding::nearest_even);
  const sim::simd::RoundKernels& k = sim::simd::kernels_for(isa);
  const sim::Format f = sim::fp16();
  sim::RoundingEffects e;
  for (auto _ : state) {
    if (from_double) k.count_double_float(wide.data(), rounded.data(), tensor_size, f.min_normal(), f.max_finite(), &e);
    else k.count_float_float(narrow.data(), rounded.data(), tensor_size, f.min_normal(), f.max_finite(), &e);
    benchmark::DoNotOptimize(e);
  }
  set_rate(state);
}

}  // namespace

// range(0): the histogram variant (0 portable, 1 avx2, 2 avx512 where runnable) / the ISA (0 portable, 1 avx2, 2 avx512)
BENCHMARK_CAPTURE(histogram, weights, 0)->DenseRange(0, 2);
BENCHMARK_CAPTURE(histogram, relu_activations, 1)->DenseRange(0, 2);
BENCHMARK_CAPTURE(histogram, gradients, 2)->DenseRange(0, 2);
BENCHMARK_CAPTURE(rounding_effects, fp16_from_float, false)->DenseRange(0, 2);
BENCHMARK_CAPTURE(rounding_effects, fp16_from_double, true)->DenseRange(0, 2);

BENCHMARK_MAIN();
