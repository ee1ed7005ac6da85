// How far a lane is from the reference lane: relative distances and cosines of flattened tensors, in double.
#pragma once

#include <span>

namespace mpscope::analysis {

// ||a - ref|| / ||ref||  (0 when both are zero; +inf when only ref is zero; NaN if anything is NaN).
double relative_distance(std::span<const double> a, std::span<const double> ref);

// The sums behind relative_distance, so that the distance over several tensors (a whole model) comes from the
// per-tensor sums without concatenating them.
struct DistanceSums {
  double diff = 0, base = 0;  // sum (a - ref)^2, sum ref^2
  static DistanceSums of(std::span<const double> a, std::span<const double> ref);
  DistanceSums& operator+=(const DistanceSums& other);
  double relative() const;
};
// a·b / (||a|| ||b||); NaN when either is all zero or non-finite.
double cosine(std::span<const double> a, std::span<const double> b);
double norm(std::span<const double> a);

}  // namespace mpscope::analysis
