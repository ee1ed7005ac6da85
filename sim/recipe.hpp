// Precision recipes (docs/design.md "Lanes and recipes"): which format and rounding each tensor role of a lane uses.
// A recipe is a runtime value; the lane's storage type (float, double, exact) is the template parameter it picks.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sim/format.hpp"
#include "sim/gemm.hpp"
#include "sim/tensor_core.hpp"

namespace mpscope::sim {

// Lanes hold values as float (every recipe whose formats fit float32), double (fp64) or a 113-bit Boost float
// (exact, the ground truth).
enum class Storage { float32, float64, exact };

// The roles a lane's tensors play; each op rounds its results to its role's format. `promoted`: values autocast
// keeps in float32 (LayerNorm's and the embeddings' outputs, the residual stream, softmax, the norms' parameter
// gradients; sim/ops/graph.hpp Node::promoted): the master weights' format (fp32 under AMP, fp16 in a pure run).
enum class Role { master, weights, activations, gradients, gemm_input, gemm_grad_input, promoted };

struct RoleFormat {
  Format format = fp32();
  Rounding rounding = Rounding::nearest_even;
};

struct Recipe {
  std::string name;  // fp64, fp32, exact, fp16-amp, bf16-amp, fp16-pure, fp8, custom
  Storage storage = Storage::float32;
  // Roles (float32 storage):
  RoleFormat master;       // the stored weights and the optimizer's state
  RoleFormat weights;      // the copy of the weights the GEMMs and bias additions use
  RoleFormat activations;  // layer outputs, GEMM outputs, the network's input after its cast
  RoleFormat gradients;    // activation gradients and weight gradients as the backward pass produces them
  RoleFormat update;       // the rounding of the optimizer's update into the master weights (format = master's)
  // fp8: the forward GEMM's activation input and the backward GEMMs' gradient input get their own cast
  // (E4M3 / E5M2), each with a per-tensor scale factor from delayed scaling; weights use `weights` (E4M3).
  std::optional<RoleFormat> gemm_input;
  std::optional<RoleFormat> gemm_grad_input;
  bool delayed_scaling = false;
  // Weight gradients go to separate master gradients in `master`'s format (AMP): unscaling and the inf/NaN check
  // happen there. Without (pure recipes), gradients stay in `gradients`' format.
  bool master_gradients = true;
  Accumulation mma = Accumulation::fp32;  // GEMM accumulation model (h100: Hopper's, for fp16, bf16, tf32, FP8 inputs)
  Fp8Accumulation fp8_accumulation = Fp8Accumulation::promoted;  // h100 with FP8 inputs: cuBLASLt's two paths
  // Causal attention's q·kᵀ, its scaling and softmax's backward in float32 (an fp32 GEMM of the fp16/bf16 q and
  // k) instead of autocast's low-precision bmm: the "upcast" of Hugging Face's GPT-2 (reorder_and_upcast_attn)
  // and Mistral. Needs fp32 master weights (the promoted format holds the scores).
  bool float32_attention_scores = false;
};

// The built-in recipes by name; throws std::invalid_argument listing them. `custom` starts as fp32 everywhere.
Recipe recipe_preset(std::string_view name);
bool is_recipe_name(std::string_view name);
const char* recipe_names();  // "fp64, fp32, exact, fp16-amp, bf16-amp, fp16-pure, fp8, custom"

// Checks a (possibly customized) recipe: formats must fit float32 for float32 storage, the h100 model needs fp16
// GEMM inputs. Returns "" or what is wrong (naming the role).
std::string check_recipe(const Recipe& r);

}  // namespace mpscope::sim
