// The CUDA twin of sim/ops/batch_norm.cpp: per-channel statistics one thread per channel in the CPU's order of
// additions, the elementwise parts over every element (gpu/ops/ops.cuh).
#include "gpu/check.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/ops/op.cuh"
#include "gpu/ops/ops.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::ops {

namespace {

using kernels::block_threads;
using kernels::blocks_for;
namespace mf = mpscope::sim::mathfn;

template <typename T>
__global__ void batch_norm_statistics_kernel(const T* x, double* mean, double* rstd, double* running_mean,
                                             double* running_var, NormShape s, int training) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= s.c) return;
  const double count = static_cast<double>(s.batch * s.area);
  double m = 0, var = 0;
  if (training) {
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t p = 0; p < s.area; ++p) m += to_double(x[(b * s.c + c) * s.area + p]);
    m /= count;
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t p = 0; p < s.area; ++p) {
        const double d = to_double(x[(b * s.c + c) * s.area + p]) - m;
        var += d * d;
      }
    const double unbiased = s.batch * s.area > 1 ? var / (count - 1.0) : var;
    var /= count;
    running_mean[c] = static_cast<double>(__double2float_rn((1.0 - s.momentum) * running_mean[c] + s.momentum * m));
    running_var[c] = static_cast<double>(__double2float_rn((1.0 - s.momentum) * running_var[c] + s.momentum * unbiased));
  } else {
    m = running_mean[c];
    var = running_var[c];
  }
  mean[c] = m;
  rstd[c] = 1.0 / mf::sqrt(var + s.eps);
}

template <typename T, typename M>
__global__ void batch_norm_apply_kernel(const T* x, const M* gamma, const M* beta, T* y, const double* mean,
                                        const double* rstd, NormShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  for_each(static_cast<std::size_t>(s.batch * s.c * s.area), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t c = static_cast<std::int64_t>(i) / s.area % s.c;
      v = (to_double(x[i]) - mean[c]) * rstd[c] * to_double(gamma[c]) + to_double(beta[c]);
      y[i] = from_double<T>(v);
      r = to_double(y[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename T, typename M>
__global__ void batch_norm_parameter_grads_kernel(const T* x, const T* dy, const M* gamma, const double* mean,
                                                  const double* rstd, M* dgamma, M* dbeta, double* sums, NormShape s,
                                                  PointStats gamma_st, PointStats beta_st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];  // for one tally at a time
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = c < s.c;
  double dg = 0, db = 0, rg = 0, rb = 0;
  if (active) {
    const double g = to_double(gamma[c]);
    double sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t p = 0; p < s.area; ++p) {
        const std::int64_t i = (b * s.c + c) * s.area + p;
        const double xhat = (to_double(x[i]) - mean[c]) * rstd[c], d = to_double(dy[i]);
        dg += d * xhat;
        db += d;
        sum_dxhat += d * g;
        sum_dxhat_xhat += d * g * xhat;
      }
    sums[c] = sum_dxhat;
    sums[s.c + c] = sum_dxhat_xhat;
    dgamma[c] = from_double<M>(dg);
    dbeta[c] = from_double<M>(db);
    rg = to_double(dgamma[c]);
    rb = to_double(dbeta[c]);
  }
  {
    PointTally<M> tally(gamma_st, bins);
    tally.add(active, dg, rg);
    tally.flush();
  }
  __syncthreads();
  PointTally<M> tally(beta_st, bins);
  tally.add(active, db, rb);
  tally.flush();
}

template <typename T, typename M>
__global__ void batch_norm_input_grad_kernel(const T* x, const T* dy, const M* gamma, const double* mean,
                                             const double* rstd, const double* sums, T* dx, NormShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const double count = static_cast<double>(s.batch * s.area);
  for_each(static_cast<std::size_t>(s.batch * s.c * s.area), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t c = static_cast<std::int64_t>(i) / s.area % s.c;
      const double xhat = (to_double(x[i]) - mean[c]) * rstd[c];
      v = rstd[c] / count * (count * to_double(dy[i]) * to_double(gamma[c]) - sums[c] - xhat * sums[s.c + c]);
      dx[i] = from_double<T>(v);
      r = to_double(dx[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

}  // namespace

template <typename T, typename M>
void batch_norm_forward(const T* x, const M* gamma, const M* beta, T* y, double* mean, double* rstd,
                        double* running_mean, double* running_var, const NormShape& s, int training, PointStats st,
                        cudaStream_t stream) {
  batch_norm_statistics_kernel<<<kernels::row_blocks(s.c), kernels::row_threads, 0, stream>>>(
      x, mean, rstd, running_mean, running_var, s, training);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
  batch_norm_apply_kernel<<<blocks_for(static_cast<std::size_t>(s.batch * s.c * s.area)), block_threads, 0, stream>>>(
      x, gamma, beta, y, mean, rstd, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}

template <typename T, typename M>
void batch_norm_backward(const T* x, const T* dy, const M* gamma, const double* mean, const double* rstd, M* dgamma,
                         M* dbeta, double* sums, T* dx, const NormShape& s, PointStats dgamma_st, PointStats dbeta_st,
                         PointStats dx_st, cudaStream_t stream) {
  batch_norm_parameter_grads_kernel<<<kernels::row_blocks(s.c), kernels::row_threads, 0, stream>>>(
      x, dy, gamma, mean, rstd, dgamma, dbeta, sums, s, dgamma_st, dbeta_st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
  if (dx == nullptr) return;
  batch_norm_input_grad_kernel<<<blocks_for(static_cast<std::size_t>(s.batch * s.c * s.area)), block_threads, 0, stream>>>(
      x, dy, gamma, mean, rstd, sums, dx, s, dx_st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}

#define MPSCOPE_BATCH_NORM_TWINS(T, M)                                                                              \
  template void batch_norm_forward<T, M>(const T*, const M*, const M*, T*, double*, double*, double*, double*,     \
                                         const NormShape&, int, PointStats, cudaStream_t);                          \
  template void batch_norm_backward<T, M>(const T*, const T*, const M*, const double*, const double*, M*, M*,      \
                                          double*, T*, const NormShape&, PointStats, PointStats, PointStats,        \
                                          cudaStream_t);
MPSCOPE_BATCH_NORM_TWINS(float, float)
MPSCOPE_BATCH_NORM_TWINS(__half, float)
MPSCOPE_BATCH_NORM_TWINS(__nv_bfloat16, float)
MPSCOPE_BATCH_NORM_TWINS(__half, __half)

}  // namespace mpscope::gpu::ops

namespace mpscope::gpu {

namespace {

// The op (sim/ops/batch_norm.cpp's BatchNorm2d): γ, β and their gradients in the master format, no cast.
template <typename Tc, typename Tm>
class GpuBatchNorm2d final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;
  using Base::params_;

  explicit GpuBatchNorm2d(const sim::Node& n)
      : Base(n), c_(n.in_shape[0]), mean_(static_cast<std::size_t>(c_)), rstd_(mean_.size()),
        running_mean_(mean_.size()), running_var_(mean_.size()), sums_(2 * mean_.size()) {
    this->add_params(true);
    running_mean_.upload(std::vector<double>(mean_.size(), 0.0), nullptr);
    running_var_.upload(std::vector<double>(mean_.size(), 1.0), nullptr);
    MPSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void forward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, Tc* y, std::int64_t batch, bool training) override {
    ops::batch_norm_forward<Tc, Tm>(x, params_[0].master.get(), params_[1].master.get(), y, mean_.get(), rstd_.get(),
                                    running_mean_.get(), running_var_.get(), shape(batch), training ? 1 : 0,
                                    cx.points.template point<Tc>(cx.out_tensor), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, const Tc*, const Tc* dy, Tc* dx, std::int64_t batch) override {
    // the CPU's order: dγ, dβ, then dx
    const PointStats dgamma = cx.points.template point<Tm>(params_[0].grad_tensor);
    const PointStats dbeta = cx.points.template point<Tm>(params_[1].grad_tensor);
    const PointStats dx_st = dx ? cx.points.template point<Tc>(cx.in_grad_tensor) : PointStats{};
    ops::batch_norm_backward<Tc, Tm>(x, dy, params_[0].master.get(), mean_.get(), rstd_.get(), params_[0].grad_m.get(),
                                     params_[1].grad_m.get(), sums_.get(), dx, shape(batch), dgamma, dbeta, dx_st,
                                     cx.stream);
  }

 private:
  ops::NormShape shape(std::int64_t batch) const {
    const sim::Node& n = this->node();
    return {batch, c_, n.in_shape[1] * n.in_shape[2], n.spec.eps, n.spec.momentum};
  }

  std::int64_t c_;
  DeviceBuffer<double> mean_, rstd_;                 // (C) this pass's statistics
  DeviceBuffer<double> running_mean_, running_var_;  // (C) float32 values, for evaluation
  DeviceBuffer<double> sums_;                        // (2·C) the backward's per-channel sums
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_batch_norm2d(const sim::Node& n) {
  return std::make_unique<GpuBatchNorm2d<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_batch_norm2d)

}  // namespace mpscope::gpu
