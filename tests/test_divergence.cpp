// Divergence measures: the vectorized sums against plain sequential sums in long double, on every length the
// blocked loop and its tail treat differently; the edge cases the trainer relies on (zeros, NaN).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "analysis/divergence.hpp"

using namespace mpscope::analysis;

namespace {

// Partial sums of positive terms and products: the blocked and the sequential sums differ by rounding only,
// a few units in the last place of doubles summed over at most 10,000 terms.
constexpr double tolerance = 1e-12;

TEST(Divergence, DistanceAndCosineMatchSequentialSums) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t n : {1, 2, 7, 8, 9, 15, 16, 17, 100, 4288, 10001}) {
    std::vector<double> a(n), b(n);
    for (std::size_t i = 0; i < n; ++i) {
      b[i] = normal(rng);
      a[i] = b[i] + 0.01 * normal(rng);
    }
    long double diff = 0, base = 0, ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const long double x = a[i], y = b[i];
      diff += (x - y) * (x - y);
      base += y * y;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    const double want_distance = static_cast<double>(std::sqrt(diff / base));
    const double want_cosine = static_cast<double>(ab / std::sqrt(aa * bb));
    EXPECT_NEAR(relative_distance(a, b), want_distance, tolerance * want_distance) << n;
    EXPECT_NEAR(cosine(a, b), want_cosine, tolerance) << n;
    const DistanceSums s = DistanceSums::of(a, b);
    EXPECT_NEAR(s.diff, static_cast<double>(diff), tolerance * static_cast<double>(diff)) << n;
    EXPECT_NEAR(s.base, static_cast<double>(base), tolerance * static_cast<double>(base)) << n;
  }
}

TEST(Divergence, SumsOverLayersEqualTheDistanceOfTheWhole) {
  const std::vector<double> a1{1, 2, 3}, r1{1, 2, 4}, a2{0.5, -1}, r2{0.5, -2};
  DistanceSums all = DistanceSums::of(a1, r1);
  all += DistanceSums::of(a2, r2);
  EXPECT_DOUBLE_EQ(all.relative(), relative_distance(std::vector<double>{1, 2, 3, 0.5, -1}, std::vector<double>{1, 2, 4, 0.5, -2}));
}

TEST(Divergence, EdgeCases) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> zeros(20, 0.0), ones(20, 1.0);
  EXPECT_EQ(relative_distance(zeros, zeros), 0.0);
  EXPECT_EQ(relative_distance(ones, zeros), std::numeric_limits<double>::infinity());
  EXPECT_EQ(relative_distance(ones, ones), 0.0);
  EXPECT_DOUBLE_EQ(cosine(ones, ones), 1.0);
  EXPECT_TRUE(std::isnan(cosine(zeros, ones)));  // no direction
  std::vector<double> with_nan = ones;
  with_nan[17] = nan;  // in the tail of the blocked loop
  EXPECT_TRUE(std::isnan(relative_distance(with_nan, ones)));
  EXPECT_TRUE(std::isnan(cosine(with_nan, ones)));
  with_nan[17] = 1;
  with_nan[3] = nan;  // in a block
  EXPECT_TRUE(std::isnan(relative_distance(with_nan, ones)));
  EXPECT_TRUE(std::isnan(cosine(ones, with_nan)));
  EXPECT_THROW(relative_distance(ones, std::vector<double>(3, 1.0)), std::invalid_argument);
  EXPECT_THROW(cosine(ones, std::vector<double>(3, 1.0)), std::invalid_argument);
}

}  // namespace
