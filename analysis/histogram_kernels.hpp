// Internal: the log2 histogram built for each instruction set; Log2Histogram::of picks the best this CPU runs.
// Exposed so that tests can hold every variant against the same reference.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "analysis/histogram.hpp"

namespace mpscope::analysis::detail {

struct HistogramKernel {
  std::string_view isa;
  Log2Histogram (*of_float)(std::span<const float>);
  Log2Histogram (*of_double)(std::span<const double>);
};

HistogramKernel portable_histogram();
HistogramKernel avx2_histogram();    // (x86-64 builds only)
HistogramKernel avx512_histogram();  // (x86-64 builds only; needs AVX-512 F/BW/VL and POPCNT)

// Every variant this build has and this CPU can run, best last.
std::vector<HistogramKernel> runnable_histograms();

}  // namespace mpscope::analysis::detail
