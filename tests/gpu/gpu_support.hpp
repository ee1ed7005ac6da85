// Shared helpers of the GPU tests. Every GPU test starts with MPSCOPE_REQUIRE_GPU(): it is skipped only when this
// machine has no usable CUDA device (CI); on the GPU machine all of them run.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gpu/gpu_lane.hpp"

#define MPSCOPE_REQUIRE_GPU()                                                       \
  do {                                                                              \
    const std::string mpscope_why = ::mpscope::gpu::unavailable_reason();           \
    if (!mpscope_why.empty()) GTEST_SKIP() << "no CUDA device here: " << mpscope_why; \
  } while (0)

namespace mpscope::gputest {

// The source tree: where it was built, or MPSCOPE_SOURCE_DIR when the tests run from a copy elsewhere (the GPU
// machine).
inline std::filesystem::path source_dir() {
  if (const char* dir = std::getenv("MPSCOPE_SOURCE_DIR")) return dir;
  return MPSCOPE_SOURCE_DIR;
}
inline std::filesystem::path samples_dir() { return source_dir() / "samples"; }
inline std::filesystem::path data_dir() { return source_dir() / "tests" / "data"; }

// Equal as bit patterns, or both NaN.
inline bool same_bits(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

// The first index where two weight sets differ bit for bit, as "layer L element i: a vs b"; "" when identical.
inline std::string first_difference(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return "different layer counts";
  for (std::size_t l = 0; l < a.size(); ++l) {
    if (a[l].size() != b[l].size()) return "layer " + std::to_string(l) + ": different sizes";
    for (std::size_t i = 0; i < a[l].size(); ++i)
      if (!same_bits(a[l][i], b[l][i]))
        return "layer " + std::to_string(l) + " element " + std::to_string(i) + ": " + std::to_string(a[l][i]) + " vs " +
               std::to_string(b[l][i]);
  }
  return "";
}

// Normalized mean squared error of `got` against `want`: sum (g - w)^2 / sum w^2.
inline double nmse(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want) {
  double num = 0, den = 0;
  for (std::size_t l = 0; l < want.size(); ++l)
    for (std::size_t i = 0; i < want[l].size(); ++i) {
      num += (got[l][i] - want[l][i]) * (got[l][i] - want[l][i]);
      den += want[l][i] * want[l][i];
    }
  return den > 0 ? num / den : num;
}

}  // namespace mpscope::gputest
