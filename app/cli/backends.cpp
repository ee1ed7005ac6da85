#include "app/cli/backends.hpp"

#include <iostream>
#include <stdexcept>

#if defined(MPSCOPE_WITH_CUDA)
#include "gpu/device.hpp"
#endif

namespace mpscope::cli {

namespace {
// Why GPU lanes cannot run here ("" when they can).
std::string gpu_unavailable() {
#if defined(MPSCOPE_WITH_CUDA)
  const gpu::CudaInfo info = gpu::query_cuda();
  if (info.devices.empty()) return info.problem;
  return "GPU lanes are not available yet in this version of mpscope";
#else
  return "this mpscope was built without CUDA (MPSCOPE_CUDA=OFF)";
#endif
}
}  // namespace

std::string resolve_backends(sim::Experiment& e, const std::string& fallback) {
  std::string gpu_lanes;
  for (const auto& s : e.lanes)
    if (s.backend == "gpu") gpu_lanes += (gpu_lanes.empty() ? "" : ", ") + s.lane.name;
  if (gpu_lanes.empty()) return "";
  const std::string why = gpu_unavailable();
  if (why.empty()) return "";
  if (fallback == "cpu") {
    std::cerr << "mpscope: warning: " << why << "; lanes " << gpu_lanes << " run emulated on the CPU instead\n";
    for (auto& s : e.lanes)
      if (s.backend == "gpu") s.backend = "cpu";
    return "";
  }
  return "lanes " + gpu_lanes + " need a GPU: " + why + " (--fallback cpu runs them emulated on the CPU)";
}

std::function<std::unique_ptr<sim::Lane>(const sim::LaneSpec&, const sim::ModelConfig&, const sim::InitialWeights&)>
lane_factory() {
  return [](const sim::LaneSpec& s, const sim::ModelConfig& m, const sim::InitialWeights& w) {
    if (s.backend != "cpu") throw std::runtime_error("lane " + s.lane.name + ": no " + s.backend + " backend");
    return sim::make_lane(s.lane, m, w);
  };
}

}  // namespace mpscope::cli
