// FP8 quantization with per-tensor delayed scaling (gpu/fp8.cuh), the twin of sim::RoundedOps::quantize and
// sim::DelayedScaling::record.
#include <cuda_fp16.h>

#include "gpu/check.cuh"
#include "gpu/fp8.cuh"
#include "gpu/kernels_common.cuh"
#include "gpu/stats.cuh"

namespace mpscope::gpu::kernels {

namespace {

constexpr double e4m3_min_normal = 0.015625, e5m2_min_normal = 6.103515625e-05;  // 2^-6, 2^-14

// Nearest-even with saturation to the largest finite value, as sim::encode with Overflow::saturate: NaN stays NaN;
// infinity saturates in E4M3FN (no infinity there) and stays infinite in E5M2.
__device__ inline __nv_fp8_storage_t round_fp8(float x, Fp8Kind kind) {
  if (kind == Fp8Kind::e5m2 && isinf(x)) return x > 0 ? __nv_fp8_storage_t{0x7C} : __nv_fp8_storage_t{0xFC};
  return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, kind == Fp8Kind::e4m3 ? __NV_E4M3 : __NV_E5M2);
}

__device__ inline float fp8_value(__nv_fp8_storage_t q, Fp8Kind kind) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(q, kind == Fp8Kind::e4m3 ? __NV_E4M3 : __NV_E5M2)));
}

template <typename Out>
__global__ void quantize_kernel(Fp8Kind kind, const float* in, std::int64_t rows, std::int64_t cols, std::int64_t rows_p,
                                std::int64_t cols_p, Fp8Slot* slot, bool track_amax, Out* out, __nv_fp8_storage_t* out_t,
                                PointStats st) {
  const bool e4m3 = kind == Fp8Kind::e4m3;
  EffectTally tally(st.fx, e4m3 ? e4m3_min_normal : e5m2_min_normal, e4m3 ? e4m3_max : e5m2_max);
  const float scale = slot->scale;
  float amax = 0.0f;
  bool nonfinite = false;
  for_each(static_cast<std::size_t>(rows_p * cols_p), [&](std::size_t i, bool active) {
    const auto r = static_cast<std::int64_t>(i) / cols_p, c = static_cast<std::int64_t>(i) % cols_p;
    const bool real = active && r < rows && c < cols;  // (the rest is padding: zeros)
    const float v = real ? in[r * cols + c] : 0.0f;
    if (!isnan(v)) amax = fmaxf(amax, fabsf(v));
    const float scaled = v * scale;
    const __nv_fp8_storage_t q = real ? round_fp8(scaled, kind) : __nv_fp8_storage_t{0};
    const float back = fp8_value(q, kind);
    tally.add(real, scaled, back);
    nonfinite = nonfinite || (real && !isfinite(back));
    if (!active) return;
    if constexpr (std::is_same_v<Out, float>) out[i] = back;
    else out[i] = q;
    if (out_t != nullptr) out_t[c * rows_p + r] = q;
  });
  tally.flush();
  if (nonfinite && st.nonfinite != nullptr) *st.nonfinite = 1;
  if (track_amax) {
    for (int d = 16; d > 0; d /= 2) amax = fmaxf(amax, __shfl_down_sync(full_warp, amax, d));
    if (threadIdx.x % 32 == 0 && amax > 0.0f) atomicMax(&slot->amax_bits, __float_as_uint(amax));
  }
}

__global__ void end_step_kernel(Fp8Slot* slots, int count, double* history, int* filled, int* head, int length,
                                int margin) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= count) return;
  Fp8Slot& slot = slots[i];
  double* h = history + static_cast<std::size_t>(i) * length;
  h[head[i]] = static_cast<double>(__uint_as_float(slot.amax_bits));
  head[i] = (head[i] + 1) % length;
  if (filled[i] < length) ++filled[i];
  double window = h[0];
  for (int j = 1; j < filled[i]; ++j) window = fmax(window, h[j]);
  if (window > 0 && isfinite(window)) {
    const double format_max = i % 3 == 2 ? e5m2_max : e4m3_max;
    slot.scale = __double2float_rn(format_max / window / ldexp(1.0, margin));
    slot.inv_scale = __double2float_rn(1.0 / static_cast<double>(slot.scale));
  }
  slot.amax_bits = 0;
}

__global__ void descale_kernel(float* d, std::size_t n, const Fp8Slot* a, const Fp8Slot* b) {
  const float f = a->inv_scale * b->inv_scale;
  if (f == 1.0f) return;  // (RoundedOps::gemm skips it too)
  for_each(n, [&](std::size_t i, bool active) {
    if (active) d[i] = d[i] * f;
  });
}

__global__ void crop_descale_kernel(const float* src, std::int64_t ld, float* dst, std::int64_t rows, std::int64_t cols,
                                    const Fp8Slot* a, const Fp8Slot* b) {
  const float f = a->inv_scale * b->inv_scale;
  for_each(static_cast<std::size_t>(rows * cols), [&](std::size_t i, bool active) {
    if (!active) return;
    const auto r = static_cast<std::int64_t>(i) / cols, c = static_cast<std::int64_t>(i) % cols;
    const float v = src[r * ld + c];
    dst[i] = f == 1.0f ? v : v * f;
  });
}

}  // namespace

template <typename Out>
void fp8_quantize(Fp8Kind kind, const float* in, std::int64_t rows, std::int64_t cols, std::int64_t rows_p,
                  std::int64_t cols_p, Fp8Slot* slot, bool amax, Out* out, __nv_fp8_storage_t* out_t, PointStats st,
                  cudaStream_t s) {
  const auto n = static_cast<std::size_t>(rows_p * cols_p);
  if (n == 0) return;
  quantize_kernel<Out><<<blocks_for(n), block_threads, 0, s>>>(kind, in, rows, cols, rows_p, cols_p, slot, amax, out, out_t, st);
  MPSCOPE_LAUNCH_CHECK();
}
template void fp8_quantize<float>(Fp8Kind, const float*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, Fp8Slot*,
                                  bool, float*, __nv_fp8_storage_t*, PointStats, cudaStream_t);
template void fp8_quantize<__nv_fp8_storage_t>(Fp8Kind, const float*, std::int64_t, std::int64_t, std::int64_t,
                                               std::int64_t, Fp8Slot*, bool, __nv_fp8_storage_t*, __nv_fp8_storage_t*,
                                               PointStats, cudaStream_t);

void fp8_end_step(Fp8Slot* slots, int count, double* history, int* filled, int* head, int history_length, int margin,
                  cudaStream_t s) {
  end_step_kernel<<<(count + 63) / 64, 64, 0, s>>>(slots, count, history, filled, head, history_length, margin);
  MPSCOPE_LAUNCH_CHECK();
}

void fp8_descale(float* d, std::size_t n, const Fp8Slot* a, const Fp8Slot* b, cudaStream_t s) {
  if (n == 0) return;
  descale_kernel<<<blocks_for(n), block_threads, 0, s>>>(d, n, a, b);
  MPSCOPE_LAUNCH_CHECK();
}

void crop_descale(const float* src, std::int64_t ld, float* dst, std::int64_t rows, std::int64_t cols, const Fp8Slot* a,
                  const Fp8Slot* b, cudaStream_t s) {
  const auto n = static_cast<std::size_t>(rows * cols);
  if (n == 0) return;
  crop_descale_kernel<<<blocks_for(n), block_threads, 0, s>>>(src, ld, dst, rows, cols, a, b);
  MPSCOPE_LAUNCH_CHECK();
}

}  // namespace mpscope::gpu::kernels
