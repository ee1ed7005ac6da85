// The CUDA twin of sim/ops/linear.cpp: y = x·Wᵀ + b over the last dimension of each sample (gpu/ops/op.cuh).
//
//   forward   Wc, bc = cast(W, b)                       (out, in), (out)  counted to the weight and bias tensors
//             sum = x·Wcᵀ                                (rows, out)       float32, the lane's GEMM
//             y = round(sum + bc)                        one float32 addition rounded once (cuBLASLt's epilogue)
//   backward  dW = round(dyᵀ·x), db = round(Σ_rows dy)   (out, in), (out)  rows in order, as the CPU adds (fast
//                                                                          mode, many rows: cuBLAS, float32)
//             dx = round(dy·Wc)                          (rows, in)        where an op before has parameters
// fp8 lanes: Wc, x and dy are quantized with their slots' scales (E4M3, E4M3, E5M2; gpu/fp8.cuh) and the GEMM
// results multiplied by the two inverse scales, as sim::RoundedOps::quantize and gemm do; db sums dy itself.
#include "gpu/ops/op.cuh"

namespace mpscope::gpu {

namespace {

template <typename Tc, typename Tm>
class GpuLinear final : public GpuOp<Tc, Tm> {
 public:
  using Base = GpuOp<Tc, Tm>;
  using typename Base::Buffers;
  using Base::params_;

  explicit GpuLinear(const sim::Node& n) : Base(n), in_(n.in_shape.back()), out_(n.out_shape.back()) { this->add_params(); }

  struct Scratch final : Buffers {
    DeviceBuffer<float> sum;   // (rows, max(in, out)) the GEMMs' float32 results
    DeviceBuffer<float> dw32;  // (out, in) the weight gradient before its rounding (Tc float: unused)
    DeviceBuffer<Tc> ones;     // (rows) fast mode's bias gradient: ones · dy
    DeviceBuffer<float> bias32;  // (out) ... in float32
    DeviceBuffer<float> xq, gq;  // fp8: the quantized input (rows, in), kept for dW, and output gradient (rows, out)
    Fp8Pack xq8, gq8;            // fp8 fast: the same as FP8 bytes
    DeviceBuffer<float> padded;  // fp8 fast: the FP8 GEMMs' padded results
  };
  void use_fp8(bool fast) override {
    fp8_ = true;
    fast_ = fast;
    wq_ = DeviceBuffer<float>(static_cast<std::size_t>(in_ * out_));
    if (fast) wq8_ = Fp8Pack(out_, in_);
  }
  std::unique_ptr<Buffers> make_buffers(std::int64_t batch, bool training) const override {
    auto b = std::make_unique<Scratch>();
    const std::int64_t rows = batch * rows_per_sample();
    b->sum = DeviceBuffer<float>(static_cast<std::size_t>(rows * (training ? std::max(in_, out_) : out_)));
    if (training && !std::is_same_v<Tc, float>) b->dw32 = DeviceBuffer<float>(static_cast<std::size_t>(in_ * out_));
    if (fp8_) {
      b->xq = DeviceBuffer<float>(static_cast<std::size_t>(rows * in_));
      if (training) b->gq = DeviceBuffer<float>(static_cast<std::size_t>(rows * out_));
    }
    if (fp8_ && fast_) {
      b->xq8 = Fp8Pack(rows, in_);
      if (training) b->gq8 = Fp8Pack(rows, out_);
      b->padded = DeviceBuffer<float>(static_cast<std::size_t>(std::max({pad16(rows) * pad16(out_), pad16(out_) * pad16(in_),
                                                                         pad16(rows) * pad16(in_)})));
    }
    if (training && has_bias() && rows > short_column) {
      b->ones = device_ones<Tc>(static_cast<std::size_t>(rows));
      b->bias32 = DeviceBuffer<float>(static_cast<std::size_t>(out_));
    }
    return b;
  }

  void forward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, Tc* y, std::int64_t batch, bool) override {
    auto& b = static_cast<Scratch&>(*buffers);
    const std::int64_t rows = batch * rows_per_sample();
    GpuParam<Tc, Tm>& w = params_[0];
    if (fp8_) {
      fp8_gemm_forward(cx, b, x, rows);
    } else {
      cx.cast_param(w);
      if (has_bias()) cx.cast_param(params_[1]);
      cx.gemm(false, true, rows, out_, in_, x, in_, w.compute(), in_, b.sum.get());
    }
    const PointStats st = cx.points.template point<Tc>(cx.out_tensor);
    if (has_bias()) {
      kernels::bias_add<Tc>(b.sum.get(), params_[1].compute(), y, rows, out_, st, cx.stream);
    } else {
      kernels::cast<float, Tc>(b.sum.get(), y, static_cast<std::size_t>(rows * out_), st, cx.stream);
    }
  }

  void backward(GpuOpContext<Tc, Tm>& cx, Buffers* buffers, const Tc* x, const Tc*, const Tc* dy, Tc* dx,
                std::int64_t batch) override {
    auto& b = static_cast<Scratch&>(*buffers);
    const std::int64_t rows = batch * rows_per_sample();
    GpuParam<Tc, Tm>& w = params_[0];
    float* dw32 = nullptr;
    if constexpr (std::is_same_v<Tc, float>) dw32 = w.grad.get();
    else dw32 = b.dw32.get();
    if (fp8_) fp8_gemm_weight_grad(cx, b, dy, rows);
    else cx.gemm(true, false, out_, in_, rows, dy, out_, x, in_, dw32);
    kernels::cast<float, Tc>(dw32, w.grad.get(), w.size(), cx.points.template point<Tc>(w.grad_tensor), cx.stream);
    if (has_bias()) {
      const PointStats st = cx.points.template point<Tc>(params_[1].grad_tensor);
      if (!fast_column_sums(cx, dy, rows, out_, b.ones.get(), b.bias32.get(), params_[1].grad.get(), st))
        kernels::column_sums<Tc>(dy, params_[1].grad.get(), rows, out_, st, kernels::GradCheck{}, cx.stream);
    }
    if (!dx) return;
    if (fp8_) fp8_gemm_input_grad(cx, b, rows);
    else cx.gemm(false, false, rows, in_, out_, dy, out_, w.compute(), in_, b.sum.get());
    kernels::cast<float, Tc>(b.sum.get(), dx, static_cast<std::size_t>(rows * in_),
                             cx.points.template point<Tc>(cx.in_grad_tensor), cx.stream);
  }

 private:
  bool has_bias() const { return params_.size() > 1; }
  // (batch, samples × features) as (rows, features)
  std::int64_t rows_per_sample() const { return this->node().in_size() / in_; }

  // fp8 (<float, float> only): sum (rows, out) = descale · xq·wqᵀ, the weight quantized first, then the bias
  // cast, then the input (the CPU's order of rounding points)
  void fp8_gemm_forward(GpuOpContext<Tc, Tm>& cx, Scratch& b, const Tc* x, std::int64_t rows) {
    if constexpr (fp8_lane) {
      Fp8Slot* slot = cx.fp8;  // [0] input, [1] weight, [2] output gradient
      kernels::fp8_quantize<float>(Fp8Kind::e4m3, params_[0].master.get(), out_, in_, out_, in_, slot + 1, cx.fp8_amax,
                                   wq_.get(), nullptr, cx.points.quantized(params_[0].tensor), cx.stream);
      if (has_bias()) cx.cast_param(params_[1]);
      kernels::fp8_quantize<float>(Fp8Kind::e4m3, x, rows, in_, rows, in_, slot, cx.fp8_amax, b.xq.get(), nullptr,
                                   cx.points.quantized(cx.in_tensor), cx.stream);
      if (fast_) {  // xq (rows16, in16) · wq (out16, in16)ᵀ on the FP8 tensor cores
        wq8_.pack(Fp8Kind::e4m3, wq_.get(), cx.fp8_unit, cx.stream);
        b.xq8.pack(Fp8Kind::e4m3, b.xq.get(), cx.fp8_unit, cx.stream);
        fp8_tensor_core_gemm(*cx.gemm.blas, rows, out_, in_, b.xq8.bytes.get(), Fp8Kind::e4m3, slot, wq8_.bytes.get(),
                             Fp8Kind::e4m3, slot + 1, b.padded.get(), b.sum.get(), cx.stream);
        return;
      }
      cx.gemm(false, true, rows, out_, in_, b.xq.get(), in_, wq_.get(), in_, b.sum.get());
      kernels::fp8_descale(b.sum.get(), static_cast<std::size_t>(rows * out_), slot, slot + 1, cx.stream);
    }
  }
  // dW (out, in) = descale · gqᵀ·xq into the weight gradient, gq = dy quantized (E5M2)
  void fp8_gemm_weight_grad(GpuOpContext<Tc, Tm>& cx, Scratch& b, const Tc* dy, std::int64_t rows) {
    if constexpr (fp8_lane) {
      Fp8Slot* slot = cx.fp8;
      kernels::fp8_quantize<float>(Fp8Kind::e5m2, dy, rows, out_, rows, out_, slot + 2, true, b.gq.get(), nullptr,
                                   cx.points.quantized(cx.out_grad_tensor), cx.stream);
      float* dw = params_[0].grad.get();
      if (fast_) {  // gqᵀ (out16, rows16) · xqᵀ (in16, rows16)ᵀ
        b.gq8.pack(Fp8Kind::e5m2, b.gq.get(), cx.fp8_unit, cx.stream);
        fp8_tensor_core_gemm(*cx.gemm.blas, out_, in_, rows, b.gq8.transposed.get(), Fp8Kind::e5m2, slot + 2,
                             b.xq8.transposed.get(), Fp8Kind::e4m3, slot, b.padded.get(), dw, cx.stream);
        return;
      }
      cx.gemm(true, false, out_, in_, rows, b.gq.get(), out_, b.xq.get(), in_, dw);
      kernels::fp8_descale(dw, params_[0].size(), slot + 2, slot, cx.stream);
    }
  }
  // sum (rows, in) = descale · gq·wq
  void fp8_gemm_input_grad(GpuOpContext<Tc, Tm>& cx, Scratch& b, std::int64_t rows) {
    if constexpr (fp8_lane) {
      if (fast_) {  // gq (rows16, out16) · wqᵀ (in16, out16)ᵀ
        fp8_tensor_core_gemm(*cx.gemm.blas, rows, in_, out_, b.gq8.bytes.get(), Fp8Kind::e5m2, cx.fp8 + 2,
                             wq8_.transposed.get(), Fp8Kind::e4m3, cx.fp8 + 1, b.padded.get(), b.sum.get(), cx.stream);
        return;
      }
      cx.gemm(false, false, rows, in_, out_, b.gq.get(), out_, wq_.get(), in_, b.sum.get());
      kernels::fp8_descale(b.sum.get(), static_cast<std::size_t>(rows * in_), cx.fp8 + 2, cx.fp8 + 1, cx.stream);
    }
  }

  static constexpr bool fp8_lane = std::is_same_v<Tc, float> && std::is_same_v<Tm, float>;
  std::int64_t in_, out_;
  bool fp8_ = false, fast_ = false;
  DeviceBuffer<float> wq_;  // fp8: the quantized weight (out, in)
  Fp8Pack wq8_;             // fp8 fast: ... as FP8 bytes
};

}  // namespace

template <typename Tc, typename Tm>
std::unique_ptr<GpuOp<Tc, Tm>> make_gpu_linear(const sim::Node& n) {
  return std::make_unique<GpuLinear<Tc, Tm>>(n);
}
MPSCOPE_INSTANTIATE_GPU_OP(make_gpu_linear)

}  // namespace mpscope::gpu
