// Array rounding speed: ns per element over 2^24 float32 values on one thread, per format, mode and kernel.
// Reference (CPFloat's published figure): CPFloat rounds float32 -> fp16 nearest-even at 5.1 ns/element and stochastically at
// 10 ns/element on one core of the CI machine.
#include <benchmark/benchmark.h>

#include <bit>
#include <random>

#include "sim/round_array.hpp"

using namespace mpscope::sim;

namespace {

const std::vector<float>& inputs() {
  // Normally distributed values with a spread of magnitudes, as tensors have (not random bit patterns).
  static const std::vector<float> v = [] {
    std::vector<float> x(std::size_t{1} << 24);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> scale(-20, 10);
    for (auto& e : x) e = std::ldexp(normal(rng), scale(rng));
    return x;
  }();
  return v;
}

void round_benchmark(benchmark::State& state, Format format, Rounding mode, Isa isa) {
  if (!isa_supported(isa)) {
    state.SkipWithError("this CPU lacks the instruction set");
    return;
  }
  const auto& in = inputs();
  std::vector<float> out(in.size());
  RandomStream random(42);
  for (auto _ : state) {
    round_array(in, out, format, mode, &random, isa);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // seconds per element (Google Benchmark's inverted rate); scripts/bench prints it in ns
  state.counters["s_per_element"] = benchmark::Counter(
      static_cast<double>(in.size()), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void register_all() {
  struct Case {
    const char* label;
    Format format;
    Rounding mode;
  };
  const Case cases[] = {{"fp16_nearest", fp16(), Rounding::nearest_even},
                        {"bf16_nearest", bf16(), Rounding::nearest_even},
                        {"e4m3fn_nearest", e4m3fn(), Rounding::nearest_even},
                        {"fp16_stochastic", fp16(), Rounding::stochastic},
                        {"e6m9_nearest", make_format(6, 9), Rounding::nearest_even}};
  for (const Case& c : cases)
    for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512})
      benchmark::RegisterBenchmark((std::string("round/") + c.label + "/" + std::string(to_string(isa))).c_str(),
                                   round_benchmark, c.format, c.mode, isa)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
