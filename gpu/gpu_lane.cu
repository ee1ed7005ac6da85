// make_gpu_lane: which recipes the GPU backend runs, and with which element types: mlp models without LayerNorm on
// GpuMlpLane (gpu/mlp_lane.cuh), sequential models and mlps with LayerNorm on GpuGraphLane (gpu/graph_lane.cuh),
// whose LayerNorm keeps autocast's float32 γ/β, float32 parameter gradients and float32-then-rounded output.
#include "gpu/gpu_lane.hpp"

#include "gpu/graph_lane.cuh"
#include "gpu/kernels.cuh"
#include "gpu/mlp_lane.cuh"

namespace mpscope::gpu {

std::unique_ptr<sim::Lane> make_gpu_lane(const sim::LaneConfig& lane, const sim::ModelConfig& model,
                                         const sim::InitialWeights& init, const GpuLaneOptions& options) {
  const sim::Recipe& r = lane.recipe;
  const auto refuse = [&](const std::string& why) -> std::unique_ptr<sim::Lane> {
    throw GpuError("lane " + lane.name + ": " + why);
  };
  const std::string supported = "GPU lanes run fp32, fp16-amp, bf16-amp, fp16-pure and fp8";
  static_assert(static_cast<int>(sim::Activation::silu) == kernels::silu, "the GPU's activation kinds follow sim's");
  if (r.storage != sim::Storage::float32 || r.name == "custom")
    return refuse("the " + r.name + " recipe has no GPU lane (" + supported + "; \"backend\": \"cpu\" runs it)");
  for (const sim::RoleFormat* role : {&r.master, &r.weights, &r.activations, &r.gradients, &r.update})
    if (role->rounding != sim::Rounding::nearest_even) return refuse("GPU lanes round to nearest-even only");
  if (r.mma == sim::Accumulation::exact) return refuse("\"mma\": \"exact\" is a CPU model");
  // "mma": "h100" in fast mode: cuBLASLt arranged to compute the model's bits (one pass over K, the recipe's FP8
  // accumulation, the bias gradients in the CPU's order); exact mode has mma.sync kernels for fp16 only.
  if (r.mma == sim::Accumulation::h100 && r.name == "fp32")
    return refuse("the fp32 recipe's GEMMs have no tensor-core path (no TF32), so \"mma\": \"h100\" does not apply");
  if (r.mma == sim::Accumulation::h100 && options.mode == GemmMode::exact && !(r.weights.format == sim::fp16()))
    return refuse("exact GPU lanes run the h100 model for fp16 GEMMs only (mpscope's mma.sync kernels); the " + r.name +
                  " recipe's h100 model runs on fast GPU lanes (cuBLASLt) and on CPU lanes");
  if (model.type != sim::ModelConfig::Type::mlp || model.layer_norm) {  // (a gpt's ops are refused there by name)
    if (r.name == "fp32" || r.name == "fp8") return std::make_unique<GpuGraphLane<float, float>>(lane, model, init, options);
    if (r.name == "fp16-amp") return std::make_unique<GpuGraphLane<__half, float>>(lane, model, init, options);
    if (r.name == "bf16-amp") return std::make_unique<GpuGraphLane<__nv_bfloat16, float>>(lane, model, init, options);
    if (r.name == "fp16-pure") return std::make_unique<GpuGraphLane<__half, __half>>(lane, model, init, options);
    return refuse("the " + r.name + " recipe has no GPU lane (" + supported + ")");
  }
  if (r.name == "fp32" || r.name == "fp8") return std::make_unique<GpuMlpLane<float, float>>(lane, model, init, options);
  if (r.name == "fp16-amp") return std::make_unique<GpuMlpLane<__half, float>>(lane, model, init, options);
  if (r.name == "bf16-amp") return std::make_unique<GpuMlpLane<__nv_bfloat16, float>>(lane, model, init, options);
  if (r.name == "fp16-pure") return std::make_unique<GpuMlpLane<__half, __half>>(lane, model, init, options);
  return refuse("the " + r.name + " recipe has no GPU lane (" + supported + ")");
}

}  // namespace mpscope::gpu
