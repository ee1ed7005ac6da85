#include "gpu/lane_support.cuh"

#include <algorithm>
#include <cmath>

#include "gpu/check.cuh"
#include "sim/round_array.hpp"

namespace mpscope::gpu {

int make_current(int device) {
  MPSCOPE_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

std::unique_ptr<Blas> make_fast_blas(const sim::Recipe& r, GemmMode mode, cudaStream_t stream) {
  if (mode != GemmMode::fast) return nullptr;
  const bool modelled = r.mma == sim::Accumulation::h100;
  BlasOptions options;
  options.one_pass_k = modelled;
  options.fp8_fast_accumulation = modelled && r.fp8_accumulation == sim::Fp8Accumulation::fast;
  return std::make_unique<Blas>(stream, std::size_t{32} << 20, options);
}

kernels::DeviceScaler initial_scaler(const sim::LossScaleConfig& c) {
  kernels::DeviceScaler s{};
  using Type = sim::LossScaleConfig::Type;
  s.type = c.type == Type::none ? 0 : c.type == Type::fixed ? 1 : 2;
  s.scale = s.type == 0 ? 1.0f : static_cast<float>(s.type == 1 ? c.value : c.init_scale);
  s.inv_scale = static_cast<float>(1.0 / static_cast<double>(s.scale));
  s.growth_factor = c.growth_factor;
  s.backoff_factor = c.backoff_factor;
  s.min_scale = c.min_scale;
  s.max_scale = c.max_scale;
  s.growth_interval = c.growth_interval;
  s.hysteresis = s.hysteresis_tracker = c.hysteresis;
  return s;
}

template <typename Tm>
void upload_master(DeviceBuffer<Tm>& dst, const std::vector<double>& values, cudaStream_t stream) {
  std::vector<float> rounded(values.size());
  sim::round_array(std::span<const double>(values), std::span<float>(rounded),
                   std::is_same_v<Tm, float> ? sim::fp32() : sim::fp16(), sim::Rounding::nearest_even);
  if constexpr (std::is_same_v<Tm, float>) {
    dst.upload(rounded, stream);
  } else {
    DeviceBuffer<float> staging(rounded.size());
    staging.upload(rounded, stream);
    kernels::cast<float, Tm>(staging.get(), dst.get(), rounded.size(), PointStats{}, stream);  // exact
  }
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
}
template void upload_master<float>(DeviceBuffer<float>&, const std::vector<double>&, cudaStream_t);
template void upload_master<__half>(DeviceBuffer<__half>&, const std::vector<double>&, cudaStream_t);

template <typename T>
std::vector<float> download_as_float(const T* values, std::size_t n, cudaStream_t stream) {
  DeviceBuffer<float> wide(n);
  kernels::cast<T, float>(values, wide.get(), n, PointStats{}, stream);
  return wide.download(stream);
}
template std::vector<float> download_as_float<float>(const float*, std::size_t, cudaStream_t);
template std::vector<float> download_as_float<__half>(const __half*, std::size_t, cudaStream_t);
template std::vector<float> download_as_float<__nv_bfloat16>(const __nv_bfloat16*, std::size_t, cudaStream_t);

void DeviceDataset::upload(const sim::Dataset& d, cudaStream_t stream) {
  x = DeviceBuffer<float>(d.x.data.size());
  x.upload(d.x.data, stream);
  has_labels = !d.labels.empty();
  has_targets = d.targets.rows > 0;
  if (has_labels) {
    labels = DeviceBuffer<std::int64_t>(d.labels.size());
    labels.upload(d.labels, stream);
  }
  if (has_targets) {
    targets = DeviceBuffer<float>(d.targets.data.size());
    targets.upload(d.targets.data, stream);
  }
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

Fp8State::Fp8State(int slot_count, const sim::LaneConfig& lane, cudaStream_t stream) {
  const auto n = static_cast<std::size_t>(slot_count), length = static_cast<std::size_t>(std::max(1, lane.fp8_history));
  slots = DeviceBuffer<Fp8Slot>(n);
  slots.upload(std::vector<Fp8Slot>(n, Fp8Slot{1.0f, 1.0f, 0u, 0u}), stream);
  history = DeviceBuffer<double>(n * length);
  filled = DeviceBuffer<int>(n);
  head = DeviceBuffer<int>(n);
  filled.zero(stream);
  head.zero(stream);
  unit = DeviceBuffer<Fp8Slot>(1);
  unit.upload(std::vector<Fp8Slot>(1, Fp8Slot{1.0f, 1.0f, 0u, 0u}), stream);
  MPSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void Fp8State::end_step(const sim::LaneConfig& lane, cudaStream_t stream) {
  if (!lane.recipe.delayed_scaling) return;
  kernels::fp8_end_step(slots.get(), static_cast<int>(slots.size()), history.get(), filled.get(), head.get(),
                        std::max(1, lane.fp8_history), lane.fp8_margin, stream);
}

sim::StepResult step_scalars(const kernels::DeviceStepOut& out) {
  sim::StepResult r;
  r.loss = static_cast<double>(static_cast<float>(out.loss));
  r.loss_scale = out.scale_used;
  r.scale_after = out.scaler.scale;
  r.found_inf = out.scaler.found_inf != 0;
  r.skipped = out.scaler.skipped != 0;
  r.scale_backed_off = out.scaler.backed_off != 0;
  r.scale_grew = out.scaler.grew != 0;
  r.grad_norm = std::sqrt(out.grad_sq);
  return r;
}

cudaGraphExec_t capture_graph(cudaStream_t stream, const std::function<void()>& work) {
  cudaGraph_t graph = nullptr;
  MPSCOPE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    work();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  MPSCOPE_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  MPSCOPE_CUDA_CHECK(e);
  return exec;
}

void unscale_on_host(std::vector<float>& g, float scale_used, bool master_gradients) {
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale_used));
  if (master_gradients) {
    for (float& x : g) x = x * inv;
    return;
  }
  std::vector<double> wide(g.begin(), g.end());
  for (double& x : wide) x *= static_cast<double>(inv);
  sim::round_array(std::span<const double>(wide), std::span<float>(g), sim::fp16(), sim::Rounding::nearest_even);
}

}  // namespace mpscope::gpu
