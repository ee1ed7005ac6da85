#include "analysis/histogram_kernels.hpp"
#include "analysis/histogram_scan.inl"

namespace mpscope::analysis::detail {

HistogramKernel portable_histogram() {
  return {"portable", histogram_of<float, std::uint32_t, 8, 23>, histogram_of<double, std::uint64_t, 11, 52>};
}

}  // namespace mpscope::analysis::detail
