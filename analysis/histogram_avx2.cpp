// Built with -mavx2: the range and slot passes vectorize with 8-lane unsigned min/max (SSE2 has none).
#include "analysis/histogram_kernels.hpp"
#include "analysis/histogram_scan.inl"

namespace mpscope::analysis::detail {

HistogramKernel avx2_histogram() {
  return {"avx2", histogram_of<float, std::uint32_t, 8, 23>, histogram_of<double, std::uint64_t, 11, 52>};
}

}  // namespace mpscope::analysis::detail
