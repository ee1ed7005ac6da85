// Array-rounding kernels for AVX2 + F16C (compiled with -mavx2 -mf16c; called only when the CPU has both).
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <type_traits>

#include "sim/simd/round_kernels.hpp"

namespace mpscope::sim::simd {
namespace {
#include "sim/simd/round_kernels_generic.inl"

// fp16 nearest-even with the F16C conversion instructions (VCVTPS2PH with an explicit RNE immediate, then back);
// NaNs are replaced by the canonical quiet NaN so that results match the portable path bit for bit.
void fp16_nearest_f16c(const float* in, float* out, std::size_t n, const Float32Rounding& p,
                       const std::uint64_t* random) {
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 quiet_nan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    const __m128i half = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 y = _mm256_cvtph_ps(half);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    y = _mm256_blendv_ps(y, _mm256_or_ps(_mm256_and_ps(x, sign_mask), quiet_nan), nan);
    _mm256_storeu_ps(out + i, y);
  }
  round_generic<Rounding::nearest_even>(in + i, out + i, n - i, p, random);
}
}  // namespace

const RoundKernels& avx2_kernels() {
  static const RoundKernels kernels = {
      {generic_table[0], generic_table[1], generic_table[2], generic_table[3], generic_table[4]},
      fp16_nearest_f16c,
      round_bf16_nearest_bits,
      count_effects<float, float>, count_effects<double, float>, count_effects<double, double>};
  return kernels;
}

}  // namespace mpscope::sim::simd
