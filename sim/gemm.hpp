// D = A·B + C under a chosen accumulation model: what a GEMM unit computes, bit for bit.
//   fp32  IEEE binary32, sequential fused multiply-add over k: d = fma(a_k, b_k, d), starting from d = C.
//   exact the exact value of C + sum_k a_k b_k (Boost.Multiprecision), rounded once to fp32 (nearest-even).
//   h100  the H100 tensor-core model for fp16 inputs (docs/formats.md): blocks of 16 products chained
//         in k order; in a block every term is truncated to a multiple of 2^(emax-25), summed exactly, rounded
//         toward zero.
// fp32 and exact take any float32 inputs; h100 takes fp16 values only.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "sim/round_array.hpp"

namespace mpscope::sim {

enum class Accumulation { fp32, exact, h100 };
std::string_view to_string(Accumulation a);
Accumulation parse_accumulation(std::string_view text);  // "fp32", "exact", "h100"; throws std::invalid_argument

// A strided view of a float matrix: element (r, c) is data[r * row_stride + c * col_stride]. Transposes are
// views (swap the strides), so x·Wᵀ needs no copy.
struct MatrixView {
  const float* data = nullptr;
  std::int64_t rows = 0, cols = 0;
  std::int64_t row_stride = 0, col_stride = 1;

  static MatrixView row_major(const float* data, std::int64_t rows, std::int64_t cols) {
    return {data, rows, cols, cols, 1};
  }
  MatrixView transposed() const { return {data, cols, rows, col_stride, row_stride}; }
  float operator()(std::int64_t r, std::int64_t c) const { return data[r * row_stride + c * col_stride]; }
};

// A: (M, K) and B: (K, N) (for h100 they must hold fp16 values, otherwise std::invalid_argument names the first
// element that is not one); C: (M, N) float32, or data == nullptr for zero; D: (M, N) row-major, may be C's storage.
// Non-finite inputs follow IEEE rules (NaN if any NaN, inf*0 or inf-inf, else +-inf) in every model.
void gemm(Accumulation model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d);
// The same with an explicit kernel, for tests and benchmarks (Isa::portable is the readable reference).
void gemm(Accumulation model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d, Isa isa);

// The first element of m that is not a value of f in row-major order, or -1.
std::int64_t first_non_representable(MatrixView m, const Format& f);

}  // namespace mpscope::sim
