// Internal: device statistics turned into the host's types (analysis::Log2Histogram, sim::RoundingEffects).
#pragma once

#include "analysis/histogram.hpp"
#include "gpu/types.cuh"
#include "sim/round_array.hpp"

namespace mpscope::gpu {

analysis::Log2Histogram to_histogram(const DeviceHistogram& d);
sim::RoundingEffects to_effects(const DeviceEffects& d);
sim::RoundingEffects& operator+=(sim::RoundingEffects& a, const DeviceEffects& b);

}  // namespace mpscope::gpu
