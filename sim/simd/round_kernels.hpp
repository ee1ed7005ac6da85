// Internal: the float32 array-rounding kernels of each instruction set (round_kernels_<isa>.cpp) and the
// per-format constants they share. Users call sim/round_array.hpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sim/format.hpp"
#include "sim/round_array.hpp"

namespace mpscope::sim::simd {

// Constants for rounding float32 values to a format that fits within float32 (Format::within_float32()).
// Results are float32 bit patterns; NaN results are the canonical quiet NaN 0x7FC00000 with the input's sign.
struct Float32Rounding {
  std::int32_t mantissa_bits = 23;
  std::int32_t emin = -126;
  bool flush = false;                  // subnormals of the format flushed to zero
  std::uint32_t max_finite = 0;        // magnitude bits of the largest finite value
  std::uint32_t overflow_positive = 0; // magnitude bits of a result too large, positive input, for the mode
  std::uint32_t overflow_negative = 0; // the same for a negative input (the sign is added back)
  std::uint32_t infinity_result = 0;   // magnitude bits an infinite input becomes

  static Float32Rounding make(const Format& f, Rounding mode);
};

// out[0..n) = round(in[0..n)); `random` holds n 64-bit numbers for stochastic rounding (nullptr otherwise).
using RoundKernel = void (*)(const float* in, float* out, std::size_t n, const Float32Rounding& p,
                             const std::uint64_t* random);

// Counts what rounding did (sim::RoundingEffects) from the values before and after, for a format's smallest normal
// and largest finite value.
template <typename Before, typename After>
using CountKernel = void (*)(const Before* before, const After* after, std::size_t n, double min_normal,
                             double max_finite, RoundingEffects* out);

struct RoundKernels {
  RoundKernel generic[5];     // any within_float32 format, indexed by Rounding
  RoundKernel fp16_nearest;   // fp16, nearest-even, subnormals kept, overflow to inf (F16C where available)
  RoundKernel bf16_nearest;   // bf16, nearest-even, subnormals kept, overflow to inf
  CountKernel<float, float> count_float_float;
  CountKernel<double, float> count_double_float;
  CountKernel<double, double> count_double_double;
};

const RoundKernels& portable_kernels();
const RoundKernels& avx2_kernels();    // needs AVX2 + F16C
const RoundKernels& avx512_kernels();  // needs AVX-512 F/BW/DQ/VL (+ BF16 for the bf16 conversion instruction)
const RoundKernels& kernels_for(Isa isa);  // the set for an ISA (the caller checks isa_supported)

}  // namespace mpscope::sim::simd
