// Comparing a lane's tensor with PyTorch's, as docs/recipes.md states the contract: at least 99.9% of the values
// bit-identical (a zero's sign included) and every other value within 1 ulp of the tensor's format (cuBLAS
// accumulates in another order than a lane may). Shared by the CPU and GPU suites.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "sim/format.hpp"
#include "sim/rounding.hpp"

namespace mpscope::test {

struct Agreement {
  std::size_t values = 0, identical = 0, within_one_ulp = 0;
  double worst_ulps = 0;
};

inline Agreement compare_with_torch(const std::vector<double>& got, std::span<const float> want, const sim::Format& f,
                                    double max_ulps = 1.0) {
  Agreement a;
  a.values = want.size();
  // (within_one_ulp: the values that differ by at most max_ulps, 1 unless a caller states a known gap)
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const double w = want[i];
    if (got[i] == w && std::signbit(got[i]) == std::signbit(w)) {
      ++a.identical;
      continue;
    }
    const double ulps = std::fabs(got[i] - w) / sim::ulp(std::max(std::fabs(got[i]), std::fabs(w)), f);
    a.worst_ulps = std::max(a.worst_ulps, ulps);
    if (ulps <= max_ulps) ++a.within_one_ulp;
  }
  return a;
}

inline void expect_torch_agreement(const std::string& what, const std::vector<double>& got, std::span<const float> want,
                                   const sim::Format& f, double identical_share = 0.999, double max_ulps = 1.0) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Agreement a = compare_with_torch(got, want, f, max_ulps);
  EXPECT_GE(static_cast<double>(a.identical), identical_share * static_cast<double>(a.values))
      << what << ": " << a.identical << " of " << a.values << " values bit-identical to PyTorch's";
  EXPECT_EQ(a.identical + a.within_one_ulp, a.values)
      << what << ": a value " << a.worst_ulps << " ulps (" << f.name << ") from PyTorch's";
  std::cout << "  " << what << ": " << a.identical << "/" << a.values << " identical";
  if (a.identical < a.values) std::cout << ", the others at most " << a.worst_ulps << " ulps off";
  std::cout << "\n";
}

}  // namespace mpscope::test
