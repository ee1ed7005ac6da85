// Loss and backward-pass kernels of GPU lanes: the loss and its gradient, activation and LayerNorm backward, bias
// gradients, and the unscaling and inf/NaN check of every produced gradient (kernels.cuh).
#include <string>
#include <type_traits>

#include "gpu/check.cuh"
#include "gpu/kernels.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::kernels {

namespace {

// GraphLane::unscale and the inf/NaN check, per thread; flush() writes the block's sum of squares to its partial
// slot and raises found_inf. Every thread of the block calls add() alike and reaches flush().
template <typename T>
struct GradChecker {
  GradCheck check;
  float inv;
  EffectTally unscale_tally;
  double squares = 0;
  bool nonfinite = false;

  __device__ explicit GradChecker(const GradCheck& c)
      : check(c), inv(c.scaler ? c.scaler->inv_scale : 1.0f),
        unscale_tally(EffectTally::of<T>(c.master_gradients || !c.scaler ? nullptr : c.unscale.fx)) {}

  __device__ void add(bool active, T g) {
    double m = 0;
    if (active && check.scaler) {
      if (check.master_gradients) {  // float32 master gradient: an exact widening and one float32 product
        m = __fmul_rn(to_float(g), inv);
      } else {
        const double v = to_double(g) * static_cast<double>(inv);
        m = to_double(from_double<T>(v));
        unscale_tally.add(true, v, m);
      }
      nonfinite = nonfinite || !isfinite(m);
      squares += m * m;
    }
  }
  __device__ void flush() {
    unscale_tally.flush();
    if (!check.scaler) return;  // (no check: the graph lane checks its gradients after the backward pass)
    const double total = block_sum<double>(squares);
    if (first_thread()) check.partials[blockIdx.x] = total;
    if (nonfinite) {
      check.scaler->found_inf = 1;
      if (!check.master_gradients && check.unscale.nonfinite != nullptr) *check.unscale.nonfinite = 1;
    }
  }
};

// One thread per row; every thread of the block runs all `n` rounds (statistics take whole warps). Cross-entropy as
// sim/ops/loss.cpp: log-probabilities rounded to T (or float32), the seed g = -S/B in float32 (then T under autocast),
// d loss / d z = g·onehot - exp(lp)·g rounded once (or through float32).
template <typename T>
__global__ void loss_rows_kernel(const T* z, const std::int64_t* labels, const float* targets, std::int64_t rows,
                                 std::int64_t n, int mse, int fp32_logits, const float* scale, double* terms, T* grad,
                                 int* correct, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(grad ? st : PointStats{}, bins);
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < rows;
  const double s = scale ? static_cast<double>(*scale) : 1.0;
  const auto log_prob = [&](double v) {
    return fp32_logits ? static_cast<double>(__double2float_rn(v)) : to_double(from_double<T>(v));
  };
  const double seed32 = static_cast<double>(__double2float_rn(-s / static_cast<double>(rows)));
  const double seed = fp32_logits ? seed32 : to_double(from_double<T>(seed32));
  std::int64_t y = 0;
  double lse = 0, inv_count = 0;
  if (active) {
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < n; ++j)
      if (to_double(z[i * n + j]) > to_double(z[i * n + best])) best = j;
    if (correct) correct[i] = labels != nullptr && best == labels[i];
    if (!mse) {
      y = labels[i];
      const double m = to_double(z[i * n + best]);
      double sum = 0;
      for (std::int64_t j = 0; j < n; ++j) sum += mf::exp(to_double(z[i * n + j]) - m);
      lse = m + mf::log(sum);
      terms[i] = -log_prob(to_double(z[i * n + y]) - lse);
    } else {
      inv_count = 1.0 / static_cast<double>(rows * n);
    }
  }
  for (std::int64_t j = 0; j < n; ++j) {
    double g = 0;
    if (active) {
      if (!mse) {
        const double lp = log_prob(to_double(z[i * n + j]) - lse);
        g = (j == y ? seed : 0.0) - mf::exp(lp) * seed;
      } else {
        const double t = targets ? static_cast<double>(targets[i * n + j]) : (j == labels[i] ? 1.0 : 0.0);
        const double d = to_double(z[i * n + j]) - t;
        terms[i * n + j] = d * d * inv_count;
        g = s * 2.0 * d * inv_count;
      }
    }
    if (grad == nullptr) continue;
    double f = 0, r = 0;
    if (active) {
      // Through float32 first (MSE in fp32, or the logits' cast's backward), else rounded once to T.
      const bool via_float32 = mse || fp32_logits || std::is_same_v<T, float>;
      f = via_float32 ? static_cast<double>(__double2float_rn(g)) : g;
      grad[i * n + j] = from_double<T>(f);
      r = to_double(grad[i * n + j]);
    }
    tally.add(active, f, r);
  }
  tally.flush();
}

__global__ void sum_sequential_kernel(const double* v, std::int64_t n, double multiplier, double* total) {
  double t = 0;
  for (std::int64_t i = 0; i < n; ++i) t += v[i];
  *total = t * multiplier;
}

__global__ void sum_tree_kernel(const double* v, std::int64_t n, double multiplier, double* total) {
  double t = 0;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) t += v[i];
  t = block_sum<double>(t);
  if (threadIdx.x == 0) *total = t * multiplier;
}

template <typename T>
__global__ void activation_backward_kernel(const T* da, const T* z, const T* h, T* dz, std::size_t n, int a,
                                           PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<T> d = active ? load_pack(da, first, n) : Pack<T>{};
    const Pack<T> zz = active ? load_pack(z, first, n) : Pack<T>{};
    const Pack<T> hh = a == relu || !active ? zz : load_pack(h, first, n);  // (ReLU needs z's sign only)
    Pack<T> r;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      // (sim/ops/activation.cpp: ReLU selects, giving +0 where z <= 0, as PyTorch's threshold_backward)
      const double dk = to_double(d.v[k]), zk = to_double(zz.v[k]);
      const double v = a == relu ? (zk > 0 ? dk : 0.0) : dk * activation_slope(zk, to_double(hh.v[k]), a);
      r.v[k] = from_double<T>(v);
      tally.add(active && first + k < n, v, to_double(r.v[k]));
    }
    if (active) store_pack(dz, first, n, r);
  });
  tally.flush();
}

template <typename T, typename P>
__global__ void layer_norm_backward_rows(const T* dy, const T* h, const P* gamma, const double* mean_in,
                                         const double* rstd_in, T* dh, std::int64_t rows, std::int64_t n,
                                         PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < rows;
  double mean = 0, rstd = 0, sum_dxhat = 0, sum_dxhat_xhat = 0;
  if (active) {
    mean = mean_in[i];
    rstd = rstd_in[i];
    for (std::int64_t j = 0; j < n; ++j) {
      const double xhat = (to_double(h[i * n + j]) - mean) * rstd;
      const double dxhat = to_double(dy[i * n + j]) * to_double(gamma[j]);
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * xhat;
    }
  }
  for (std::int64_t j = 0; j < n; ++j) {
    double v = 0, r = 0;
    if (active) {
      const double xhat = (to_double(h[i * n + j]) - mean) * rstd;
      const double dxhat = to_double(dy[i * n + j]) * to_double(gamma[j]);
      v = rstd / static_cast<double>(n) * (static_cast<double>(n) * dxhat - sum_dxhat - xhat * sum_dxhat_xhat);
      const double promoted = to_double(from_double<P>(v));  // (as the forward: through P, then to T)
      if constexpr (!std::is_same_v<P, T>) v = promoted;
      dh[i * n + j] = from_double<T>(promoted);
      r = to_double(dh[i * n + j]);
    }
    tally.add(active, v, r);
  }
  tally.flush();
}

// One thread per column, rows in order (the CPU adds row after row).
template <typename T, typename P>
__global__ void layer_norm_backward_params(const T* dy, const T* h, const double* mean, const double* rstd, P* dgamma,
                                           P* dbeta, std::int64_t rows, std::int64_t n, PointStats gamma_st,
                                           PointStats beta_st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];  // (unused: these points have no histogram)
  PointTally<P> gamma_tally(gamma_st, bins), beta_tally(beta_st, bins);
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = j < n;
  double g = 0, b = 0, rg = 0, rb = 0;
  if (active) {
    for (std::int64_t i = 0; i < rows; ++i) {
      const double xhat = (to_double(h[i * n + j]) - mean[i]) * rstd[i];
      g += to_double(dy[i * n + j]) * xhat;
      b += to_double(dy[i * n + j]);
    }
    dgamma[j] = from_double<P>(g);
    rg = to_double(dgamma[j]);
    if (dbeta) {
      dbeta[j] = from_double<P>(b);
      rb = to_double(dbeta[j]);
    }
  }
  gamma_tally.add(active, g, rg);
  beta_tally.add(active && dbeta, b, rb);
  gamma_tally.flush();
  beta_tally.flush();
}

// Bias gradients: each column's rows added in order in double, as the CPU adds them; then rounded, counted and
// checked. A block takes sum_cols columns: all its threads load a tile of rows (coalesced, many loads in flight),
// then the first sum_cols threads add their column's values in order, so that the chain of dependent additions
// does not also wait on memory at every row.
constexpr int sum_cols = 64, sum_rows = 64, sum_threads = 256;  // (with the histogram's bins: 41 KB of shared memory)
template <typename T>
__global__ void column_sums_kernel(const T* dz, T* db, std::int64_t rows, std::int64_t cols, PointStats st,
                                   GradCheck check) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  __shared__ float tile[sum_rows][sum_cols + 1];  // (the lanes' formats widen to float exactly)
  PointTally<T> tally(st, bins);
  GradChecker<T> checker(check);
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * sum_cols;
  const int c = static_cast<int>(threadIdx.x) % sum_cols;
  const std::int64_t j = first + threadIdx.x;  // the column a summing thread adds
  const bool active = threadIdx.x < sum_cols && j < cols;
  double v = 0, r = 0;
  for (std::int64_t r0 = 0; r0 < rows; r0 += sum_rows) {
    const int n = static_cast<int>(rows - r0 < sum_rows ? rows - r0 : sum_rows);
    for (int i = static_cast<int>(threadIdx.x) / sum_cols; i < n; i += sum_threads / sum_cols)
      tile[i][c] = first + c < cols ? to_float(dz[(r0 + i) * cols + first + c]) : 0.0f;
    __syncthreads();
    if (active)
      for (int i = 0; i < n; ++i) v += static_cast<double>(tile[i][threadIdx.x]);
    __syncthreads();
  }
  T rounded{};
  if (active) {
    rounded = from_double<T>(v);
    db[j] = rounded;
    r = to_double(rounded);
  }
  tally.add(active, v, r);
  checker.add(active, rounded);
  tally.flush();
  checker.flush();
}

template <typename T>
__global__ void round_gradient_kernel(const float* in, T* out, std::size_t n, PointStats st, GradCheck check) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  GradChecker<T> checker(check);
  const bool write = static_cast<const void*>(out) != static_cast<const void*>(in);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<float> x = active ? load_pack(in, first, n) : Pack<float>{};
    Pack<T> r;
#pragma unroll
    for (int k = 0; k < pack_size; ++k) {
      const bool here = active && first + k < n;
      r.v[k] = from_double<T>(static_cast<double>(x.v[k]));
      tally.add(here, x.v[k], to_double(r.v[k]));
      checker.add(here, r.v[k]);
    }
    if (active && write) store_pack(out, first, n, r);
  });
  tally.flush();
  checker.flush();
}

template <typename T>
__global__ void check_gradient_kernel(const T* g, std::size_t n, GradCheck check) {
  GradChecker<T> checker(check);
  for_each_pack(n, [&](std::size_t first, bool active) {
    const Pack<T> x = active ? load_pack(g, first, n) : Pack<T>{};
#pragma unroll
    for (int k = 0; k < pack_size; ++k) checker.add(active && first + k < n, x.v[k]);
  });
  checker.flush();
}

}  // namespace

template <typename T>
void loss_rows(const T* logits, const std::int64_t* labels, const float* targets, std::int64_t rows, std::int64_t cols,
               int mse, int fp32_logits, const float* scale, double* terms, T* grad, int* correct, PointStats st,
               cudaStream_t s) {
  loss_rows_kernel<<<row_blocks(rows), row_threads, 0, s>>>(logits, labels, targets, rows, cols, mse, fp32_logits, scale,
                                                             terms, grad, correct, st);
  MPSCOPE_LAUNCH_CHECK();
}

void sum_terms(const double* terms, std::int64_t count, double multiplier, bool sequential, double* total, cudaStream_t s) {
  if (sequential) {
    sum_sequential_kernel<<<1, 1, 0, s>>>(terms, count, multiplier, total);
  } else {
    sum_tree_kernel<<<1, 1024, 0, s>>>(terms, count, multiplier, total);
  }
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void activation_backward(const T* da, const T* z, const T* h, T* dz, std::size_t n, int activation, PointStats st,
                         cudaStream_t s) {
  activation_backward_kernel<<<pack_blocks(n), block_threads, 0, s>>>(da, z, h, dz, n, activation, st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T, typename P>
void layer_norm_backward(const T* dy, const T* h, const P* gamma, const double* mean, const double* rstd, T* dh,
                         P* dgamma, P* dbeta, std::int64_t rows, std::int64_t cols, PointStats dh_st,
                         PointStats dgamma_st, PointStats dbeta_st, cudaStream_t s) {
  dh_st.hist = dgamma_st.hist = dbeta_st.hist = nullptr;  // intermediate values, not a recorded tensor
  layer_norm_backward_rows<<<row_blocks(rows), row_threads, 0, s>>>(dy, h, gamma, mean, rstd, dh, rows, cols, dh_st);
  MPSCOPE_LAUNCH_CHECK();
  layer_norm_backward_params<<<row_blocks(cols), row_threads, 0, s>>>(dy, h, mean, rstd, dgamma, dbeta, rows, cols,
                                                                      dgamma_st, dbeta_st);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void column_sums(const T* dz, T* db, std::int64_t rows, std::int64_t cols, PointStats st, GradCheck check, cudaStream_t s) {
  const auto blocks = static_cast<unsigned>((cols + sum_cols - 1) / sum_cols);
  // (the check's partial sums have one slot per block)
  if (check.scaler && blocks > static_cast<unsigned>(grad_partial_slots))
    throw GpuError("GPU lane: a layer wider than " + std::to_string(grad_partial_slots * sum_cols) + " outputs");
  column_sums_kernel<<<blocks, sum_threads, 0, s>>>(dz, db, rows, cols, st, check);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void round_gradient(const float* in, T* out, std::size_t n, PointStats st, GradCheck check, cudaStream_t s) {
  round_gradient_kernel<<<pack_blocks(n), block_threads, 0, s>>>(in, out, n, st, check);
  MPSCOPE_LAUNCH_CHECK();
}

template <typename T>
void check_gradient(const T* g, std::size_t n, GradCheck check, cudaStream_t s) {
  check_gradient_kernel<<<pack_blocks(n), block_threads, 0, s>>>(g, n, check);
  MPSCOPE_LAUNCH_CHECK();
}

#define MPSCOPE_BACKWARD(T)                                                                                           \
  template void loss_rows<T>(const T*, const std::int64_t*, const float*, std::int64_t, std::int64_t, int, int,       \
                             const float*, double*, T*, int*, PointStats, cudaStream_t);                               \
  template void activation_backward<T>(const T*, const T*, const T*, T*, std::size_t, int, PointStats, cudaStream_t);  \
  template void column_sums<T>(const T*, T*, std::int64_t, std::int64_t, PointStats, GradCheck, cudaStream_t);         \
  template void round_gradient<T>(const float*, T*, std::size_t, PointStats, GradCheck, cudaStream_t);                 \
  template void check_gradient<T>(const T*, std::size_t, GradCheck, cudaStream_t);
MPSCOPE_BACKWARD(float)
MPSCOPE_BACKWARD(__half)
MPSCOPE_BACKWARD(__nv_bfloat16)
#define MPSCOPE_LAYER_NORM_BACKWARD(T, P)                                                                           \
  template void layer_norm_backward<T, P>(const T*, const T*, const P*, const double*, const double*, T*, P*, P*,      \
                                          std::int64_t, std::int64_t, PointStats, PointStats, PointStats, cudaStream_t);
MPSCOPE_LAYER_NORM_BACKWARD(float, float)
MPSCOPE_LAYER_NORM_BACKWARD(__half, float)
MPSCOPE_LAYER_NORM_BACKWARD(__nv_bfloat16, float)
MPSCOPE_LAYER_NORM_BACKWARD(__half, __half)
#undef MPSCOPE_LAYER_NORM_BACKWARD
#undef MPSCOPE_BACKWARD

}  // namespace mpscope::gpu::kernels
