// The fp8 lane's GEMMs (sim/ops/linear.cpp with RoundedOps::quantize): each GEMM input is multiplied by its tensor's
// scale and rounded to E4M3 (forward: input and weight) or E5M2 (backward: the output gradient), the GEMM result is
// multiplied by the two inverse scales. Exact mode keeps the quantized values as float and runs the fma GEMM (the
// CPU's fp32 model, bit for bit); fast mode keeps FP8 bytes, padded to multiples of 16 and also transposed, for
// cuBLASLt's FP8 tensor-core kernels.
#include "gpu/check.cuh"
#include "gpu/mlp_lane.cuh"

namespace mpscope::gpu {

namespace {
std::size_t size(std::int64_t rows, std::int64_t cols) { return static_cast<std::size_t>(rows * cols); }
}  // namespace

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_setup() {
  fp8_state_ = Fp8State(3 * model_.layers(), config_, stream_.get());
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_layer_buffers(Layer& L) {
  if (exact_) {
    L.wq = DeviceBuffer<float>(size(L.out, L.in));
  } else {
    L.wq8 = Fp8Bytes(size(pad16(L.out), pad16(L.in)));
    L.wq8t = Fp8Bytes(size(pad16(L.in), pad16(L.out)));
  }
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_batch_buffers(Activations& a, std::int64_t rows, bool training) {
  const std::int64_t rows16 = pad16(rows);
  std::int64_t widest = 0, padded = 0;
  for (const Layer& L : layers_) {
    widest = std::max(widest, L.out);
    padded = std::max({padded, rows16 * pad16(L.out), rows16 * pad16(L.in), pad16(L.out) * pad16(L.in)});
    if (exact_) {
      a.xq.emplace_back(size(rows, L.in));
    } else {
      a.xq8.emplace_back(size(rows16, pad16(L.in)));
      a.xq8t.emplace_back(size(pad16(L.in), rows16));
    }
  }
  if (!exact_) a.padded = DeviceBuffer<float>(static_cast<std::size_t>(padded));
  if (!training) return;
  if (exact_) {
    a.gq = DeviceBuffer<float>(size(rows, widest));
  } else {
    a.gq8 = Fp8Bytes(size(rows16, pad16(widest)));
    a.gq8t = Fp8Bytes(size(pad16(widest), rows16));
  }
}

template <typename Tc, typename Tm>
PointStats GpuMlpLane<Tc, Tm>::fp8_point(const Stats& s, std::size_t t) {
  PointStats p;
  if (s.recording) p.fx = s.effects + t;  // (counted although the lane's other float32 points are not)
  p.nonfinite = flag_slot(s, tensors_[t].name, 0, static_cast<int>(next_point_));
  return p;
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_forward_gemm(Activations& a, int k, const float* in, const Stats& s) {
  if constexpr (fp8_capable) {
    const cudaStream_t stream = stream_.get();
    Layer& L = layers_[static_cast<std::size_t>(k)];
    Fp8Slot* slot = fp8_state_.slots.get() + 3 * k;  // [0] input, [1] weight
    const std::int64_t rows = a.rows, rows16 = pad16(rows), in16 = pad16(L.in), out16 = pad16(L.out);
    const std::size_t input = k == 0 ? input_tensor : tensor(k - 1, activation);
    // the CPU's order: the weight's quantization, the bias cast (a flag of the last update), the input's
    const PointStats weight_point = fp8_point(s, tensor(k, weight));
    flag_slot(s, tensors_[tensor(k, bias)].name, 0, static_cast<int>(next_point_), false, 4 * k + 1);
    const PointStats input_point = fp8_point(s, input);
    const Fp8Kind e4m3 = Fp8Kind::e4m3;
    if (exact_) {
      kernels::fp8_quantize<float>(e4m3, L.w.get(), L.out, L.in, L.out, L.in, slot + 1, a.training, L.wq.get(), nullptr,
                                   weight_point, stream);
      float* xq = a.xq[static_cast<std::size_t>(k)].get();
      kernels::fp8_quantize<float>(e4m3, in, rows, L.in, rows, L.in, slot, a.training, xq, nullptr, input_point, stream);
      kernels::gemm_fma<float>(false, true, rows, L.out, L.in, xq, L.in, L.wq.get(), L.in, a.scratch.get(), stream);
      kernels::fp8_descale(a.scratch.get(), size(rows, L.out), slot, slot + 1, stream);
    } else {
      kernels::fp8_quantize<__nv_fp8_storage_t>(e4m3, L.w.get(), L.out, L.in, out16, in16, slot + 1, a.training,
                                                L.wq8.get(), L.wq8t.get(), weight_point, stream);
      auto& xq8 = a.xq8[static_cast<std::size_t>(k)];
      kernels::fp8_quantize<__nv_fp8_storage_t>(e4m3, in, rows, L.in, rows16, in16, slot, a.training, xq8.get(),
                                                a.xq8t[static_cast<std::size_t>(k)].get(), input_point, stream);
      fp8_tensor_core_gemm(*blas_, rows, L.out, L.in, xq8.get(), e4m3, slot, L.wq8.get(), e4m3, slot + 1, a.padded.get(),
                           a.scratch.get(), stream);
    }
  }
}

template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_backward_gemms(Activations& a, int k, const float* gz, bool input_grad, const Stats& s) {
  if constexpr (fp8_capable) {
    const cudaStream_t stream = stream_.get();
    Layer& L = layers_[static_cast<std::size_t>(k)];
    Fp8Slot* slot = fp8_state_.slots.get() + 3 * k;  // [0] input, [1] weight, [2] output gradient
    const std::int64_t rows = a.rows, rows16 = pad16(rows), in16 = pad16(L.in), out16 = pad16(L.out);
    const PointStats grad_point = fp8_point(s, tensor(k, activation_grad));
    const Fp8Kind e5m2 = Fp8Kind::e5m2;
    if (exact_) {
      float* gq = a.gq.get();
      kernels::fp8_quantize<float>(e5m2, gz, rows, L.out, rows, L.out, slot + 2, true, gq, nullptr, grad_point, stream);
      // dW (out, in) = gqᵀ · xq, da (rows, in) = gq · wq
      kernels::gemm_fma<float>(true, false, L.out, L.in, rows, gq, L.out, a.xq[static_cast<std::size_t>(k)].get(), L.in,
                               L.gw.get(), stream);
      kernels::fp8_descale(L.gw.get(), L.gw.size(), slot + 2, slot, stream);
      if (!input_grad) return;
      kernels::gemm_fma<float>(false, false, rows, L.in, L.out, gq, L.out, L.wq.get(), L.in, a.scratch.get(), stream);
      kernels::fp8_descale(a.scratch.get(), size(rows, L.in), slot + 2, slot + 1, stream);
    } else {
      kernels::fp8_quantize<__nv_fp8_storage_t>(e5m2, gz, rows, L.out, rows16, out16, slot + 2, true, a.gq8.get(),
                                                a.gq8t.get(), grad_point, stream);
      // dW (out, in) = gqᵀ (out16, rows16) · (xqᵀ (in16, rows16))ᵀ
      fp8_tensor_core_gemm(*blas_, L.out, L.in, rows, a.gq8t.get(), e5m2, slot + 2,
                           a.xq8t[static_cast<std::size_t>(k)].get(), Fp8Kind::e4m3, slot, a.padded.get(), L.gw.get(), stream);
      if (!input_grad) return;
      // da (rows, in) = gq (rows16, out16) · (wᵀ (in16, out16))ᵀ
      fp8_tensor_core_gemm(*blas_, rows, L.in, L.out, a.gq8.get(), e5m2, slot + 2, L.wq8t.get(), Fp8Kind::e4m3, slot + 1,
                           a.padded.get(), a.scratch.get(), stream);
    }
  }
}

// RoundedOps::end_step, after the backward pass (skipped steps too): the step's amaxes give the next scales.
template <typename Tc, typename Tm>
void GpuMlpLane<Tc, Tm>::fp8_end_step() {
  fp8_state_.end_step(config_, stream_.get());
}

#define MPSCOPE_FP8(Tc, Tm)                                                                                             \
  template void GpuMlpLane<Tc, Tm>::fp8_setup();                                                                        \
  template void GpuMlpLane<Tc, Tm>::fp8_layer_buffers(Layer&);                                                          \
  template void GpuMlpLane<Tc, Tm>::fp8_batch_buffers(Activations&, std::int64_t, bool);                                                 \
  template PointStats GpuMlpLane<Tc, Tm>::fp8_point(const Stats&, std::size_t);                                         \
  template void GpuMlpLane<Tc, Tm>::fp8_forward_gemm(Activations&, int, const float*, const Stats&);                    \
  template void GpuMlpLane<Tc, Tm>::fp8_backward_gemms(Activations&, int, const float*, bool, const Stats&);             \
  template void GpuMlpLane<Tc, Tm>::fp8_end_step();
MPSCOPE_FP8(float, float)
MPSCOPE_FP8(__half, float)
MPSCOPE_FP8(__nv_bfloat16, float)
MPSCOPE_FP8(__half, __half)
#undef MPSCOPE_FP8

}  // namespace mpscope::gpu
