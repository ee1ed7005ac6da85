// Internal: GEMM operands packed for the accumulation kernels, and the kernels of each instruction set.
// Users call sim/gemm.hpp.
#pragma once

#include <cstdint>
#include <vector>

namespace mpscope::sim::simd {

// Exponent recorded for a zero input: far below any real one, so it never becomes a block's emax.
inline constexpr std::int32_t zero_exponent = -1000;

// fp16 values as float32 plus each one's tensor-core exponent e(x): floor(log2|x|) for normals, -14 for
// subnormals, zero_exponent for zeros; padding is zero.
//   A (rows = m, cols = kp):  row-major, kp = K rounded up to a multiple of 16.
//   B (rows = kp, cols = n):  panels of 16 columns, each panel kp x 16 row-major, so that the 16 outputs of one
//                             panel read B contiguously: element (k, j) is at index(k, j) below.
struct PackedFp16 {
  std::int64_t rows = 0, cols = 0;
  std::vector<float> value;
  std::vector<std::int32_t> exponent;
  bool all_finite = true;

  static constexpr std::int64_t panel = 16;
  std::int64_t panel_index(std::int64_t k, std::int64_t j) const { return ((j / panel) * rows + k) * panel + j % panel; }
};

// d (m, n) row-major holds C on entry and A·B + C on return. a: (m, kp) row-major, b: (kp, n) in panels.
void h100_portable(const PackedFp16& a, const PackedFp16& b, float* d);
void h100_avx512(const PackedFp16& a, const PackedFp16& b, float* d);  // needs AVX-512 F/DQ/BW/VL; finite inputs

// One H100 MMA block, the readable spec: 16 products of a[k * a_stride] and b[k * b_stride] plus c.
float h100_block(const float* a, const std::int32_t* a_exp, std::int64_t a_stride, const float* b,
                 const std::int32_t* b_exp, std::int64_t b_stride, float c);

// fp32 sequential FMA: d (m, n) holds C on entry; a (m, k), b (k, n) row-major, unpadded.
void fp32_portable(const float* a, const float* b, float* d, std::int64_t m, std::int64_t n, std::int64_t k);
void fp32_avx512(const float* a, const float* b, float* d, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace mpscope::sim::simd
