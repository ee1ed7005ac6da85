// The host/device elementary functions (sim/mathfn.hpp) are accurate to a few double ulps (2e-16 each) over the ranges the
// lanes use, and handle the edges.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sim/mathfn.hpp"

using namespace mpscope::sim;

namespace {

template <typename Mine, typename Libm>
double worst_relative_error(Mine mine, Libm libm, double lo, double hi, int n) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(lo, hi);
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const double x = u(rng), want = libm(x);
    if (want == 0) continue;
    worst = std::max(worst, std::fabs(mine(x) - want) / std::fabs(want));
  }
  return worst;
}

TEST(Mathfn, AccurateAgainstLibm) {
  EXPECT_LT(worst_relative_error(mathfn::exp, [](double x) { return std::exp(x); }, -700, 700, 200000), 4e-15);
  EXPECT_LT(worst_relative_error(mathfn::exp, [](double x) { return std::exp(x); }, -1, 1, 200000), 4e-16);
  EXPECT_LT(worst_relative_error(mathfn::log, [](double x) { return std::log(x); }, 1e-300, 1e300, 200000), 4e-16);
  EXPECT_LT(worst_relative_error(mathfn::log, [](double x) { return std::log(x); }, 0.5, 2, 200000), 1e-14);
  EXPECT_LT(worst_relative_error(mathfn::tanh, [](double x) { return std::tanh(x); }, -20, 20, 200000), 1e-15);
  EXPECT_LT(worst_relative_error(mathfn::tanh, [](double x) { return std::tanh(x); }, -1e-3, 1e-3, 200000), 1e-15);
  EXPECT_LT(worst_relative_error(mathfn::erf, [](double x) { return std::erf(x); }, -6, 6, 200000), 1e-14);
  EXPECT_LT(worst_relative_error(mathfn::erf, [](double x) { return std::erf(x); }, -0.01, 0.01, 200000), 4e-16);
}

TEST(Mathfn, Edges) {
  EXPECT_EQ(mathfn::exp(0.0), 1.0);
  EXPECT_TRUE(std::isinf(mathfn::exp(1000.0)));
  EXPECT_EQ(mathfn::exp(-1000.0), 0.0);
  EXPECT_NEAR(mathfn::exp(-744.0), std::exp(-744.0), 1e-323);  // subnormal results
  EXPECT_EQ(mathfn::log(1.0), 0.0);
  EXPECT_TRUE(std::isinf(mathfn::log(0.0)));
  EXPECT_TRUE(std::isnan(mathfn::log(-1.0)));
  EXPECT_NEAR(mathfn::log(5e-324), std::log(5e-324), 1e-12);
  EXPECT_EQ(mathfn::tanh(50.0), 1.0);
  EXPECT_EQ(mathfn::erf(7.0), 1.0);
  EXPECT_EQ(mathfn::erf(-7.0), -1.0);
  EXPECT_TRUE(std::isnan(mathfn::exp(NAN)));
  EXPECT_NEAR(mathfn::sigmoid(0.0), 0.5, 0.0);
}

}  // namespace
