// Shared helpers for the test suite: where the reference data lives, how many random cases to run.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include <ostream>

#include "sim/format.hpp"

namespace mpscope::sim {
// GoogleTest prints parameters with this instead of their bytes.
inline void PrintTo(const Format& f, std::ostream* os) {
  *os << f.name;
  if (!f.switches().empty()) *os << "[" << f.switches() << "]";
}
}  // namespace mpscope::sim

namespace mpscope::test {

// tests/data of the source tree (reference data from PyTorch and Hopper GPUs, see tests/data/README.md).
inline std::filesystem::path data_dir() { return MPSCOPE_TEST_DATA_DIR; }

// Random-case counts are multiplied by MPSCOPE_TEST_SCALE (default 1). The sanitizer build of scripts/test
// sets it below 1: the full counts run in the normal build.
inline std::int64_t scaled(std::int64_t cases) {
  const char* s = std::getenv("MPSCOPE_TEST_SCALE");
  const double scale = s != nullptr ? std::atof(s) : 1.0;
  return std::max<std::int64_t>(1000, static_cast<std::int64_t>(static_cast<double>(cases) * scale));
}

// Equal as bit patterns, or both NaN (NaN payloads are not part of any contract here).
inline bool same_value(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}
inline bool same_value(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// A file `name` in this process's scratch folder for `suite` (created; remove it with its parent at the end).
inline std::filesystem::path scratch_file(const std::string& suite, const std::string& name) {
  const std::filesystem::path d = std::filesystem::temp_directory_path() / ("mpscope_" + suite + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d / name;
}

// The message of the exception `f` throws, or "no error".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace mpscope::test
