// Internal: what every GPU lane (gpu/mlp_lane.cuh, gpu/graph_lane.cuh) sets up the same way: the device, the loss
// scaler's initial state, the master weights' upload, the device copy of the dataset, reading buffers back.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gpu/blas.cuh"
#include "gpu/buffer.cuh"
#include "gpu/fp8.cuh"
#include "gpu/gpu_lane.hpp"
#include "gpu/kernels.cuh"
#include "sim/dataset.hpp"
#include "sim/lane.hpp"

namespace mpscope::gpu {

inline std::size_t aligned(std::size_t n) { return (n + 15) / 16 * 16; }

// Makes `device` current; returns it (lanes make it current before their first member is made).
int make_current(int device);

// Fast mode's cuBLASLt for a lane of recipe r (32 MiB of workspace, as PyTorch gives it); under "mma": "h100" its
// GEMMs keep K in one pass and its FP8 GEMMs accumulate as the recipe says, so that they compute the CPU model's
// bits. nullptr in exact mode.
std::unique_ptr<Blas> make_fast_blas(const sim::Recipe& r, GemmMode mode, cudaStream_t stream);

// sim::LossScaler's initial state on the device.
kernels::DeviceScaler initial_scaler(const sim::LossScaleConfig& c);

// Initial weights rounded to the master format as the CPU lane stores them (double -> format, nearest-even).
template <typename Tm>
void upload_master(DeviceBuffer<Tm>& dst, const std::vector<double>& values, cudaStream_t stream);

// n values of a device buffer as float (exact for the lanes' formats); synchronizes the stream.
template <typename T>
std::vector<float> download_as_float(const T* values, std::size_t n, cudaStream_t stream);

// The delayed scaling of an fp8 lane (sim::RoundedOps' scales): three slots per GEMM op (its input, its weight, its
// output gradient: gpu/fp8.cuh), each with an amax history of the lane's length.
struct Fp8State {
  DeviceBuffer<Fp8Slot> slots;
  DeviceBuffer<double> history;
  DeviceBuffer<int> filled, head;
  DeviceBuffer<Fp8Slot> unit;  // scale 1: fast mode packs quantized values with it (Fp8Pack)
  Fp8State() = default;
  Fp8State(int slot_count, const sim::LaneConfig& lane, cudaStream_t stream);
  // RoundedOps::end_step, after the backward pass (skipped steps too): the step's amaxes give the next scales
  // (nothing without delayed scaling: scale 1, a plain cast).
  void end_step(const sim::LaneConfig& lane, cudaStream_t stream);
};

// The dataset on the device, uploaded once: batches are gathered there from row numbers.
struct DeviceDataset {
  DeviceBuffer<float> x;              // (rows, features)
  DeviceBuffer<float> targets;        // (rows, outputs) where given
  DeviceBuffer<std::int64_t> labels;  // (rows) where given
  bool has_labels = false, has_targets = false;
  void upload(const sim::Dataset& d, cudaStream_t stream);
};

// The scalars of a step's read-back as the CPU lane reports them: the loss (kept as float32, as autocast keeps
// it), the scale used and after, the scaler's decisions, the gradient norm.
sim::StepResult step_scalars(const kernels::DeviceStepOut& out);

// What `work` enqueues on `stream`, captured and instantiated as a graph (a lane's step); nothing runs yet.
cudaGraphExec_t capture_graph(cudaStream_t stream, const std::function<void()>& work);

// The last step's master gradients from the gradients as produced, unscaled on the host as the device unscales
// them (sim::GraphLane::unscale): float32 products with master gradients, else rounded to fp16 (fp16-pure).
void unscale_on_host(std::vector<float>& g, float scale_used, bool master_gradients);

}  // namespace mpscope::gpu
