// The CUDA twin of sim/ops/pool.cpp: max and average pooling, forward and backward (gpu/ops/ops.cuh).
#include "gpu/check.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/ops/op.cuh"
#include "gpu/ops/ops.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::ops {

namespace {

using kernels::block_threads;
using kernels::blocks_for;

// Index within a sample of window (oh, ow)'s element (kh, kw) in channel c (Pool2d::window).
__device__ std::int64_t window(const PoolShape& s, std::int64_t c, std::int64_t oh, std::int64_t ow, std::int64_t kh,
                               std::int64_t kw) {
  return (c * s.h + oh * s.stride + kh) * s.w + ow * s.stride + kw;
}

template <typename T>
__global__ void pool_forward_kernel(const T* x, T* y, std::int64_t* argmax, PoolShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t out = s.c * s.ho * s.wo, in = s.c * s.h * s.w;
  for_each(static_cast<std::size_t>(s.batch * out), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / out, o = static_cast<std::int64_t>(i) % out;
      const std::int64_t c = o / (s.ho * s.wo), oh = o % (s.ho * s.wo) / s.wo, ow = o % s.wo;
      const T* xs = x + b * in;
      if (s.max) {
        std::int64_t best = window(s, c, oh, ow, 0, 0);
        for (std::int64_t kh = 0; kh < s.k; ++kh)
          for (std::int64_t kw = 0; kw < s.k; ++kw) {
            const std::int64_t j = window(s, c, oh, ow, kh, kw);
            const double xj = to_double(xs[j]);
            if (xj > to_double(xs[best]) || isnan(xj)) best = j;
          }
        argmax[i] = best;
        y[i] = xs[best];
      } else {
        for (std::int64_t kh = 0; kh < s.k; ++kh)
          for (std::int64_t kw = 0; kw < s.k; ++kw) v += to_double(xs[window(s, c, oh, ow, kh, kw)]);
        v /= static_cast<double>(s.k * s.k);
        y[i] = from_double<T>(v);
        r = to_double(y[i]);
      }
    }
    if (s.max) v = r = active ? to_double(y[i]) : 0.0;
    tally.add(active, v, r);  // max pooling rounds nothing (its caller counts no effects): checked for inf/NaN
  });
  tally.flush();
}

// One thread per input element, gathering the windows that hold it in the CPU's order (c, oh, ow ascending).
template <typename T>
__global__ void pool_backward_kernel(const T* dy, const std::int64_t* argmax, T* dx, PoolShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t out = s.c * s.ho * s.wo, in = s.c * s.h * s.w;
  const double inv_area = 1.0 / static_cast<double>(s.k * s.k);
  for_each(static_cast<std::size_t>(s.batch * in), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / in, j = static_cast<std::int64_t>(i) % in;
      const std::int64_t c = j / (s.h * s.w), ih = j % (s.h * s.w) / s.w, iw = j % s.w;
      const std::int64_t oh_first = ih >= s.k ? (ih - s.k) / s.stride + 1 : 0, ow_first = iw >= s.k ? (iw - s.k) / s.stride + 1 : 0;
      for (std::int64_t oh = oh_first; oh < s.ho && oh * s.stride <= ih; ++oh)
        for (std::int64_t ow = ow_first; ow < s.wo && ow * s.stride <= iw; ++ow) {
          if (ih >= oh * s.stride + s.k || iw >= ow * s.stride + s.k) continue;
          const std::int64_t o = b * out + (c * s.ho + oh) * s.wo + ow;
          if (s.max) {
            if (argmax[o] == j) v += to_double(dy[o]);
          } else {
            v += to_double(dy[o]) * inv_area;
          }
        }
      dx[i] = from_double<T>(v);
      r = to_double(dx[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

}  // namespace

template <typename T>
void pool_forward(const T* x, T* y, std::int64_t* argmax, const PoolShape& s, PointStats st, cudaStream_t stream) {
  pool_forward_kernel<<<blocks_for(static_cast<std::size_t>(s.batch * s.c * s.ho * s.wo)), block_threads, 0, stream>>>(
      x, y, argmax, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void pool_backward(const T* dy, const std::int64_t* argmax, T* dx, const PoolShape& s, PointStats st,
                   cudaStream_t stream) {
  pool_backward_kernel<<<blocks_for(static_cast<std::size_t>(s.batch * s.c * s.h * s.w)), block_threads, 0, stream>>>(
      dy, argmax, dx, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}

#define MPSCOPE_POOL_TWINS(T)                                                                                  \
  template void pool_forward<T>(const T*, T*, std::int64_t*, const PoolShape&, PointStats, cudaStream_t);     \
  template void pool_backward<T>(const T*, const std::int64_t*, T*, const PoolShape&, PointStats, cudaStream_t);
MPSCOPE_POOL_TWINS(float)
MPSCOPE_POOL_TWINS(__half)
MPSCOPE_POOL_TWINS(__nv_bfloat16)

}  // namespace mpscope::gpu::ops

namespace mpscope::gpu {

namespace {

// The ops (sim/ops/pool.cpp's Pool2d and Flatten).
template <typename Tc, typename Tm>
class GpuPool2d final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;

  explicit GpuPool2d(const sim::Node& n) : Base(n) {}

  struct Scratch final : Buffers {
    DeviceBuffer<std::int64_t> argmax;  // (B, C·Ho·Wo) max pooling: each window's maximum, its index in the sample
  };
  std::unique_ptr<Buffers> make_buffers(std::int64_t batch, bool) const override {
    auto b = std::make_unique<Scratch>();
    if (max()) b->argmax = DeviceBuffer<std::int64_t>(static_cast<std::size_t>(batch * this->node().out_size()));
    return b;
  }
  void forward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    // max pooling rounds nothing: its outputs are checked, not counted (as on the CPU)
    ops::pool_forward<Tc>(x, y, static_cast<Scratch&>(*buffers).argmax.get(), shape(batch),
                          cx.points.template point<Tc>(cx.out_tensor, !max()), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc*, const Tc*, const Tc* dy, Tc* dx,
                std::int64_t batch) override {
    if (!dx) return;
    ops::pool_backward<Tc>(dy, static_cast<Scratch&>(*buffers).argmax.get(), dx, shape(batch),
                           cx.points.template point<Tc>(cx.in_grad_tensor), cx.stream);
  }

 private:
  bool max() const { return this->node().spec.type == sim::LayerSpec::Type::maxpool2d; }
  ops::PoolShape shape(std::int64_t batch) const {
    const sim::Node& n = this->node();
    return {batch, n.in_shape[0], n.in_shape[1], n.in_shape[2], n.out_shape[1], n.out_shape[2], n.spec.kernel,
            n.spec.stride, max()};
  }
};

// (C, H, W) -> (C·H·W): the same values, copied.
template <typename Tc, typename Tm>
class GpuFlatten final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;

  explicit GpuFlatten(const sim::Node& n) : Base(n) {}
  void forward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    copy_values(x, y, count(batch), cx.stream);
  }
  void backward(GpuOpContext<Tc, Tm>& cx, Buffers*, const Tc*, const Tc*, const Tc* dy, Tc* dx, std::int64_t batch) override {
    if (dx) copy_values(dy, dx, count(batch), cx.stream);
  }

 private:
  std::size_t count(std::int64_t batch) const { return static_cast<std::size_t>(batch * this->node().in_size()); }
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_pool(const sim::Node& n) {
  return std::make_unique<GpuPool2d<Tc, Tm>>(n);
}
template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_flatten(const sim::Node& n) {
  return std::make_unique<GpuFlatten<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_pool)
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_flatten)

}  // namespace mpscope::gpu
