// Forward-pass kernels of GPU lanes: input gather, casts, bias, activations, LayerNorm, histograms (kernels.cuh).
#include "gpu/check.cuh"
#include <type_traits>

#include "gpu/kernels.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::kernels {

namespace {

template <typename T>
__global__ void gather_input_kernel(const float* x, BatchGather b, T* out, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<std::size_t>(b.batch);
       i += stride) {  // labels and targets of the batch's rows
    const std::int64_t row = b.rows[i];
    if (b.labels) b.batch_labels[i] = b.labels[row];
    if (b.targets)
      for (std::int64_t j = 0; j < b.outputs; ++j) b.batch_targets[i * b.outputs + j] = b.targets[row * b.outputs + j];
  }
  for_each(static_cast<std::size_t>(b.batch * b.features), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t row = static_cast<std::int64_t>(i) / b.features, col = static_cast<std::int64_t>(i) % b.features;
      v = x[b.rows[row] * b.features + col];
      out[i] = from_double<T>(v);
      r = to_double(out[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename In, typename Out>
__global__ void cast_kernel(const In* in, Out* out, std::size_t n, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<Out> tally(st, bins);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<In> x = active ? load_pack(in, first, n) : Pack<In>{};
    Pack<Out> y;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      const double v = to_double(x.v[k]);  // (a double holds every float input exactly)
      y.v[k] = from_double<Out>(v);
      tally.add(active && first + k < n, v, to_double(y.v[k]));
    }
    if (active) store_pack(out, first, n, y);
  });
  tally.flush();
}

// The GEMM epilogue of the CPU lane (sim/ops/linear.cpp): the float32 accumulator plus the bias in one float32
// addition, rounded once to T.
template <typename T>
__global__ void bias_add_kernel(const float* y, const T* b, T* z, std::int64_t rows, std::int64_t cols, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const auto n = static_cast<std::size_t>(rows * cols);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<float> x = active ? load_pack(y, first, n) : Pack<float>{};
    Pack<T> r;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      const bool here = active && first + k < n;
      const float bias = here ? static_cast<float>(to_double(b[static_cast<std::int64_t>(first + k) % cols])) : 0.0f;
      const double v = here ? static_cast<double>(__fadd_rn(x.v[k], bias)) : 0.0;
      r.v[k] = from_double<T>(v);
      tally.add(here, v, to_double(r.v[k]));
    }
    if (active) store_pack(z, first, n, r);
  });
  tally.flush();
}

template <typename T>
__global__ void activate_kernel(const T* z, T* out, std::size_t n, int a, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<T> x = active ? load_pack(z, first, n) : Pack<T>{};
    Pack<T> r;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      const double v = activate_value(to_double(x.v[k]), a);
      r.v[k] = from_double<T>(v);
      tally.add(active && first + k < n, v, to_double(r.v[k]));
    }
    if (active) store_pack(out, first, n, r);
  });
  tally.flush();
}

// One thread per row, the CPU's order of additions; every thread of the block runs all `n` rounds (ballots).
// The result rounds to P (the promoted format) and then to T (RoundedOps::store_promoted_then): the counted
// rounding is the narrowing one (from the double result when P is T, else from the P value).
template <typename T, typename P>
__global__ void layer_norm_forward_kernel(const T* h, const P* gamma, const P* beta, T* out, double* mean_out,
                                          double* rstd_out, std::int64_t rows, std::int64_t n, double eps,
                                          PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < rows;
  double mean = 0, var = 0, rstd = 0;
  if (active) {
    for (std::int64_t j = 0; j < n; ++j) mean += to_double(h[i * n + j]);
    mean /= static_cast<double>(n);
    for (std::int64_t j = 0; j < n; ++j) var += (to_double(h[i * n + j]) - mean) * (to_double(h[i * n + j]) - mean);
    var /= static_cast<double>(n);
    rstd = 1.0 / mf::sqrt(var + eps);
    mean_out[i] = mean;
    rstd_out[i] = rstd;
  }
  for (std::int64_t j = 0; j < n; ++j) {
    double v = 0, r = 0;
    if (active) {
      v = (to_double(h[i * n + j]) - mean) * rstd * to_double(gamma[j]) + (beta ? to_double(beta[j]) : 0.0);
      const double promoted = to_double(from_double<P>(v));
      if constexpr (!std::is_same_v<P, T>) v = promoted;
      out[i * n + j] = from_double<T>(promoted);
      r = to_double(out[i * n + j]);
    }
    tally.add(active, v, r);
  }
  tally.flush();
}

template <typename T>
__global__ void histogram_kernel(const T* v, std::size_t n, DeviceHistogram* hist) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  BlockHistogram h(hist, bins, BlockHistogram::lowest_exponent<T>());
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<T> x = active ? load_pack(v, first, n) : Pack<T>{};
#pragma unroll
    for (int k = 0; k < pack_size; ++k) h.add(active && first + k < n, to_float(x.v[k]));
  });
  h.flush();
}

}  // namespace

template <typename T>
void gather_input(const float* x, const BatchGather& b, T* out, PointStats st, cudaStream_t s) {
  const auto n = static_cast<std::size_t>(b.batch * b.features);
  gather_input_kernel<<<blocks_for(n), block_threads, 0, s>>>(x, b, out, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename In, typename Out>
void cast(const In* in, Out* out, std::size_t n, PointStats st, cudaStream_t s) {
  if (n == 0) return;
  cast_kernel<<<pack_blocks(n), block_threads, 0, s>>>(in, out, n, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void bias_add(const float* y, const T* b, T* z, std::int64_t rows, std::int64_t cols, PointStats st, cudaStream_t s) {
  const auto n = static_cast<std::size_t>(rows * cols);
  bias_add_kernel<<<pack_blocks(n), block_threads, 0, s>>>(y, b, z, rows, cols, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void activate(const T* z, T* h, std::size_t n, int activation, PointStats st, cudaStream_t s) {
  activate_kernel<<<pack_blocks(n), block_threads, 0, s>>>(z, h, n, activation, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T, typename P>
void layer_norm_forward(const T* h, const P* gamma, const P* beta, T* out, double* mean, double* rstd, std::int64_t rows,
                        std::int64_t cols, double eps, PointStats st, cudaStream_t s) {
  layer_norm_forward_kernel<<<row_blocks(rows), row_threads, 0, s>>>(h, gamma, beta, out, mean, rstd, rows, cols, eps, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void histogram(const T* v, std::size_t n, DeviceHistogram* hist, cudaStream_t s) {
  if (n == 0) return;
  histogram_kernel<<<pack_blocks(n), block_threads, 0, s>>>(v, n, hist);
  MPSCOPE_LAUNCH_CHECK();
}

#define MPSCOPE_FORWARD(T)                                                                                              \
  template void gather_input<T>(const float*, const BatchGather&, T*, PointStats, cudaStream_t);                         \
  template void cast<float, T>(const float*, T*, std::size_t, PointStats, cudaStream_t);                                \
  template void cast<T, float>(const T*, float*, std::size_t, PointStats, cudaStream_t);                                \
  template void cast<T, T>(const T*, T*, std::size_t, PointStats, cudaStream_t);                                        \
  template void bias_add<T>(const float*, const T*, T*, std::int64_t, std::int64_t, PointStats, cudaStream_t);          \
  template void activate<T>(const T*, T*, std::size_t, int, PointStats, cudaStream_t);                                  \
  template void histogram<T>(const T*, std::size_t, DeviceHistogram*, cudaStream_t);
MPSCOPE_FORWARD(__half)
MPSCOPE_FORWARD(__nv_bfloat16)
#undef MPSCOPE_FORWARD
template void gather_input<float>(const float*, const BatchGather&, float*, PointStats, cudaStream_t);
template void cast<float, float>(const float*, float*, std::size_t, PointStats, cudaStream_t);
template void bias_add<float>(const float*, const float*, float*, std::int64_t, std::int64_t, PointStats, cudaStream_t);
template void activate<float>(const float*, float*, std::size_t, int, PointStats, cudaStream_t);
#define MPSCOPE_LAYER_NORM_FORWARD(T, P)                                                                            \
  template void layer_norm_forward<T, P>(const T*, const P*, const P*, T*, double*, double*, std::int64_t, std::int64_t, \
                                         double, PointStats, cudaStream_t);
MPSCOPE_LAYER_NORM_FORWARD(float, float)
MPSCOPE_LAYER_NORM_FORWARD(__half, float)
MPSCOPE_LAYER_NORM_FORWARD(__nv_bfloat16, float)
MPSCOPE_LAYER_NORM_FORWARD(__half, __half)
#undef MPSCOPE_LAYER_NORM_FORWARD
template void histogram<float>(const float*, std::size_t, DeviceHistogram*, cudaStream_t);

}  // namespace mpscope::gpu::kernels
