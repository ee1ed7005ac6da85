// The CUDA twin of sim/ops/conv2d.cpp: the layouts around its GEMMs and its rounding points (gpu/ops/ops.cuh).
#include "gpu/check.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/ops/op.cuh"
#include "gpu/ops/ops.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::ops {

namespace {

using kernels::block_threads;
using kernels::blocks_for;

// The layout kernels index in I: 32-bit where the tensor allows (64-bit division is many instructions, and these
// kernels do little else).
template <typename T, typename I>
__global__ void im2col_kernel(const T* x, T* cols, ConvShape shape) {
  const I c = static_cast<I>(shape.c), h = static_cast<I>(shape.h), w = static_cast<I>(shape.w), k = static_cast<I>(shape.k);
  const I wo = static_cast<I>(shape.wo), positions = static_cast<I>(shape.positions()), patch = static_cast<I>(shape.patch());
  const I stride = static_cast<I>(shape.stride), pad = static_cast<I>(shape.pad);
  const I n = static_cast<I>(shape.batch) * positions * patch;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const I row = i / patch, col = i % patch;
    const I b = row / positions, oh = row % positions / wo, ow = row % wo;
    const I ci = col / (k * k), kh = col % (k * k) / k, kw = col % k;
    const I ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
    const bool inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
    cols[i] = inside ? x[((b * c + ci) * h + ih) * w + iw] : from_double<T>(0.0);
  }
}

template <typename T>
__global__ void conv_output_kernel(const float* sum, T* y, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * s.f * p), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / (s.f * p), f = static_cast<std::int64_t>(i) / p % s.f;
      v = sum[(b * p + static_cast<std::int64_t>(i) % p) * s.f + f];
      y[i] = from_double<T>(v);
      r = to_double(y[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename T>
__global__ void conv_bias_kernel(T* y, const T* bias, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * s.f * p), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      v = to_double(y[i]) + to_double(bias[static_cast<std::int64_t>(i) / p % s.f]);
      y[i] = from_double<T>(v);
      r = to_double(y[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

template <typename T>
__global__ void conv_grad_rows_kernel(const T* dy, T* dy_rows, ConvShape s) {
  const std::int64_t p = s.positions();
  for_each(static_cast<std::size_t>(s.batch * p * s.f), [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / s.f, f = static_cast<std::int64_t>(i) % s.f;
    dy_rows[i] = dy[(row / p * s.f + f) * p + row % p];
  });
}

// One thread per channel; every thread of the block reaches the tally once.
template <typename T>
__global__ void conv_bias_grad_kernel(const T* dy, T* db, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t f = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = f < s.f;
  double v = 0, r = 0;
  if (active) {
    const std::int64_t p = s.positions();
    for (std::int64_t b = 0; b < s.batch; ++b)
      for (std::int64_t q = 0; q < p; ++q) v += to_double(dy[(b * s.f + f) * p + q]);
    db[f] = from_double<T>(v);
    r = to_double(db[f]);
  }
  tally.add(active, v, r);
  tally.flush();
}

template <typename T, typename I>
__global__ void conv_input_grad_rows_kernel(const T* dy, T* dcols, ConvShape shape) {
  const I f = static_cast<I>(shape.f), h = static_cast<I>(shape.h), w = static_cast<I>(shape.w), k = static_cast<I>(shape.k);
  const I ho = static_cast<I>(shape.ho), wo = static_cast<I>(shape.wo), stride = static_cast<I>(shape.stride);
  const I pad = static_cast<I>(shape.pad), fan = f * k * k;
  const I n = static_cast<I>(shape.batch) * h * w * fan;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const I row = i / fan, col = i % fan;
    const I b = row / (h * w), ih = row % (h * w) / w, iw = row % w;
    const I fi = col / (k * k), kh = col % (k * k) / k, kw = col % k;
    const I th = ih + pad - kh, tw = iw + pad - kw;
    T v = from_double<T>(0.0);
    if (th >= 0 && tw >= 0 && th % stride == 0 && tw % stride == 0 && th / stride < ho && tw / stride < wo)
      v = dy[(b * f + fi) * (ho * wo) + th / stride * wo + tw / stride];
    dcols[i] = v;
  }
}

template <typename T>
__global__ void conv_weights_by_output_kernel(const T* w, T* w_rows, ConvShape s) {
  const std::int64_t taps = s.k * s.k;
  for_each(static_cast<std::size_t>(s.f * taps * s.c), [&](std::size_t i, bool active) {
    if (!active) return;
    const std::int64_t row = static_cast<std::int64_t>(i) / s.c, ci = static_cast<std::int64_t>(i) % s.c;
    w_rows[i] = w[(row / taps * s.c + ci) * taps + row % taps];
  });
}

template <typename T>
__global__ void conv_input_grad_kernel(const float* out, T* dx, ConvShape s, PointStats st) {
  __shared__ unsigned bins[BlockHistogram::shared_size];
  PointTally<T> tally(st, bins);
  const std::int64_t area = s.h * s.w;
  for_each(static_cast<std::size_t>(s.batch * s.c * area), [&](std::size_t i, bool active) {
    double v = 0, r = 0;
    if (active) {
      const std::int64_t b = static_cast<std::int64_t>(i) / (s.c * area), ci = static_cast<std::int64_t>(i) / area % s.c;
      v = out[(b * area + static_cast<std::int64_t>(i) % area) * s.c + ci];
      dx[i] = from_double<T>(v);
      r = to_double(dx[i]);
    }
    tally.add(active, v, r);
  });
  tally.flush();
}

std::size_t count(std::int64_t n) { return static_cast<std::size_t>(n); }

}  // namespace

template <typename T>
void im2col(const T* x, T* cols, const ConvShape& s, cudaStream_t stream) {
  const std::int64_t n = s.batch * s.positions() * s.patch();
  if (std::max(n, s.batch * s.c * s.h * s.w) < (std::int64_t{1} << 30))  // every index, and room for the grid stride
    im2col_kernel<T, int><<<blocks_for(count(n)), block_threads, 0, stream>>>(x, cols, s);
  else
    im2col_kernel<T, std::int64_t><<<blocks_for(count(n)), block_threads, 0, stream>>>(x, cols, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_output(const float* sum, T* y, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_output_kernel<<<blocks_for(count(s.batch * s.f * s.positions())), block_threads, 0, stream>>>(sum, y, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_bias(T* y, const T* bias, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_bias_kernel<<<blocks_for(count(s.batch * s.f * s.positions())), block_threads, 0, stream>>>(y, bias, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_grad_rows(const T* dy, T* dy_rows, const ConvShape& s, cudaStream_t stream) {
  conv_grad_rows_kernel<<<blocks_for(count(s.batch * s.positions() * s.f)), block_threads, 0, stream>>>(dy, dy_rows, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_bias_grad(const T* dy, T* db, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_bias_grad_kernel<<<kernels::row_blocks(s.f), kernels::row_threads, 0, stream>>>(dy, db, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_input_grad_rows(const T* dy, T* dcols, const ConvShape& s, cudaStream_t stream) {
  const std::int64_t n = s.batch * s.h * s.w * s.f * s.k * s.k;
  if (std::max(n, s.batch * s.f * s.positions()) < (std::int64_t{1} << 30))  // every index, and the grid stride
    conv_input_grad_rows_kernel<T, int><<<blocks_for(count(n)), block_threads, 0, stream>>>(dy, dcols, s);
  else
    conv_input_grad_rows_kernel<T, std::int64_t><<<blocks_for(count(n)), block_threads, 0, stream>>>(dy, dcols, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_weights_by_output(const T* w, T* w_rows, const ConvShape& s, cudaStream_t stream) {
  conv_weights_by_output_kernel<<<blocks_for(count(s.f * s.k * s.k * s.c)), block_threads, 0, stream>>>(w, w_rows, s);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}
template <typename T>
void conv_input_grad(const float* out, T* dx, const ConvShape& s, PointStats st, cudaStream_t stream) {
  conv_input_grad_kernel<<<blocks_for(count(s.batch * s.c * s.h * s.w)), block_threads, 0, stream>>>(out, dx, s, st);
  MPSCOPE_CUDA_CHECK(cudaGetLastError());
}

#define MPSCOPE_CONV_TWINS(T)                                                                          \
  template void im2col<T>(const T*, T*, const ConvShape&, cudaStream_t);                               \
  template void conv_output<T>(const float*, T*, const ConvShape&, PointStats, cudaStream_t);          \
  template void conv_bias<T>(T*, const T*, const ConvShape&, PointStats, cudaStream_t);                \
  template void conv_grad_rows<T>(const T*, T*, const ConvShape&, cudaStream_t);                       \
  template void conv_bias_grad<T>(const T*, T*, const ConvShape&, PointStats, cudaStream_t);           \
  template void conv_input_grad_rows<T>(const T*, T*, const ConvShape&, cudaStream_t);                 \
  template void conv_weights_by_output<T>(const T*, T*, const ConvShape&, cudaStream_t);               \
  template void conv_input_grad<T>(const float*, T*, const ConvShape&, PointStats, cudaStream_t);
MPSCOPE_CONV_TWINS(float)
MPSCOPE_CONV_TWINS(__half)
MPSCOPE_CONV_TWINS(__nv_bfloat16)

}  // namespace mpscope::gpu::ops

namespace mpscope::gpu {

namespace {

// The op (sim/ops/conv2d.cpp's Conv2d): the kernels above around the lane's GEMMs.
template <typename Tc, typename Tm>
class GpuConv2d final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;
  using Base::params_;

  explicit GpuConv2d(const sim::Node& n) : Base(n) { this->add_params(); }

  struct Scratch final : Buffers {
    DeviceBuffer<Tc> cols;      // (B·Ho·Wo, C·k·k) the forward GEMM's input, kept for the weight gradient
    DeviceBuffer<float> sum;    // (B·Ho·Wo, F) and (B·H·W, C): the GEMMs' float32 results
    DeviceBuffer<Tc> dy_rows;   // (B·Ho·Wo, F)
    DeviceBuffer<float> dw32;   // (F, C·k·k) (Tc float: unused)
    DeviceBuffer<Tc> dcols;     // (B·H·W, F·k·k)
    DeviceBuffer<Tc> w_rows;    // (F·k·k, C)
    DeviceBuffer<Tc> ones;      // (B·Ho·Wo) fast mode's bias gradient: ones · dy_rows
    DeviceBuffer<Tc> bias_rows; // (B·Ho·Wo, F) fp8 fast: dy itself in dy_rows' layout (dy_rows holds its quantization)
    DeviceBuffer<float> bias32; // (F) ... in float32
    DeviceBuffer<Tc> xq, gq;    // fp8 (Tc float): the quantized input (B, C·H·W) and output gradient (B, F·Ho·Wo)
    Fp8Pack cols8, dy_rows8, dcols8, w_rows8;  // fp8 fast: cols, dy_rows, dcols, w_rows as FP8 bytes
    DeviceBuffer<float> padded;                // fp8 fast: the FP8 GEMMs' padded results
  };
  // fp8 lanes (sim/ops/conv2d.cpp with RoundedOps::quantize): W, x and dy quantized with their slots' scales (E4M3,
  // E4M3, E5M2), the GEMM results multiplied by the two inverse scales; the bias gradient sums dy itself.
  // Fast mode runs the three GEMMs on the FP8 tensor cores (the quantized values packed as bytes, Fp8Pack).
  void use_fp8(bool fast) override {
    fp8_ = true;
    fast_ = fast;
    wq_ = DeviceBuffer<float>(static_cast<std::size_t>(params_[0].size()));
    const sim::Node& node = this->node();
    if (fast) wq8_ = Fp8Pack(node.out_shape[0], node.in_shape[0] * node.spec.kernel * node.spec.kernel);
  }
  std::unique_ptr<Buffers> make_buffers(std::int64_t batch, bool training) const override {
    const ops::ConvShape s = shape(batch);
    const auto n = [](std::int64_t v) { return static_cast<std::size_t>(v); };
    const std::int64_t outputs = batch * s.positions(), inputs = batch * s.h * s.w, fan = s.f * s.k * s.k;
    auto b = std::make_unique<Scratch>();
    b->cols = DeviceBuffer<Tc>(n(outputs * s.patch()));
    if (fp8_) {
      b->xq = DeviceBuffer<Tc>(n(batch * s.c * s.h * s.w));
      if (training) b->gq = DeviceBuffer<Tc>(n(outputs * s.f));
    }
    b->sum = DeviceBuffer<float>(n(std::max(outputs * s.f, training ? inputs * s.c : 0)));
    if (fp8_ && fast_) {
      b->cols8 = Fp8Pack(outputs, s.patch());
      std::int64_t padded = pad16(outputs) * pad16(s.f);
      if (training) {
        b->dy_rows8 = Fp8Pack(outputs, s.f);
        padded = std::max(padded, pad16(s.f) * pad16(s.patch()));
        if (this->node().needs_input_grad) {
          b->dcols8 = Fp8Pack(inputs, fan);
          b->w_rows8 = Fp8Pack(fan, s.c);
          padded = std::max(padded, pad16(inputs) * pad16(s.c));
        }
      }
      b->padded = DeviceBuffer<float>(n(padded));
    }
    if (!training) return b;
    b->dy_rows = DeviceBuffer<Tc>(n(outputs * s.f));
    if (!std::is_same_v<Tc, float>) b->dw32 = DeviceBuffer<float>(n(s.f * s.patch()));
    if (has_bias() && outputs > short_column) {
      b->ones = device_ones<Tc>(n(outputs));
      b->bias32 = DeviceBuffer<float>(n(s.f));
      if (fp8_ && fast_) b->bias_rows = DeviceBuffer<Tc>(n(outputs * s.f));
    }
    if (this->node().needs_input_grad) {
      b->dcols = DeviceBuffer<Tc>(n(inputs * fan));
      b->w_rows = DeviceBuffer<Tc>(n(fan * s.c));
    }
    return b;
  }

  void forward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    auto& b = static_cast<Scratch&>(*buffers);
    const ops::ConvShape s = shape(batch);
    GpuParam<Tc, Tm>& w = params_[0];
    const Tc* weights = w.compute();
    if (fp8_) {
      weights = fp8_quantize_inputs(cx, b, x, batch);
      x = b.xq.get();
    } else {
      cx.cast_param(w);
      if (has_bias()) cx.cast_param(params_[1]);
    }
    ops::im2col<Tc>(x, b.cols.get(), s, cx.stream);
    if (fp8_ && fast_) {  // cols (B·Ho·Wo, C·k·k) · wq (F, C·k·k)ᵀ on the FP8 tensor cores
      fp8_fast_gemm(cx, b.padded, b.cols8, Fp8Kind::e4m3, b.cols.get(), cx.fp8, false, wq8_, Fp8Kind::e4m3, wq_.get(),
                    cx.fp8 + 1, false, b.sum.get());
    } else {
      cx.gemm(false, true, batch * s.positions(), s.f, s.patch(), b.cols.get(), s.patch(), weights, s.patch(), b.sum.get());
      if (fp8_) kernels::fp8_descale(b.sum.get(), static_cast<std::size_t>(batch * s.positions() * s.f), cx.fp8, cx.fp8 + 1, cx.stream);
    }
    ops::conv_output<Tc>(b.sum.get(), y, s, cx.points.template point<Tc>(cx.out_tensor), cx.stream);
    if (has_bias()) ops::conv_bias<Tc>(y, params_[1].compute(), s, cx.points.template point<Tc>(cx.out_tensor), cx.stream);
  }

  void backward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc*, const Tc*, const Tc* dy, Tc* dx,
                std::int64_t batch) override {
    auto& b = static_cast<Scratch&>(*buffers);
    const ops::ConvShape s = shape(batch);
    GpuParam<Tc, Tm>& w = params_[0];
    const Tc* dyq = dy;  // (fp8: quantized; the bias gradient sums dy itself)
    if (fp8_) dyq = fp8_quantize_grad(cx, b, dy, batch);
    ops::conv_grad_rows<Tc>(dyq, b.dy_rows.get(), s, cx.stream);
    float* dw32 = nullptr;
    if constexpr (std::is_same_v<Tc, float>) dw32 = w.grad.get();
    else dw32 = b.dw32.get();
    if (fp8_ && fast_) {  // dy_rowsᵀ (F, B·Ho·Wo) · colsᵀ (C·k·k, B·Ho·Wo)ᵀ
      fp8_fast_gemm(cx, b.padded, b.dy_rows8, Fp8Kind::e5m2, b.dy_rows.get(), cx.fp8 + 2, true, b.cols8, Fp8Kind::e4m3,
                    nullptr, cx.fp8, true, dw32);
    } else {
      cx.gemm(true, false, s.f, s.patch(), batch * s.positions(), b.dy_rows.get(), s.f, b.cols.get(), s.patch(), dw32);
      if (fp8_) kernels::fp8_descale(dw32, w.size(), cx.fp8 + 2, cx.fp8, cx.stream);
    }
    kernels::cast<float, Tc>(dw32, w.grad.get(), w.size(), cx.points.template point<Tc>(w.grad_tensor), cx.stream);
    if (has_bias()) {
      const PointStats st = cx.points.template point<Tc>(params_[1].grad_tensor);
      Tc* db = params_[1].grad.get();
      // (fp8: dy_rows holds the quantized, scaled gradient; the bias gradient sums dy itself)
      const Tc* rows = b.dy_rows.get();
      if (fp8_ && b.bias_rows.size()) {
        ops::conv_grad_rows<Tc>(dy, b.bias_rows.get(), s, cx.stream);
        rows = b.bias_rows.get();
      }
      if ((fp8_ && !b.bias_rows.size()) ||
          !fast_column_sums(cx, rows, batch * s.positions(), s.f, b.ones.get(), b.bias32.get(), db, st))
        ops::conv_bias_grad<Tc>(dy, db, s, st, cx.stream);
    }
    if (!dx) return;
    const std::int64_t fan = s.f * s.k * s.k;
    ops::conv_input_grad_rows<Tc>(dyq, b.dcols.get(), s, cx.stream);
    ops::conv_weights_by_output<Tc>(fp8_ ? fp8_weights() : w.compute(), b.w_rows.get(), s, cx.stream);
    if (fp8_ && fast_) {  // dcols (B·H·W, F·k·k) · w_rowsᵀ (C, F·k·k)ᵀ
      fp8_fast_gemm(cx, b.padded, b.dcols8, Fp8Kind::e5m2, b.dcols.get(), cx.fp8 + 2, false, b.w_rows8, Fp8Kind::e4m3,
                    b.w_rows.get(), cx.fp8 + 1, true, b.sum.get());
    } else {
      cx.gemm(false, false, batch * s.h * s.w, s.c, fan, b.dcols.get(), fan, b.w_rows.get(), s.c, b.sum.get());
      if (fp8_) kernels::fp8_descale(b.sum.get(), static_cast<std::size_t>(batch * s.h * s.w * s.c), cx.fp8 + 2, cx.fp8 + 1, cx.stream);
    }
    ops::conv_input_grad<Tc>(b.sum.get(), dx, s, cx.points.template point<Tc>(cx.in_grad_tensor), cx.stream);
  }

 private:
  bool has_bias() const { return params_.size() > 1; }
  // fp8 (<float, float> only): the weight quantized, the bias cast, then the input quantized (the CPU's order);
  // returns the quantized weight
  const Tc* fp8_quantize_inputs(GpuOpContext<Tc, Tm>& cx, Scratch& b, const Tc* x, std::int64_t batch) {
    if constexpr (fp8_lane) {
      const ops::ConvShape s = shape(batch);
      kernels::fp8_quantize<float>(Fp8Kind::e4m3, params_[0].master.get(), s.f, s.patch(), s.f, s.patch(), cx.fp8 + 1,
                                   cx.fp8_amax, wq_.get(), nullptr, cx.points.quantized(params_[0].tensor), cx.stream);
      if (has_bias()) cx.cast_param(params_[1]);
      const std::int64_t features = s.c * s.h * s.w;
      kernels::fp8_quantize<float>(Fp8Kind::e4m3, x, batch, features, batch, features, cx.fp8, cx.fp8_amax, b.xq.get(),
                                   nullptr, cx.points.quantized(cx.in_tensor), cx.stream);
      return wq_.get();
    }
    return nullptr;
  }
  const Tc* fp8_quantize_grad(GpuOpContext<Tc, Tm>& cx, Scratch& b, const Tc* dy, std::int64_t batch) {
    if constexpr (fp8_lane) {
      const ops::ConvShape s = shape(batch);
      const std::int64_t outputs = s.f * s.positions();
      kernels::fp8_quantize<float>(Fp8Kind::e5m2, dy, batch, outputs, batch, outputs, cx.fp8 + 2, true, b.gq.get(),
                                   nullptr, cx.points.quantized(cx.out_grad_tensor), cx.stream);
      return b.gq.get();
    }
    return nullptr;
  }
  // d = x·yᵀ / scales on the FP8 tensor cores, x and y quantized values packed first (values null: packed already);
  // `xt` / `yt`: the operand is its pack's transpose (the stored matrix's rows are the contraction dimension's)
  void fp8_fast_gemm(GpuOpContext<Tc, Tm>& cx, DeviceBuffer<float>& padded, Fp8Pack& x, Fp8Kind xk, const void* x_values,
                     const Fp8Slot* xs, bool xt, Fp8Pack& y, Fp8Kind yk, const void* y_values, const Fp8Slot* ys, bool yt,
                     float* d) {
    if constexpr (fp8_lane) {  // (the values are float: Tc is)
      if (x_values) x.pack(xk, static_cast<const float*>(x_values), cx.fp8_unit, cx.stream);
      if (y_values) y.pack(yk, static_cast<const float*>(y_values), cx.fp8_unit, cx.stream);
      const std::int64_t m = xt ? x.cols : x.rows, k = xt ? x.rows : x.cols, n = yt ? y.cols : y.rows;
      fp8_tensor_core_gemm(*cx.gemm.blas, m, n, k, (xt ? x.transposed : x.bytes).get(), xk, xs,
                           (yt ? y.transposed : y.bytes).get(), yk, ys, padded.get(), d, cx.stream);
    }
  }
  const Tc* fp8_weights() const {
    if constexpr (fp8_lane) return wq_.get();
    return nullptr;
  }
  ops::ConvShape shape(std::int64_t batch) const {
    const sim::Node& n = this->node();
    return {batch, n.in_shape[0], n.in_shape[1], n.in_shape[2], n.out_shape[0], n.out_shape[1], n.out_shape[2],
            n.spec.kernel, n.spec.stride, n.spec.padding};
  }

  static constexpr bool fp8_lane = std::is_same_v<Tc, float> && std::is_same_v<Tm, float>;
  bool fp8_ = false, fast_ = false;
  DeviceBuffer<float> wq_;  // fp8: the quantized weight (F, C·k·k)
  Fp8Pack wq8_;             // fp8 fast: ... as FP8 bytes
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_conv2d(const sim::Node& n) {
  return std::make_unique<GpuConv2d<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_conv2d)

}  // namespace mpscope::gpu
