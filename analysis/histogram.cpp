#include "analysis/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace mpscope::analysis {

namespace {

// Counting straight from the exponent field of the bit pattern, with eight count tables so that neighbouring values
// in the same bin do not wait on each other's increment (this runs on every recorded tensor, so it must be cheap);
// zeros are counted on the way, the rare subnormals binned in a second look.
template <typename T, typename Bits, int exponent_bits, int mantissa_bits>
Log2Histogram histogram_of(std::span<const T> values) {
  constexpr int bias = (1 << (exponent_bits - 1)) - 1;
  constexpr int max_field = (1 << exponent_bits) - 1;
  constexpr int lowest = 1 - bias - mantissa_bits;  // smallest subnormal's exponent
  constexpr Bits magnitude_mask = ~(Bits{1} << (exponent_bits + mantissa_bits));
  constexpr std::size_t fields = static_cast<std::size_t>(max_field) + 1;
  constexpr int ways = 8;
  std::vector<std::uint32_t> tables(ways * fields, 0);
  std::uint32_t* t[ways];
  for (int k = 0; k < ways; ++k) t[k] = tables.data() + static_cast<std::size_t>(k) * fields;
  std::int64_t zeros = 0;
  const std::size_t n = values.size();
  std::size_t i = 0;
  for (; i + ways <= n; i += ways) {
    for (int k = 0; k < ways; ++k) {
      const Bits a = std::bit_cast<Bits>(values[i + static_cast<std::size_t>(k)]) & magnitude_mask;
      ++t[k][a >> mantissa_bits];
      zeros += a == 0 ? 1 : 0;
    }
  }
  for (; i < n; ++i) {
    const Bits a = std::bit_cast<Bits>(values[i]) & magnitude_mask;
    ++t[0][a >> mantissa_bits];
    zeros += a == 0 ? 1 : 0;
  }
  std::vector<std::int64_t> by_field(fields, 0);
  for (std::size_t f = 0; f < fields; ++f)
    for (int k = 0; k < ways; ++k) by_field[f] += t[k][f];

  Log2Histogram h;
  h.zeros = zeros;
  // Bins from the smallest subnormal exponent (lowest) to the largest normal exponent.
  std::vector<std::int64_t> dense(static_cast<std::size_t>(max_field - 1 + mantissa_bits), 0);
  if (by_field[0] > zeros) {
    for (const T x : values) {
      const Bits a = std::bit_cast<Bits>(x) & magnitude_mask;
      if (a != 0 && (a >> mantissa_bits) == 0) ++dense[static_cast<std::size_t>(std::bit_width(a) - 1)];
    }
  }
  if (by_field[static_cast<std::size_t>(max_field)] > 0) {  // tell infinities from NaNs
    for (const T x : values) {
      h.infs += std::isinf(x) ? 1 : 0;
      h.nans += std::isnan(x) ? 1 : 0;
    }
  }
  for (int f = 1; f < max_field; ++f) dense[static_cast<std::size_t>(f - 1 + mantissa_bits)] = by_field[static_cast<std::size_t>(f)];
  const auto first = std::find_if(dense.begin(), dense.end(), [](std::int64_t c) { return c != 0; });
  if (first == dense.end()) return h;
  const auto last = std::find_if(dense.rbegin(), dense.rend(), [](std::int64_t c) { return c != 0; }).base();
  h.lo = lowest + static_cast<int>(first - dense.begin());
  h.counts.assign(first, last);
  return h;
}

}  // namespace

Log2Histogram Log2Histogram::of(std::span<const float> values) {
  return histogram_of<float, std::uint32_t, 8, 23>(values);
}
Log2Histogram Log2Histogram::of(std::span<const double> values) {
  return histogram_of<double, std::uint64_t, 11, 52>(values);
}

namespace {

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint64_t get_varint(std::span<const std::uint8_t> blob, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= blob.size()) throw std::runtime_error("histogram blob is truncated");
    const std::uint8_t byte = blob[at++];
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  throw std::runtime_error("histogram blob has an overlong number");
}

}  // namespace

std::int64_t Log2Histogram::finite_nonzero() const {
  std::int64_t n = 0;
  for (auto c : counts) n += c;
  return n;
}

std::int64_t Log2Histogram::count_at(int exponent) const {
  if (counts.empty() || exponent < lo || exponent > hi()) return 0;
  return counts[static_cast<std::size_t>(exponent - lo)];
}

Log2Histogram& Log2Histogram::operator+=(const Log2Histogram& o) {
  zeros += o.zeros;
  infs += o.infs;
  nans += o.nans;
  if (o.counts.empty()) return *this;
  if (counts.empty()) {
    lo = o.lo;
    counts = o.counts;
    return *this;
  }
  const int new_lo = std::min(lo, o.lo), new_hi = std::max(hi(), o.hi());
  std::vector<std::int64_t> merged(static_cast<std::size_t>(new_hi - new_lo + 1), 0);
  for (int e = new_lo; e <= new_hi; ++e) merged[static_cast<std::size_t>(e - new_lo)] = count_at(e) + o.count_at(e);
  lo = new_lo;
  counts = std::move(merged);
  return *this;
}

// Layout: version byte 1, zigzag(lo), number of bins, the counts, zeros, infs, NaNs (all varints).
std::vector<std::uint8_t> Log2Histogram::encode() const {
  std::vector<std::uint8_t> out;
  out.reserve(8 + counts.size() * 2);
  out.push_back(1);
  const auto zigzag = (static_cast<std::uint64_t>(static_cast<std::int64_t>(lo)) << 1) ^
                      static_cast<std::uint64_t>(static_cast<std::int64_t>(lo) >> 63);
  put_varint(out, zigzag);
  put_varint(out, counts.size());
  for (auto c : counts) put_varint(out, static_cast<std::uint64_t>(c));
  put_varint(out, static_cast<std::uint64_t>(zeros));
  put_varint(out, static_cast<std::uint64_t>(infs));
  put_varint(out, static_cast<std::uint64_t>(nans));
  return out;
}

Log2Histogram Log2Histogram::decode(std::span<const std::uint8_t> blob) {
  if (blob.empty() || blob[0] != 1) throw std::runtime_error("histogram blob: unknown version");
  std::size_t at = 1;
  Log2Histogram h;
  const std::uint64_t zigzag = get_varint(blob, at);
  h.lo = static_cast<int>(static_cast<std::int64_t>(zigzag >> 1) ^ -static_cast<std::int64_t>(zigzag & 1));
  const std::uint64_t n = get_varint(blob, at);
  if (n > 4096) throw std::runtime_error("histogram blob: implausible bin count");
  h.counts.resize(n);
  for (auto& c : h.counts) c = static_cast<std::int64_t>(get_varint(blob, at));
  h.zeros = static_cast<std::int64_t>(get_varint(blob, at));
  h.infs = static_cast<std::int64_t>(get_varint(blob, at));
  h.nans = static_cast<std::int64_t>(get_varint(blob, at));
  return h;
}

}  // namespace mpscope::analysis
