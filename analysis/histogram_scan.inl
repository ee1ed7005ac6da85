// Internal: the log2 histogram's scan, included by one translation unit per instruction set
// (histogram_portable.cpp, histogram_avx2.cpp, histogram_avx512.cpp): the same source, vectorized as wide as the
// target allows.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "analysis/histogram.hpp"

namespace mpscope::analysis {
namespace {

// Pass 2: slot_count[s] = how many values have the exponent field field_lo + s, where values below field_lo (zeros,
// when there are no subnormals) count in slot 0. The slots of a block of values are computed first (this
// vectorizes), then counted: on long tensors whose range is narrow (the usual case), two values at a time, as one
// index into a range x range table of pairs (half the increments; the rows and columns of the table sum to the counts
// of the first and second value of each pair), with several tables so that equal neighbouring indices do not wait on
// each other's increment.
template <typename T, typename Bits, int exponent_bits, int mantissa_bits>
void count_slots(std::span<const T> values, int field_lo, std::size_t range, std::int64_t* slot_count) {
  constexpr int max_field = (1 << exponent_bits) - 1;
  constexpr Bits magnitude_mask = ~(Bits{1} << (exponent_bits + mantissa_bits));
  const std::size_t n = values.size();
  const auto bits = [&values](std::size_t i) { return std::bit_cast<Bits>(values[i]); };
  constexpr int max_ways = 8, pair_ways = 4;
  constexpr std::size_t fields = static_cast<std::size_t>(max_field) + 1, max_pair_range = 32;
  using Slot = std::conditional_t<(fields <= 256), std::uint8_t, std::uint16_t>;
  thread_local std::vector<std::uint32_t> tables(std::max(max_ways * fields, pair_ways * max_pair_range * max_pair_range + fields));
  constexpr std::size_t block = 512, half = block / 2;
  const bool pairs = range <= max_pair_range && n >= 4 * range * range;
  const int ways = pairs ? 1 : n >= 16 * range ? max_ways : 1;  // (tables for single values; with pairs: the tail's)
  const std::size_t pair_entries = pairs ? pair_ways * range * range : 0;
  std::fill_n(tables.begin(), pair_entries + static_cast<std::size_t>(ways) * range, 0u);
  std::uint32_t* pair_table[pair_ways];
  for (int k = 0; k < pair_ways; ++k) pair_table[k] = tables.data() + static_cast<std::size_t>(k) * range * range;
  std::uint32_t* t[max_ways];
  for (int k = 0; k < max_ways; ++k) t[k] = tables.data() + pair_entries + static_cast<std::size_t>(k < ways ? k : 0) * range;
  const Bits lowest = static_cast<Bits>(field_lo) << mantissa_bits;
  const auto slot = [&](std::size_t i) { return static_cast<Slot>((std::max(bits(i) & magnitude_mask, lowest) - lowest) >> mantissa_bits); };
  std::size_t begin = 0;
  if (pairs) {
    std::uint16_t pair[half];
    const auto r = static_cast<std::uint16_t>(range);
    for (; begin + block <= n; begin += block) {
      for (std::size_t j = 0; j < half; ++j) pair[j] = static_cast<std::uint16_t>(slot(begin + j) * r + slot(begin + half + j));
      for (std::size_t j = 0; j < half; j += pair_ways)
        for (int k = 0; k < pair_ways; ++k) ++pair_table[k][pair[j + static_cast<std::size_t>(k)]];
    }
    for (int k = 1; k < pair_ways; ++k)
      for (std::size_t q = 0; q < range * range; ++q) pair_table[0][q] += pair_table[k][q];
  }
  for (; begin < n; begin += block) {
    Slot slots[block];
    const std::size_t count = std::min(block, n - begin);
    for (std::size_t i = 0; i < count; ++i) slots[i] = slot(begin + i);
    std::size_t i = 0;
    if (ways == max_ways)
      for (; i + max_ways <= count; i += max_ways)
        for (int k = 0; k < max_ways; ++k) ++t[k][slots[i + static_cast<std::size_t>(k)]];
    for (; i < count; ++i) ++t[0][slots[i]];
  }
  for (std::size_t a = 0; a < range; ++a) {
    std::int64_t c = 0;
    for (int k = 0; k < ways; ++k) c += t[k][a];
    slot_count[a] = c;
  }
  if (pairs) {
    std::uint32_t second[max_pair_range] = {};
    for (std::size_t a = 0; a < range; ++a) {
      std::uint32_t first = 0;
      for (std::size_t b = 0; b < range; ++b) {
        first += pair_table[0][a * range + b];
        second[b] += pair_table[0][a * range + b];
      }
      slot_count[a] += first;
    }
    for (std::size_t b = 0; b < range; ++b) slot_count[b] += second[b];
  }
}

// The histogram from the counts of the exponent fields in [field_lo, field_hi] (slot_count[s] for field field_lo + s,
// with the zeros counted in slot 0): infinities and NaNs told apart, subnormals binned (a look at the values, only
// when there are any), and the occupied range of bins found.
template <typename T, typename Bits, int exponent_bits, int mantissa_bits>
Log2Histogram assemble_histogram(std::span<const T> values, std::int64_t zeros, int field_lo, int field_hi,
                                 const std::int64_t* slot_count) {
  constexpr int bias = (1 << (exponent_bits - 1)) - 1;
  constexpr int max_field = (1 << exponent_bits) - 1;
  constexpr Bits magnitude_mask = ~(Bits{1} << (exponent_bits + mantissa_bits));
  Log2Histogram h;
  h.zeros = zeros;
  if (field_hi == max_field) {  // infinities or NaNs: tell them apart
    for (const T x : values) {
      h.infs += std::isinf(x) ? 1 : 0;
      h.nans += std::isnan(x) ? 1 : 0;
    }
  }
  const auto field_count = [&](int field) {
    return slot_count[static_cast<std::size_t>(field - field_lo)] - (field == field_lo ? zeros : 0);
  };

  // Subnormals (field 0): bin e = bit_width(a) - 1 - bias - mantissa_bits + 1, below the smallest normal's.
  std::int64_t subnormal[mantissa_bits];
  int sub_lo = mantissa_bits, sub_hi = -1;
  if (field_lo == 0) {
    std::fill_n(subnormal, mantissa_bits, std::int64_t{0});
    for (const T x : values) {
      const Bits a = std::bit_cast<Bits>(x) & magnitude_mask;
      if (a != 0 && (a >> mantissa_bits) == 0) {
        const int b = std::bit_width(a) - 1;
        ++subnormal[b];
        sub_lo = std::min(sub_lo, b);
        sub_hi = std::max(sub_hi, b);
      }
    }
  }
  const int normal_lo = std::max(field_lo, 1), normal_hi = std::min(field_hi, max_field - 1);
  int occupied_lo = max_field, occupied_hi = 0;  // the occupied normal fields
  for (int f = normal_lo; f <= normal_hi; ++f)
    if (field_count(f) != 0) {
      occupied_lo = std::min(occupied_lo, f);
      occupied_hi = f;
    }
  const bool any_sub = sub_hi >= 0, any_normal = occupied_hi > 0;
  if (!any_sub && !any_normal) return h;
  // exponent of subnormal bin b: b + 1 - bias - mantissa_bits; of normal field f: f - bias
  const int lo = any_sub ? sub_lo + 1 - bias - mantissa_bits : occupied_lo - bias;
  const int hi = any_normal ? occupied_hi - bias : sub_hi + 1 - bias - mantissa_bits;
  h.lo = lo;
  h.counts.assign(static_cast<std::size_t>(hi - lo + 1), 0);
  for (int b = sub_lo; b <= sub_hi; ++b) h.counts[static_cast<std::size_t>(b + 1 - bias - mantissa_bits - lo)] = subnormal[b];
  for (int f = occupied_lo; f <= occupied_hi; ++f) h.counts[static_cast<std::size_t>(f - bias - lo)] = field_count(f);
  return h;
}

// Two passes over the bit patterns. The first (which vectorizes) counts zeros and finds the occupied range of
// exponent fields; the second (count_slots) counts per field in that range only. Most recorded tensors are short
// (biases) and their values span a few dozen binades, so the fixed cost per call is small: no allocation but the
// result's, and only the occupied fields are cleared and read.
template <typename T, typename Bits, int exponent_bits, int mantissa_bits>
Log2Histogram histogram_of(std::span<const T> values) {
  constexpr int max_field = (1 << exponent_bits) - 1;
  constexpr Bits magnitude_mask = ~(Bits{1} << (exponent_bits + mantissa_bits));
  const std::size_t n = values.size();
  const auto bits = [&values](std::size_t i) { return std::bit_cast<Bits>(values[i]); };

  // Pass 1: zeros, and the smallest nonzero and largest magnitude (as bit patterns, ordered like the values).
  std::int64_t zeros = 0;
  Bits smallest = magnitude_mask, largest = 0;
  constexpr std::size_t chunk = std::size_t{1} << 24;  // a Bits-wide zero count cannot wrap within a chunk
  for (std::size_t begin = 0; begin < n; begin += chunk) {
    const std::size_t end = std::min(n, begin + chunk);
    Bits chunk_zeros = 0, lo = magnitude_mask, hi = 0;
    for (std::size_t i = begin; i < end; ++i) {
      const Bits a = bits(i) & magnitude_mask;
      chunk_zeros += a == 0 ? 1 : 0;
      lo = std::min(lo, a == 0 ? magnitude_mask : a);
      hi = std::max(hi, a);
    }
    zeros += static_cast<std::int64_t>(chunk_zeros);
    smallest = std::min(smallest, lo);
    largest = std::max(largest, hi);
  }
  if (zeros == static_cast<std::int64_t>(n)) {
    Log2Histogram h;
    h.zeros = zeros;
    return h;
  }
  const int field_lo = static_cast<int>(smallest >> mantissa_bits), field_hi = static_cast<int>(largest >> mantissa_bits);

  // Pass 2: counts per field in [field_lo, field_hi] (zeros in field_lo's slot).
  std::int64_t slot_count[static_cast<std::size_t>(max_field) + 1];
  const std::size_t range = static_cast<std::size_t>(field_hi - field_lo) + 1;
  count_slots<T, Bits, exponent_bits, mantissa_bits>(values, field_lo, range, slot_count);
  return assemble_histogram<T, Bits, exponent_bits, mantissa_bits>(values, zeros, field_lo, field_hi, slot_count);
}

}  // namespace
}  // namespace mpscope::analysis
