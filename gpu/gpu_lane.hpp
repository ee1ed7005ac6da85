// GPU lanes: the mlp of sim/graph_lane.hpp trained on a CUDA device in real FP16/BF16/FP32 arithmetic, behind the
// same sim::Lane interface, so that CPU and GPU lanes run in lockstep in one experiment. No CUDA types here.
//
// Recipes: fp32 (no TF32), fp16-amp, bf16-amp (float32 master weights), fp16-pure, fp8 (delayed scaling). Loss
// scaling, the inf/NaN check and the optimizer run on the device; the host reads back one small block per step
// (and the statistics on recorded steps). Two GEMM modes:
//   fast   cuBLASLt on the tensor cores, what production training runs: bias (and ReLU) fused into the forward
//          GEMMs' epilogues, whose outputs cuBLAS rounds itself (those rounding points are not counted); weight
//          gradients come out in float32 and are rounded by mpscope, so that their underflow is counted. Each step
//          replays a CUDA graph.
//   exact  mpscope's own GEMM kernels with a fixed K order: mma.sync fp16 tensor-core tiles chained block by block
//          (the lane's "h100" accumulation model) or sequential fp32 FMA ("fp32"); every other operation is the
//          CPU lane's, in its order, so that a GPU exact lane and the CPU lane of the same recipe and accumulation
//          model produce bit-identical weights and statistics.
#pragma once

#include <memory>
#include <string>

#include "gpu/error.hpp"
#include "sim/dataset.hpp"
#include "sim/lane.hpp"

namespace mpscope::gpu {

enum class GemmMode { fast, exact };

struct GpuLaneOptions {
  GemmMode mode = GemmMode::fast;
  int device = 0;
  // The dataset, uploaded once: batches are then gathered on the device from row numbers (Batch::rows). Without
  // it every step uploads its batch.
  const sim::Dataset* data = nullptr;
  // Replay each training step from a CUDA graph (captured at the first step of a batch size, one for recorded
  // steps, one for the others); false launches every kernel directly. Graphs need `data`.
  bool graphs = true;
};

// "" when GPU lanes can run here, else why not (no driver, no device, ...).
std::string unavailable_reason();

// A recipe GPU lanes cannot run (fp64, exact, custom, stochastic rounding, ...) is a GpuError naming it.
std::unique_ptr<sim::Lane> make_gpu_lane(const sim::LaneConfig& lane, const sim::ModelConfig& model,
                                         const sim::InitialWeights& init, const GpuLaneOptions& options);

// Device memory allocated by mpscope in this process: the largest total since the last reset, in bytes.
std::size_t peak_device_memory();
void reset_peak_device_memory();

}  // namespace mpscope::gpu
