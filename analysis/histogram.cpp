#include "analysis/histogram.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "analysis/histogram_kernels.hpp"
#include "analysis/varint.hpp"

namespace mpscope::analysis {

namespace detail {

std::vector<HistogramKernel> runnable_histograms() {
  std::vector<HistogramKernel> kernels{portable_histogram()};
#if defined(MPSCOPE_HAVE_X86_KERNELS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) kernels.push_back(avx2_histogram());
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("popcnt"))
    kernels.push_back(avx512_histogram());
#endif
  return kernels;
}

}  // namespace detail

namespace {
// The best variant, or a lower one where MPSCOPE_ISA asks for it (portable, avx2: as it lowers sim's kernels).
const detail::HistogramKernel& best_histogram() {
  static const detail::HistogramKernel best = [] {
    const std::vector<detail::HistogramKernel> runnable = detail::runnable_histograms();
    if (const char* wanted = std::getenv("MPSCOPE_ISA"))
      for (const detail::HistogramKernel& kernel : runnable)
        if (kernel.isa == wanted) return kernel;
    return runnable.back();
  }();
  return best;
}
}  // namespace

Log2Histogram Log2Histogram::of(std::span<const float> values) { return best_histogram().of_float(values); }
Log2Histogram Log2Histogram::of(std::span<const double> values) { return best_histogram().of_double(values); }

namespace {
std::uint64_t get_varint(std::span<const std::uint8_t> blob, std::size_t& at) {
  return detail::read_varint<std::runtime_error>(blob, at, "histogram blob");
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
  encode_to(out);
  return out;
}

void Log2Histogram::encode_to(std::vector<std::uint8_t>& out) const {
  out.push_back(1);
  const auto zigzag = (static_cast<std::uint64_t>(static_cast<std::int64_t>(lo)) << 1) ^
                      static_cast<std::uint64_t>(static_cast<std::int64_t>(lo) >> 63);
  detail::append_varint(out, zigzag);
  detail::append_varint(out, counts.size());
  for (auto c : counts) detail::append_varint(out, static_cast<std::uint64_t>(c));
  detail::append_varint(out, static_cast<std::uint64_t>(zeros));
  detail::append_varint(out, static_cast<std::uint64_t>(infs));
  detail::append_varint(out, static_cast<std::uint64_t>(nans));
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
