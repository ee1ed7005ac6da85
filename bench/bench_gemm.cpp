// GEMM accumulation models against Eigen's float GEMM (one thread, this CPU's widest vectors) at 256^3 and
// 1024x1024x256. The aim (issue "Foundation"): h100 at least 0.1x Eigen's speed.
#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include <random>

#include "sim/gemm.hpp"
#include "sim/rounding.hpp"

using namespace mpscope::sim;

namespace {

std::vector<float> fp16_matrix(std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (auto& x : v) x = static_cast<float>(round(normal(rng), fp16()));
  return v;
}

void set_counters(benchmark::State& state, std::int64_t m, std::int64_t n, std::int64_t k) {
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void eigen_gemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto a = fp16_matrix(m, k, 1), b = fp16_matrix(k, n, 2);
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const Matrix> A(a.data(), m, k), B(b.data(), k, n);
  Matrix D(m, n);
  for (auto _ : state) {
    D.noalias() = A * B;
    benchmark::DoNotOptimize(D.data());
  }
  set_counters(state, m, n, k);
}

void model_gemm(benchmark::State& state, Accumulation model) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto a = fp16_matrix(m, k, 1), b = fp16_matrix(k, n, 2);
  std::vector<float> d(static_cast<std::size_t>(m * n));
  for (auto _ : state) {
    gemm(model, MatrixView::row_major(a.data(), m, k), MatrixView::row_major(b.data(), k, n), MatrixView{}, d);
    benchmark::DoNotOptimize(d.data());
  }
  set_counters(state, m, n, k);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({256, 256, 256})->Args({1024, 1024, 256})->Unit(benchmark::kMillisecond)->MinTime(1.0);
}

BENCHMARK(eigen_gemm)->Apply(shapes);
BENCHMARK_CAPTURE(model_gemm, h100, Accumulation::h100)->Apply(shapes);
BENCHMARK_CAPTURE(model_gemm, fp32, Accumulation::fp32)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
