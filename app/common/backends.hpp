// Which backend each lane runs on: GPU lanes need a CUDA build and a device; --fallback cpu runs them emulated.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "sim/experiment.hpp"

namespace mpscope::app {

// "" when every lane can run as configured (after switching GPU lanes to the CPU when fallback == "cpu"; then
// `warning`, when given, says so); otherwise why not.
std::string resolve_backends(sim::Experiment& e, const std::string& fallback, std::string* warning = nullptr);

// What computes: "CPU emulation", or the CUDA devices' names when GPU lanes can run ("CPU emulation + NVIDIA H100").
std::string compute_device_description();

using LaneFactory =
    std::function<std::unique_ptr<sim::Lane>(const sim::LaneSpec&, const sim::ModelConfig&, const sim::InitialWeights&)>;
// Builds CPU lanes, and GPU lanes where the build has them (`data`: the experiment's dataset, which GPU lanes keep
// on the device; it must outlive the lanes).
LaneFactory lane_factory(const sim::Dataset* data);

}  // namespace mpscope::app
