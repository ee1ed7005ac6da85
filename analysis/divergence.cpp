#include "analysis/divergence.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace mpscope::analysis {

double norm(std::span<const double> a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

DistanceSums DistanceSums::of(std::span<const double> a, std::span<const double> ref) {
  if (a.size() != ref.size()) throw std::invalid_argument("relative_distance: sizes differ");
  DistanceSums s;
  for (std::size_t i = 0; i < a.size(); ++i) {
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
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa == 0 || bb == 0 || !std::isfinite(ab) || !std::isfinite(aa) || !std::isfinite(bb))
    return std::numeric_limits<double>::quiet_NaN();
  return ab / std::sqrt(aa * bb);
}

}  // namespace mpscope::analysis
