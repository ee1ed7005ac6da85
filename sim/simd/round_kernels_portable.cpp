// The array-rounding kernels for any x86-64 (SSE2) or other CPU: plain C++, vectorized as far as the
// baseline instruction set allows.
#include <algorithm>
#include <bit>
#include <limits>
#include <type_traits>

#include "sim/simd/round_kernels.hpp"

namespace mpscope::sim::simd {
namespace {
#include "sim/simd/round_kernels_generic.inl"
}  // namespace

const RoundKernels& portable_kernels() {
  static const RoundKernels kernels = {
      {generic_table[0], generic_table[1], generic_table[2], generic_table[3], generic_table[4]},
      generic_table[0],
      round_bf16_nearest_bits,
      count_effects<float, float>, count_effects<double, float>, count_effects<double, double>};
  return kernels;
}

}  // namespace mpscope::sim::simd
