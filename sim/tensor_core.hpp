// Hopper's GEMM arithmetic beyond fp16 mma.sync: bf16 and tf32 tensor cores, cuBLAS's fp16/bf16 GEMMs and
// cuBLASLt's FP8 GEMMs with their two accumulations, as measured on an H100/H200 (docs/formats.md). One model
// for all: products exact; in a block of products the terms (and the running accumulator) are aligned to the
// largest exponent (an input's exponent at least its format's smallest normal one, the accumulator's at least
// -126), each truncated toward zero to `kept_bits` below it, summed exactly, and the sum cut toward zero to
// `result_bits` significant bits; blocks chain in k order. cuBLASLt's default FP8 path adds the chain to a float32
// total (round to nearest) every `promote_every` blocks and restarts it from zero.
#pragma once

#include <span>
#include <string>

#include "sim/format.hpp"
#include "sim/gemm.hpp"

namespace mpscope::sim {

enum class Fp8Accumulation { promoted, fast };  // cuBLASLt's default / use_fast_accum=True
Fp8Accumulation parse_fp8_accumulation(std::string_view text);  // "promoted", "fast"; throws std::invalid_argument

struct TensorCoreModel {
  Format a, b;              // the input formats
  int block = 16;           // products per block
  int kept_bits = 25;       // bits kept below the block's largest exponent
  int result_bits = 24;     // significant bits of a block's result, cut toward zero (24: binary32)
  int promote_every = 0;    // blocks per float32 promotion of the chain (0: never)
  std::string describe() const;  // e.g. "bf16 x bf16: blocks of 16, 25 bits kept, binary32 toward zero"
};

// What a block chain holds between blocks: binary32's range with result_bits significant bits, each block's result
// cut toward zero to it. For FP8 (14 bits) it is named "fp8acc": `mpscope inspect --format fp8acc` shows a value in it.
Format block_result_format(const TensorCoreModel& model);
const Format& fp8_accumulator();  // block_result_format of the FP8 path: e8m13 named "fp8acc"

// The path Hopper takes for A and B of these formats: fp16 or bf16 (blocks of 16), tf32 (blocks of 4), FP8
// (e4m3fn or e5m2 each; blocks of 32, 13 bits kept, 14-bit block results; promoted: every 4 blocks into float32).
// Throws std::invalid_argument naming a format it has no model for, or a mix Hopper has no instruction for.
TensorCoreModel hopper_model(const Format& a, const Format& b, Fp8Accumulation fp8 = Fp8Accumulation::promoted);

// D = A·B + C under `model` (C: data == nullptr for zero; D (M, N) row-major). A and B must hold values of their
// formats: std::invalid_argument names the first element that is not one. Non-finite inputs give IEEE's result.
void tensor_core_gemm(const TensorCoreModel& model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d);

}  // namespace mpscope::sim
