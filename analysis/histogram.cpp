#include "analysis/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace mpscope::analysis {

namespace {

// Counting straight from the exponent field of the bit pattern; for long tensors with eight count tables, so that
// neighbouring values in the same bin do not wait on each other's increment. This runs on every recorded tensor,
// many of them short (biases), so the fixed cost matters too: no allocation but the result's. Zeros are counted on
// the way, the rare subnormals binned in a second look.
template <typename T, typename Bits, int exponent_bits, int mantissa_bits>
Log2Histogram histogram_of(std::span<const T> values) {
  constexpr int bias = (1 << (exponent_bits - 1)) - 1;
  constexpr int max_field = (1 << exponent_bits) - 1;
  constexpr Bits magnitude_mask = ~(Bits{1} << (exponent_bits + mantissa_bits));
  constexpr std::size_t fields = static_cast<std::size_t>(max_field) + 1;
  constexpr int max_ways = 8;
  thread_local std::vector<std::uint32_t> tables(max_ways * fields);
  const std::size_t n = values.size();
  const int ways = n >= 4 * fields ? max_ways : 1;  // short tensors: one table to clear and read
  std::fill_n(tables.begin(), static_cast<std::size_t>(ways) * fields, 0u);
  std::uint32_t* t[max_ways];
  for (int k = 0; k < max_ways; ++k) t[k] = tables.data() + static_cast<std::size_t>(k < ways ? k : 0) * fields;
  std::int64_t zeros = 0;
  std::size_t i = 0;
  if (ways == max_ways) {
    for (; i + max_ways <= n; i += max_ways) {
      for (int k = 0; k < max_ways; ++k) {
        const Bits a = std::bit_cast<Bits>(values[i + static_cast<std::size_t>(k)]) & magnitude_mask;
        ++t[k][a >> mantissa_bits];
        zeros += a == 0 ? 1 : 0;
      }
    }
  }
  for (; i < n; ++i) {
    const Bits a = std::bit_cast<Bits>(values[i]) & magnitude_mask;
    ++t[0][a >> mantissa_bits];
    zeros += a == 0 ? 1 : 0;
  }
  const auto field_count = [&](std::size_t f) {
    std::int64_t c = 0;
    for (int k = 0; k < ways; ++k) c += t[k][f];
    return c;
  };

  Log2Histogram h;
  h.zeros = zeros;
  if (field_count(static_cast<std::size_t>(max_field)) > 0) {  // tell infinities from NaNs
    for (const T x : values) {
      h.infs += std::isinf(x) ? 1 : 0;
      h.nans += std::isnan(x) ? 1 : 0;
    }
  }
  // Subnormals: bin e = bit_width(a) - 1 - bias - mantissa_bits + 1, below the smallest normal's.
  std::int64_t subnormal[mantissa_bits] = {};
  int sub_lo = mantissa_bits, sub_hi = -1;
  if (field_count(0) > zeros) {
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
  int field_lo = max_field, field_hi = 0;  // occupied normal fields 1 .. max_field - 1
  for (int f = 1; f < max_field; ++f)
    if (field_count(static_cast<std::size_t>(f)) != 0) {
      field_lo = std::min(field_lo, f);
      field_hi = f;
    }
  const bool any_sub = sub_hi >= 0, any_normal = field_hi > 0;
  if (!any_sub && !any_normal) return h;
  // exponent of subnormal bin b: b + 1 - bias - mantissa_bits; of normal field f: f - bias
  const int lo = any_sub ? sub_lo + 1 - bias - mantissa_bits : field_lo - bias;
  const int hi = any_normal ? field_hi - bias : sub_hi + 1 - bias - mantissa_bits;
  h.lo = lo;
  h.counts.assign(static_cast<std::size_t>(hi - lo + 1), 0);
  for (int b = sub_lo; b <= sub_hi; ++b) h.counts[static_cast<std::size_t>(b + 1 - bias - mantissa_bits - lo)] = subnormal[b];
  for (int f = field_lo; f <= field_hi; ++f) h.counts[static_cast<std::size_t>(f - bias - lo)] = field_count(static_cast<std::size_t>(f));
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
