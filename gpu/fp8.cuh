// Internal: the FP8 side of an fp8 lane (sim::RoundedOps::quantize and sim::DelayedScaling, TransformerEngine
// style). Per layer three scaled tensors, each with a slot: 3k the GEMM input (E4M3), 3k+1 the weight (E4M3),
// 3k+2 the output gradient (E5M2). A tensor is multiplied by its slot's scale, rounded to nearest-even with
// saturation, and its amax noted; after the backward pass each slot's amax joins its history, which gives the
// next step's scale; GEMM results are multiplied by the two inverse scales.
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "gpu/blas.cuh"
#include "gpu/types.cuh"

namespace mpscope::gpu {

enum class Fp8Kind { e4m3, e5m2 };  // E4M3FN (saturating) and E5M2 (saturating; infinity kept)
constexpr double e4m3_max = 448.0, e5m2_max = 57344.0;

struct alignas(16) Fp8Slot {
  float inv_scale, scale;  // inv_scale = (float)(1 / (double)scale)
  unsigned amax_bits;      // this step's amax of |values| (NaN skipped), as float bits (atomicMax on non-negatives)
  unsigned unused;
};

namespace kernels {

// RoundedOps::quantize: q = round_sat(in * slot.scale) of in (rows, cols); amax of |in| into the slot (unless
// `amax` is false: evaluation). q fills `out` (rows_p, cols_p) as float values (exact mode) or as FP8 bytes (fast
// mode, Out = __nv_fp8_storage_t), zeros outside (rows, cols), and, when given, out_t (cols_p, rows_p) transposed:
// cuBLASLt's FP8 kernels want both operands with the contraction dimension contiguous and padded to 16. Effects and
// the inf/NaN flag are those of the rounding (no histogram: the recorded values are the unquantized ones).
template <typename Out>
void fp8_quantize(Fp8Kind kind, const float* in, std::int64_t rows, std::int64_t cols, std::int64_t rows_p,
                  std::int64_t cols_p, Fp8Slot* slot, bool amax, Out* out, __nv_fp8_storage_t* out_t, PointStats st,
                  cudaStream_t s);

// RoundedOps::end_step: per slot, the step's amax into the history (history_length values per slot, `filled` of
// them valid), scale = (format max / max of history) / 2^margin when that is positive and finite; amax reset.
void fp8_end_step(Fp8Slot* slots, int count, double* history, int* filled, int* head, int history_length, int margin,
                  cudaStream_t s);

// d (n) *= a.inv_scale * b.inv_scale (a float product, as RoundedOps::gemm's descale)
void fp8_descale(float* d, std::size_t n, const Fp8Slot* a, const Fp8Slot* b, cudaStream_t s);

// dst (rows, cols) = the top-left corner of src (rows of length ld) times a.inv_scale * b.inv_scale, as fp8_descale
void crop_descale(const float* src, std::int64_t ld, float* dst, std::int64_t rows, std::int64_t cols, const Fp8Slot* a,
                  const Fp8Slot* b, cudaStream_t s);

}  // namespace kernels

// cuBLASLt's FP8 kernels take operands padded with zeros to multiples of 16 in each dimension.
inline std::int64_t pad16(std::int64_t v) { return (v + 15) / 16 * 16; }

// d (m, n) = x (m16, k16) · y (n16, k16)ᵀ times the two slots' inverse scales, on the FP8 tensor cores (x, y are
// packs' bytes or transposed bytes of kinds xk, yk), through `padded` (m16, n16), cropped and descaled.
inline void fp8_tensor_core_gemm(Blas& blas, std::int64_t m, std::int64_t n, std::int64_t k, const __nv_fp8_storage_t* x,
                                 Fp8Kind xk, const Fp8Slot* xs, const __nv_fp8_storage_t* y, Fp8Kind yk,
                                 const Fp8Slot* ys, float* padded, float* d, cudaStream_t stream) {
  const auto type = [](Fp8Kind kind) { return kind == Fp8Kind::e4m3 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2; };
  const std::int64_t n16 = pad16(n);
  blas.gemm_fp8(pad16(m), n16, pad16(k), x, type(xk), y, type(yk), padded);
  kernels::crop_descale(padded, n16, d, m, n, xs, ys, stream);
}

}  // namespace mpscope::gpu
