// log2 histograms of tensors: bin e counts the values with 2^e <= |x| < 2^(e+1); zeros, infinities and NaNs are
// counted apart. Stored compactly (only the occupied range of bins, as varints) in run files.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mpscope::analysis {

struct Log2Histogram {
  int lo = 0;                         // exponent of counts[0]
  std::vector<std::int64_t> counts;   // bins lo, lo+1, ...; empty when every value is zero, inf or NaN
  std::int64_t zeros = 0, infs = 0, nans = 0;

  static Log2Histogram of(std::span<const float> values);
  static Log2Histogram of(std::span<const double> values);

  std::int64_t finite_nonzero() const;
  std::int64_t total() const { return finite_nonzero() + zeros + infs + nans; }
  std::int64_t count_at(int exponent) const;
  int hi() const { return lo + static_cast<int>(counts.size()) - 1; }  // last bin (when counts is nonempty)
  Log2Histogram& operator+=(const Log2Histogram& other);
  bool operator==(const Log2Histogram&) const = default;

  std::vector<std::uint8_t> encode() const;
  void encode_to(std::vector<std::uint8_t>& out) const;  // appends encode()'s bytes
  static Log2Histogram decode(std::span<const std::uint8_t> blob);  // throws std::runtime_error on a bad blob
};

}  // namespace mpscope::analysis
