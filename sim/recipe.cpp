#include "sim/recipe.hpp"

#include <stdexcept>

namespace mpscope::sim {

namespace {
RoleFormat role(const Format& f) { return RoleFormat{f, Rounding::nearest_even}; }

// Mixed precision as PyTorch autocast + GradScaler does it: fp32 master weights and master gradients, GEMMs and
// activations in the narrow format (where each op rounds: docs/recipes.md).
Recipe amp(const char* name, const Format& narrow) {
  Recipe r;
  r.name = name;
  r.master = role(fp32());
  r.weights = role(narrow);
  r.activations = role(narrow);
  r.gradients = role(narrow);
  r.update = role(fp32());
  r.master_gradients = true;
  return r;
}
}  // namespace

const char* recipe_names() { return "fp64, fp32, exact, fp16-amp, bf16-amp, fp16-pure, fp8, custom"; }

bool is_recipe_name(std::string_view n) {
  for (auto name : {"fp64", "fp32", "exact", "fp16-amp", "bf16-amp", "fp16-pure", "fp8", "custom"})
    if (n == name) return true;
  return false;
}

Recipe recipe_preset(std::string_view name) {
  Recipe r;
  r.name = std::string(name);
  if (name == "fp64" || name == "exact") {
    r.storage = name == "fp64" ? Storage::float64 : Storage::exact;
    const Format& f = fp64();  // nominal: these lanes do not round
    r.master = r.weights = r.activations = r.gradients = r.update = role(f);
    return r;
  }
  if (name == "fp32" || name == "custom") {
    r.master = r.weights = r.activations = r.gradients = r.update = role(fp32());
    return r;
  }
  if (name == "fp16-amp") return amp("fp16-amp", fp16());
  if (name == "bf16-amp") return amp("bf16-amp", bf16());
  if (name == "fp16-pure") {
    r.master = r.weights = r.activations = r.gradients = r.update = role(fp16());
    r.master_gradients = false;
    return r;
  }
  if (name == "fp8") {
    // TransformerEngine-style: fp32 master weights and activations; GEMM inputs cast to E4M3 (forward) and E5M2
    // (backward) with per-tensor delayed scaling and saturation.
    r.master = r.activations = r.gradients = r.update = role(fp32());
    r.weights = role(e4m3fn().with_overflow(Overflow::saturate));
    r.gemm_input = role(e4m3fn().with_overflow(Overflow::saturate));
    r.gemm_grad_input = role(e5m2().with_overflow(Overflow::saturate));
    r.delayed_scaling = true;
    return r;
  }
  throw std::invalid_argument("unknown recipe '" + std::string(name) + "' (expected " + recipe_names() + ")");
}

std::string check_recipe(const Recipe& r) {
  if (r.storage != Storage::float32) {
    if (r.mma == Accumulation::h100) return "mma: the h100 model applies to fp16 GEMM inputs, not to " + r.name;
    return "";
  }
  const std::pair<const char*, const RoleFormat*> roles[] = {
      {"master", &r.master}, {"weights", &r.weights}, {"activations", &r.activations}, {"gradients", &r.gradients}};
  for (const auto& [name, rf] : roles)
    if (!rf->format.within_float32())
      return std::string("formats.") + name + ": " + rf->format.name +
             " does not fit float32 storage (at most 8 exponent and 23 mantissa bits)";
  if (r.update.format != r.master.format) return "formats.master: the update is rounded to the master format";
  if (r.mma == Accumulation::h100) {
    // The GEMMs' operand formats (forward, and the two backward products) must each have a Hopper model.
    const Format x = (r.gemm_input ? *r.gemm_input : r.activations).format, w = r.weights.format,
                 g = (r.gemm_grad_input ? *r.gemm_grad_input : r.gradients).format;
    for (const auto& [a, b] : {std::pair{x, w}, std::pair{g, w}, std::pair{g, x}}) {
      try {
        hopper_model(a, b, r.fp8_accumulation);
      } catch (const std::invalid_argument& e) {
        return std::string("mma: the h100 model covers GEMMs of fp16, bf16 or tf32 inputs and FP8 (e4m3fn, e5m2); "
                           "this recipe's GEMMs take ") + e.what() + " (use \"mma\": \"fp32\")";
      }
    }
  }
  if (r.float32_attention_scores && r.master.format != fp32())
    return "attention_scores: \"float32\" keeps the scores in the master format, which is " + r.master.format.name +
           " in this recipe (use an AMP recipe, or a custom one with fp32 master weights)";
  return "";
}

}  // namespace mpscope::sim
