#include "app/common/backends.hpp"

#include <stdexcept>

#if defined(MPSCOPE_WITH_CUDA)
#include "gpu/device.hpp"
#include "gpu/gpu_lane.hpp"
#endif

namespace mpscope::app {

namespace {
// Why GPU lanes cannot run here ("" when they can).
std::string gpu_unavailable() {
#if defined(MPSCOPE_WITH_CUDA)
  return gpu::unavailable_reason();
#else
  return "this mpscope was built without CUDA (MPSCOPE_CUDA=OFF)";
#endif
}
}  // namespace

std::string resolve_backends(sim::Experiment& e, const std::string& fallback, std::string* warning) {
  std::string gpu_lanes;
  for (const auto& s : e.lanes)
    if (s.backend == "gpu") gpu_lanes += (gpu_lanes.empty() ? "" : ", ") + s.lane.name;
  if (gpu_lanes.empty()) return "";
  const std::string why = gpu_unavailable();
  if (why.empty()) return "";
  if (fallback == "cpu") {
    if (warning) *warning = why + "; lanes " + gpu_lanes + " run emulated on the CPU instead";
    for (auto& s : e.lanes)
      if (s.backend == "gpu") s.backend = "cpu";
    return "";
  }
  return "lanes " + gpu_lanes + " need a GPU: " + why + " (--fallback cpu runs them emulated on the CPU)";
}

std::string compute_device_description() {
  std::string text = "CPU emulation";
#if defined(MPSCOPE_WITH_CUDA)
  if (gpu_unavailable().empty())
    for (const gpu::DeviceInfo& d : gpu::query_cuda().devices) text += " + " + d.name;
#endif
  return text;
}

LaneFactory lane_factory([[maybe_unused]] const sim::Dataset* data) {
  return [data](const sim::LaneSpec& s, const sim::ModelConfig& m, const sim::InitialWeights& w) -> std::unique_ptr<sim::Lane> {
    if (s.backend == "cpu") return sim::make_lane(s.lane, m, w);
#if defined(MPSCOPE_WITH_CUDA)
    if (s.backend == "gpu") {
      gpu::GpuLaneOptions o;
      o.mode = s.gemm == "exact" ? gpu::GemmMode::exact : gpu::GemmMode::fast;
      o.data = data;
      return gpu::make_gpu_lane(s.lane, m, w, o);
    }
#endif
    throw std::runtime_error("lane " + s.lane.name + ": no " + s.backend + " backend in this build");
  };
}

}  // namespace mpscope::app
