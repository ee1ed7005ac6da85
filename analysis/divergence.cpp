#include "analysis/divergence.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace mpscope::analysis {

double norm(std::span<const double> a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

namespace {

// The sums run in eight interleaved partial sums, held as four two-lane vectors (the GCC/Clang vector extension:
// plain SSE2, which GCC does not find on its own here), added up in a fixed order: independent additions that do
// not wait on each other. Deterministic, though not the sequential sum to the last bit.
using Pair = double __attribute__((vector_size(16)));
constexpr std::size_t pairs = 4, block = 2 * pairs;

Pair load_pair(const double* p) {
  Pair v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
double total(const Pair (&partial)[pairs]) {
  const Pair s = (partial[0] + partial[1]) + (partial[2] + partial[3]);
  return s[0] + s[1];
}

}  // namespace

DistanceSums DistanceSums::of(std::span<const double> a, std::span<const double> ref) {
  if (a.size() != ref.size()) throw std::invalid_argument("relative_distance: sizes differ");
  Pair diff[pairs] = {}, base[pairs] = {};
  std::size_t i = 0;
  for (; i + block <= a.size(); i += block)
    for (std::size_t k = 0; k < pairs; ++k) {
      const Pair r = load_pair(&ref[i + 2 * k]), d = load_pair(&a[i + 2 * k]) - r;
      diff[k] += d * d;
      base[k] += r * r;
    }
  DistanceSums s{total(diff), total(base)};
  for (; i < a.size(); ++i) {
    const double d = a[i] - ref[i];
    s.diff += d * d;
    s.base += ref[i] * ref[i];
  }
  return s;
}

DistanceSums& DistanceSums::operator+=(const DistanceSums& other) {
  diff += other.diff;
  base += other.base;
  return *this;
}

double DistanceSums::relative() const {
  if (base == 0) return diff == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / base);
}

double relative_distance(std::span<const double> a, std::span<const double> ref) { return DistanceSums::of(a, ref).relative(); }

double cosine(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size()) throw std::invalid_argument("cosine: sizes differ");
  Pair ab_part[pairs] = {}, aa_part[pairs] = {}, bb_part[pairs] = {};
  std::size_t i = 0;
  for (; i + block <= a.size(); i += block)
    for (std::size_t k = 0; k < pairs; ++k) {
      const Pair x = load_pair(&a[i + 2 * k]), y = load_pair(&b[i + 2 * k]);
      ab_part[k] += x * y;
      aa_part[k] += x * x;
      bb_part[k] += y * y;
    }
  double ab = total(ab_part), aa = total(aa_part), bb = total(bb_part);
  for (; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa == 0 || bb == 0 || !std::isfinite(ab) || !std::isfinite(aa) || !std::isfinite(bb))
    return std::numeric_limits<double>::quiet_NaN();
  return ab / std::sqrt(aa * bb);
}

}  // namespace mpscope::analysis
