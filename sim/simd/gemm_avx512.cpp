// AVX-512 twins of the GEMM kernels in sim/gemm.cpp (compiled with AVX-512 F/BW/DQ/VL; called only when the
// CPU has them). Results are identical to the portable kernels: tests/test_gemm.cpp compares them.
#include <immintrin.h>

#include <cstdint>

#include "sim/simd/gemm_kernels.hpp"

namespace mpscope::sim::simd {

// H100 model on 16 output columns at a time, one row of A, K in blocks of 16. Per block, per lane:
//   emax  = max(e(C), e(a_k) + e(b_k) over nonzero products)
//   term  = trunc(x * 2^(25 - emax)) for every product x = a_k b_k (exact in float32) and for C: the term in units
//           of 2^(emax-25), truncated toward zero (cvtt), as an int32 (|term| < 2^27, |sum of 16| < 2^31)
//   D     = RZ_fp32((sum + C term) * 2^(emax - 25)), computed in double (exact) and converted toward zero.
// A lane whose emax stays below -100 has no nonzero product (their exponents are >= -28): D = C + 0.
namespace {

// e(C) of an accumulator: the float exponent, subnormals as -126, zero as zero_exponent.
__m512i accumulator_exponent(__m512 acc) {
  const __m512i field = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(acc), 23), _mm512_set1_epi32(0xFF));
  const __mmask16 zero = _mm512_cmp_ps_mask(acc, _mm512_setzero_ps(), _CMP_EQ_OQ);
  return _mm512_mask_mov_epi32(_mm512_sub_epi32(_mm512_max_epi32(field, _mm512_set1_epi32(1)), _mm512_set1_epi32(127)),
                               zero, _mm512_set1_epi32(zero_exponent));
}

// 2^(25 - emax) as a float32; clamped where no product takes part (those lanes are replaced by C + 0).
__m512 unit_reciprocal(__m512i emax) {
  const __m512i field = _mm512_min_epi32(_mm512_max_epi32(_mm512_sub_epi32(_mm512_set1_epi32(152), emax),
                                                          _mm512_set1_epi32(1)),
                                         _mm512_set1_epi32(254));
  return _mm512_castsi512_ps(_mm512_slli_epi32(field, 23));
}

// RZ_fp32((sum + c_term) * 2^(emax - 25)): exact in double, then converted toward zero.
__m512 finish_block(__m512i sum, __m512i c_term, __m512i emax, __m512 acc) {
  const __m512i unit_exp = _mm512_add_epi32(emax, _mm512_set1_epi32(1023 - 25));
  __m256 half[2];
  for (int h = 0; h < 2; ++h) {
    const __m256i s = h == 0 ? _mm512_castsi512_si256(sum) : _mm512_extracti64x4_epi64(sum, 1);
    const __m256i c = h == 0 ? _mm512_castsi512_si256(c_term) : _mm512_extracti64x4_epi64(c_term, 1);
    const __m256i e = h == 0 ? _mm512_castsi512_si256(unit_exp) : _mm512_extracti64x4_epi64(unit_exp, 1);
    const __m512d unit = _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_cvtepi32_epi64(e), 52));
    const __m512d total = _mm512_add_pd(_mm512_cvtepi32_pd(s), _mm512_cvtepi32_pd(c));
    half[h] = _mm512_cvt_roundpd_ps(_mm512_mul_pd(total, unit), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  }
  const __m512 result = _mm512_insertf32x8(_mm512_castps256_ps512(half[0]), half[1], 1);
  const __mmask16 no_products = _mm512_cmplt_epi32_mask(emax, _mm512_set1_epi32(-100));
  return _mm512_mask_mov_ps(result, no_products, _mm512_add_ps(acc, _mm512_setzero_ps()));
}

// Rows consecutive rows of A against one 16-column panel of B: each panel row is loaded once for all Rows.
template <int Rows>
void h100_panel(const PackedFp16& a, std::int64_t row0, const float* b_val, const std::int32_t* b_exp, float* d,
                std::int64_t n, std::int64_t j0, __mmask16 lanes) {
  const std::int64_t kp = a.cols;
  __m512 acc[Rows];
  for (int r = 0; r < Rows; ++r) acc[r] = _mm512_maskz_loadu_ps(lanes, d + (row0 + r) * n + j0);
  for (std::int64_t k0 = 0; k0 < kp; k0 += 16) {
    __m512i emax[Rows];
    for (int r = 0; r < Rows; ++r) emax[r] = accumulator_exponent(acc[r]);
    for (std::int64_t k = k0; k < k0 + 16; ++k) {
      const __m512i be = _mm512_loadu_si512(b_exp + k * 16);
      for (int r = 0; r < Rows; ++r)
        emax[r] = _mm512_max_epi32(emax[r], _mm512_add_epi32(be, _mm512_set1_epi32(a.exponent[(row0 + r) * kp + k])));
    }
    __m512 scale[Rows];
    __m512i sum[Rows];
    for (int r = 0; r < Rows; ++r) {
      scale[r] = unit_reciprocal(emax[r]);
      sum[r] = _mm512_setzero_si512();
    }
    for (std::int64_t k = k0; k < k0 + 16; ++k) {
      const __m512 bv = _mm512_loadu_ps(b_val + k * 16);
      for (int r = 0; r < Rows; ++r) {
        const __m512 product = _mm512_mul_ps(bv, _mm512_set1_ps(a.value[(row0 + r) * kp + k]));  // exact
        sum[r] = _mm512_add_epi32(sum[r], _mm512_cvttps_epi32(_mm512_mul_ps(product, scale[r])));
      }
    }
    for (int r = 0; r < Rows; ++r)
      acc[r] = finish_block(sum[r], _mm512_cvttps_epi32(_mm512_mul_ps(acc[r], scale[r])), emax[r], acc[r]);
  }
  for (int r = 0; r < Rows; ++r) _mm512_mask_storeu_ps(d + (row0 + r) * n + j0, lanes, acc[r]);
}

}  // namespace

// H100 model on 16 output columns (one panel of B) at a time, K in blocks of 16. Per block, per lane:
//   emax  = max(e(C), e(a_k) + e(b_k) over nonzero products)
//   term  = trunc(x * 2^(25 - emax)) for every product x = a_k b_k (exact in float32) and for C: the term in units
//           of 2^(emax-25), truncated toward zero (cvtt), as an int32 (|term| < 2^27, |sum of 16| < 2^31)
//   D     = RZ_fp32((sum + C term) * 2^(emax - 25)), computed in double (exact) and converted toward zero.
// A lane whose emax stays below -100 has no nonzero product (their exponents are >= -28): D = C + 0.
void h100_avx512(const PackedFp16& a, const PackedFp16& b, float* d) {
  const std::int64_t m = a.rows, n = b.cols, kp = a.cols;
  constexpr int rows = 4;
  for (std::int64_t j0 = 0; j0 < n; j0 += 16) {
    const __mmask16 lanes = n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j0)) - 1);
    const float* b_val = b.value.data() + (j0 / 16) * kp * 16;
    const std::int32_t* b_exp = b.exponent.data() + (j0 / 16) * kp * 16;
    std::int64_t i = 0;
    for (; i + rows <= m; i += rows) h100_panel<rows>(a, i, b_val, b_exp, d, n, j0, lanes);
    for (; i < m; ++i) h100_panel<1>(a, i, b_val, b_exp, d, n, j0, lanes);
  }
}

// fp32_portable's loop, 16 columns at a time: d[j] = fma(a[k], b[k][j], d[j]) in k order (FMA is IEEE, so the
// vector and scalar results are the same bits).
void fp32_avx512(const float* a, const float* b, float* d, std::int64_t m, std::int64_t n, std::int64_t k) {
  for (std::int64_t i = 0; i < m; ++i) {
    float* d_row = d + i * n;
    for (std::int64_t j0 = 0; j0 < n; j0 += 16) {
      const __mmask16 lanes = n - j0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j0)) - 1);
      __m512 acc = _mm512_maskz_loadu_ps(lanes, d_row + j0);
      for (std::int64_t kk = 0; kk < k; ++kk)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(a[i * k + kk]), _mm512_maskz_loadu_ps(lanes, b + kk * n + j0), acc);
      _mm512_mask_storeu_ps(d_row + j0, lanes, acc);
    }
  }
}

}  // namespace mpscope::sim::simd
