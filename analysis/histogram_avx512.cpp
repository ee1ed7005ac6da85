// Built with AVX-512 F/BW/VL and POPCNT. Pass 1 and the double histogram are the shared scan, vectorized 512 bits
// wide. Float tensors of a narrow range (the usual case) are counted by comparison instead of increments: the
// exponent fields of 64 values are packed into one vector of bytes, compared with each field of the occupied range,
// and each comparison's mask is counted with POPCNT. That costs a few instructions per field and 64 values, about
// half of what the increments cost over the ranges recorded tensors have (10 to 25 binades).
#include <immintrin.h>

#include "analysis/histogram_kernels.hpp"
#include "analysis/histogram_scan.inl"

namespace mpscope::analysis::detail {
namespace {

// Beyond this many fields the increments of count_slots are faster than one comparison per field.
constexpr std::size_t widest_compared_range = 32;

// The exponent fields of 64 floats as 64 bytes (the sign falls off when each 32-bit lane is narrowed to a byte).
__m512i exponent_fields_of_64(const float* p) {
  const auto fields_of_16 = [](const float* q) {
    return _mm512_cvtepi32_epi8(_mm512_srli_epi32(_mm512_castps_si512(_mm512_loadu_ps(q)), 23));
  };
  const __m256i low = _mm256_inserti128_si256(_mm256_castsi128_si256(fields_of_16(p)), fields_of_16(p + 16), 1);
  const __m256i high = _mm256_inserti128_si256(_mm256_castsi128_si256(fields_of_16(p + 32)), fields_of_16(p + 48), 1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

void count_float_slots(std::span<const float> values, int field_lo, std::size_t range, std::int64_t* slot_count) {
  constexpr std::size_t group = 4 * 64;  // values compared per field in one go
  const std::size_t n = values.size();
  if (range > widest_compared_range || n < group) return count_slots<float, std::uint32_t, 8, 23>(values, field_lo, range, slot_count);
  std::fill_n(slot_count, range, std::int64_t{0});
  const float* x = values.data();
  std::size_t i = 0;
  for (; i + group <= n; i += group) {
    const __m512i f0 = exponent_fields_of_64(x + i), f1 = exponent_fields_of_64(x + i + 64),
                  f2 = exponent_fields_of_64(x + i + 128), f3 = exponent_fields_of_64(x + i + 192);
    for (std::size_t s = 0; s < range; ++s) {
      const __m512i field = _mm512_set1_epi8(static_cast<char>(field_lo + static_cast<int>(s)));
      slot_count[s] += std::popcount(_mm512_cmpeq_epi8_mask(f0, field)) + std::popcount(_mm512_cmpeq_epi8_mask(f1, field)) +
                       std::popcount(_mm512_cmpeq_epi8_mask(f2, field)) + std::popcount(_mm512_cmpeq_epi8_mask(f3, field));
    }
  }
  for (; i + 64 <= n; i += 64) {
    const __m512i f = exponent_fields_of_64(x + i);
    for (std::size_t s = 0; s < range; ++s)
      slot_count[s] += std::popcount(_mm512_cmpeq_epi8_mask(f, _mm512_set1_epi8(static_cast<char>(field_lo + static_cast<int>(s)))));
  }
  for (; i < n; ++i) {
    const int field = static_cast<int>((std::bit_cast<std::uint32_t>(x[i]) >> 23) & 0xFFu);
    if (field >= field_lo) ++slot_count[field - field_lo];
  }
  // Values below the range (zeros, when there are no subnormals) count in slot 0, as count_slots has them.
  std::int64_t in_range = 0;
  for (std::size_t s = 0; s < range; ++s) in_range += slot_count[s];
  slot_count[0] += static_cast<std::int64_t>(n) - in_range;
}

}  // namespace

HistogramKernel avx512_histogram() {
  return {"avx512", histogram_of<float, std::uint32_t, 8, 23, count_float_slots>, histogram_of<double, std::uint64_t, 11, 52>};
}

}  // namespace mpscope::analysis::detail
