// Array-rounding kernels for AVX-512 F/BW/DQ/VL (compiled with those flags; called only when the CPU has them).
// fp16 uses the 16-lane VCVTPS2PH; bf16 uses VCVTNEPS2BF16 where the CPU has AVX512_BF16.
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <type_traits>

#include "sim/simd/round_kernels.hpp"

namespace mpscope::sim::simd {
namespace {
#include "sim/simd/round_kernels_generic.inl"

__m512 canonical_nan(__m512 x) {
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x7FC00000)));
}

void fp16_nearest_avx512(const float* in, float* out, std::size_t n, const Float32Rounding& p,
                         const std::uint64_t* random) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(in + i);
    const __m256i half = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 y = _mm512_cvtph_ps(half);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    y = _mm512_mask_mov_ps(y, nan, canonical_nan(x));
    _mm512_storeu_ps(out + i, y);
  }
  round_generic<Rounding::nearest_even>(in + i, out + i, n - i, p, random);
}

// VCVTNEPS2BF16 rounds to nearest-even but treats float32 subnormal inputs as zero; those lanes (and NaNs) are
// patched with the bit-pattern rounding, which is what the portable path computes for every lane.
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) void bf16_nearest_avx512bf16(
    const float* in, float* out, std::size_t n, const Float32Rounding& p, const std::uint64_t* random) {
  const __m512i low_bit = _mm512_set1_epi32(1);
  const __m512i bias = _mm512_set1_epi32(0x7FFF);
  const __m512i keep = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i largest_subnormal = _mm512_set1_epi32(0x007FFFFF);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(in + i);
    const __m256bh h = _mm512_cvtneps_pbh(x);
    __m512i y = _mm512_slli_epi32(_mm512_cvtepu16_epi32(std::bit_cast<__m256i>(h)), 16);
    const __m512i u = _mm512_castps_si512(x);
    const __m512i magnitude_minus_one = _mm512_sub_epi32(_mm512_and_si512(u, abs_mask), low_bit);
    const __mmask16 subnormal = _mm512_cmplt_epu32_mask(magnitude_minus_one, largest_subnormal);
    const __m512i rounded = _mm512_and_si512(
        _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), low_bit)), keep);
    y = _mm512_mask_mov_epi32(y, subnormal, rounded);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    _mm512_storeu_ps(out + i, _mm512_mask_mov_ps(_mm512_castsi512_ps(y), nan, canonical_nan(x)));
  }
  round_bf16_nearest_bits(in + i, out + i, n - i, p, random);
}

// The block check of count_effects in mask registers, for float results of float or double values: 16 values a
// step, no horizontal reduction (the generic check's vector of flags costs about as much to reduce as to compute).
// Partial blocks (a tensor's tail) take the generic check.
template <typename Before>
[[gnu::always_inline]] inline bool ordinary_block_avx512(const Before* before, const float* after, std::size_t start,
                                                         std::size_t end, std::uint32_t ordinary_lo,
                                                         std::uint32_t ordinary_span) {
  constexpr std::size_t block = 64;
  if (end - start != block) return ordinary_block<Before, float>(before, after, start, end, ordinary_lo, ordinary_span);
  const __m512i abs32 = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i abs64 = _mm512_set1_epi64(0x7FFFFFFFFFFFFFFF);
  const __m512i lo = _mm512_set1_epi32(static_cast<int>(ordinary_lo));
  const __m512i span = _mm512_set1_epi32(static_cast<int>(ordinary_span));
  __mmask16 unusual = 0;
  for (std::size_t i = start; i < end; i += 16) {
    const __m512i y = _mm512_and_si512(_mm512_loadu_si512(after + i), abs32);
    const __mmask16 odd = _mm512_cmpge_epu32_mask(_mm512_sub_epi32(y, lo), span);
    __mmask16 zero_before;
    if constexpr (sizeof(Before) == 4) {
      zero_before = _mm512_testn_epi32_mask(_mm512_loadu_si512(before + i), abs32);
    } else {
      const __mmask8 first = _mm512_testn_epi64_mask(_mm512_loadu_si512(before + i), abs64);
      const __mmask8 second = _mm512_testn_epi64_mask(_mm512_loadu_si512(before + i + 8), abs64);
      zero_before = _mm512_kunpackb(second, first);
    }
    const __mmask16 zero_from_zero = _mm512_testn_epi32_mask(y, y) & zero_before;
    unusual |= odd & static_cast<__mmask16>(~zero_from_zero);
  }
  return unusual == 0;
}
}  // namespace

const RoundKernels& avx512_kernels() {
  static const RoundKernels kernels = {
      {generic_table[0], generic_table[1], generic_table[2], generic_table[3], generic_table[4]},
      fp16_nearest_avx512,
      __builtin_cpu_supports("avx512bf16") ? bf16_nearest_avx512bf16 : round_bf16_nearest_bits,
      count_effects<float, float, ordinary_block_avx512<float>>,
      count_effects<double, float, ordinary_block_avx512<double>>, count_effects<double, double>};
  return kernels;
}

}  // namespace mpscope::sim::simd
