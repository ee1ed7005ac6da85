// Internal: the arithmetic every op (sim/ops/*.cpp) delegates its rounding points to, one policy per storage type.
//   RoundedOps  float32 storage: every rounding point rounds to its role's format (recipe), GEMMs follow the
//               accumulation model, elementwise results are computed in double and rounded once, FP8 casts use
//               delayed scaling; rounding effects and the first inf/NaN are logged per tensor.
//   WideOps<T>  double or the exact lane's 113-bit float: plain arithmetic, nothing to round.
#pragma once

#include <boost/math/special_functions/erf.hpp>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sim/gemm.hpp"
#include "sim/lane.hpp"
#include "sim/mathfn.hpp"
#include "sim/rounding.hpp"
#include "sim/tensor_core.hpp"

namespace mpscope::sim {

// The exact lane's number: a 113-bit significand, like IEEE binary128.
using Exact = boost::multiprecision::number<boost::multiprecision::cpp_bin_float<113, boost::multiprecision::digit_base_2>,
                                            boost::multiprecision::et_off>;

// Elementary functions of the wide type: double through the host/device mathfn (so the GPU can match them),
// Exact through Boost.
namespace lanemath {
inline double exp(double x) { return mathfn::exp(x); }
inline double log(double x) { return mathfn::log(x); }
inline double tanh(double x) { return mathfn::tanh(x); }
inline double erf(double x) { return mathfn::erf(x); }
inline double sqrt(double x) { return mathfn::sqrt(x); }
inline Exact exp(const Exact& x) { return boost::multiprecision::exp(x); }
inline Exact log(const Exact& x) { return boost::multiprecision::log(x); }
inline Exact tanh(const Exact& x) { return boost::multiprecision::tanh(x); }
inline Exact erf(const Exact& x) { return boost::math::erf(x); }
inline Exact sqrt(const Exact& x) { return boost::multiprecision::sqrt(x); }
}  // namespace lanemath

inline double to_double(float x) { return x; }
inline double to_double(double x) { return x; }
inline double to_double(const Exact& x) { return static_cast<double>(x); }

// What happened at the rounding points of one step.
struct StepLog {
  bool recording = false;
  std::vector<RoundingEffects> effects;  // per tensor index
  std::vector<bool> rounded;             // a rounding point touched the tensor
  std::string first_nonfinite;
  const std::vector<TensorInfo>* catalogue = nullptr;

  void reset(std::size_t tensors, bool record) {
    recording = record;
    effects.assign(tensors, RoundingEffects{});
    rounded.assign(tensors, false);
    first_nonfinite.clear();
  }
  template <typename V>
  void check_finite(std::size_t tensor, std::span<const V> values) {
    if (!first_nonfinite.empty()) return;
    for (const V& v : values)
      if (!std::isfinite(to_double(v))) {
        first_nonfinite = (*catalogue)[tensor].name;
        return;
      }
  }
};

// A strided read-only view of a matrix of T (transposes are views).
template <typename T>
struct View {
  const T* data = nullptr;
  std::int64_t rows = 0, cols = 0, row_stride = 0, col_stride = 1;
  static View of(const Matrix<T>& m) { return {m.data.data(), m.rows, m.cols, m.cols, 1}; }
  View transposed() const { return {data, cols, rows, col_stride, row_stride}; }
  const T& operator()(std::int64_t r, std::int64_t c) const { return data[r * row_stride + c * col_stride]; }
};

// The roles whose formats a GEMM's two operands hold (the h100 model picks Hopper's path by them): by default a
// forward product of the layer input and the weights.
struct GemmRoles {
  Role a = Role::gemm_input, b = Role::weights;
};

class RoundedOps {
 public:
  using T = float;
  using Wide = double;

  RoundedOps(const LaneConfig& c, int gemms) : recipe_(c.recipe), random_(c.seed, 0x726f756e64 /* "round" */) {
    for (int k = 0; k < gemms; ++k) {
      for (Role r : {Role::gemm_input, Role::weights, Role::gemm_grad_input}) {
        const double max = recipe_.delayed_scaling ? role(r).format.max_finite() : 1.0;
        scales_.emplace_back(max, c.fp8_history, c.fp8_margin);
        amax_.push_back(0.0);
      }
    }
  }

  const RoleFormat& role(Role r) const {
    switch (r) {
      case Role::master:
      case Role::promoted: return recipe_.master;
      case Role::weights: return recipe_.weights;
      case Role::activations: return recipe_.activations;
      case Role::gradients: return recipe_.gradients;
      case Role::gemm_input: return recipe_.gemm_input ? *recipe_.gemm_input : recipe_.activations;
      case Role::gemm_grad_input: return recipe_.gemm_grad_input ? *recipe_.gemm_grad_input : recipe_.gradients;
    }
    return recipe_.master;
  }
  std::string format_name(Role r) const { return role(r).format.name; }
  bool same_format(Role a, Role b) const { return role(a).format == role(b).format && role(a).rounding == role(b).rounding; }
  bool master_gradients() const { return recipe_.master_gradients; }
  // Where causal attention's scores round: autocast's activation format, or float32 (the lane's upcast option).
  Role scores_role() const { return recipe_.float32_attention_scores ? Role::promoted : Role::activations; }
  RandomStream& random() { return random_; }
  RandomStream random_state() const { return random_; }
  void restore_random_state(const RandomStream& r) { random_ = r; }

  // Round float values to the role's format (in == out allowed).
  void cast(Role r, std::size_t tensor, std::span<const float> in, std::span<float> out, StepLog& log) {
    const RoleFormat& rf = role(r);
    if (is_identity(rf)) {
      if (in.data() != out.data()) std::copy(in.begin(), in.end(), out.begin());
    } else {
      if (log.recording) {
        log.effects[tensor] += round_array_counted(in, out, rf.format, rf.rounding, &random_);
        log.rounded[tensor] = true;
      } else {
        round_array(in, out, rf.format, rf.rounding, &random_);
      }
    }
    log.check_finite<float>(tensor, out);
  }

  // Round double results to the promoted format (float32 math of an op on autocast's fp32 list) and then, where
  // `to` differs, to `to`'s format (autocast's cast of that result), counted to `tensor`.
  void store_promoted_then(Role to, std::size_t tensor, std::span<const double> in, std::span<float> out, StepLog& log) {
    store(Role::promoted, tensor, in, out, log);
    if (!same_format(Role::promoted, to)) cast(to, tensor, out, out, log);
  }

  // Round double results (elementwise math) once to the role's format.
  void store(Role r, std::size_t tensor, std::span<const double> in, std::span<float> out, StepLog& log) {
    const RoleFormat& rf = role(r);
    // (float32 results of double intermediates are the lane's own arithmetic, not a narrowing: not counted)
    if (log.recording && !is_identity(rf)) {
      log.effects[tensor] += round_array_counted(in, out, rf.format, rf.rounding, &random_);
      log.rounded[tensor] = true;
    } else {
      round_array(in, out, rf.format, rf.rounding, &random_);
    }
    log.check_finite<float>(tensor, out);
  }

  // The loss is computed in double and kept as float32, as autocast keeps it.
  double loss_value(double loss) const { return static_cast<float>(loss); }
  // The loss's inner rounding points (log-probabilities, the backward's seed): single values, to nearest, not
  // counted (no tensor of the catalogue holds them).
  double to_format(Role r, double v) const { return sim::round(v, role(r).format); }
  static double to_float32(double v) { return static_cast<float>(v); }
  // d loss / d logits: float32 first (the loss precision), then the cast to the gradient format.
  void store_loss_grad(std::size_t tensor, std::span<const double> in, std::span<float> out, StepLog& log) {
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = static_cast<float>(in[i]);
    cast(Role::gradients, tensor, out, out, log);
  }

  // FP8 (delayed scaling): out = round_sat(in * scale) and the slot's amax noted; returns 1/scale, which the GEMM
  // result is multiplied by. Without delayed scaling: a plain cast to the role's format, returning 1.
  float quantize(Role r, int slot, std::size_t tensor, std::span<const float> in, std::span<float> out, StepLog& log) {
    if (!recipe_.delayed_scaling) {
      // Without an FP8 cast of its own, a GEMM input is already in its format: no second rounding point.
      const bool own_cast = (r == Role::gemm_input && recipe_.gemm_input) ||
                            (r == Role::gemm_grad_input && recipe_.gemm_grad_input) || r == Role::weights;
      if (own_cast) {
        cast(r, tensor, in, out, log);
      } else if (in.data() != out.data()) {
        std::copy(in.begin(), in.end(), out.begin());
      }
      return 1.0f;
    }
    double amax = 0;
    for (float v : in) amax = std::max(amax, static_cast<double>(std::fabs(v)));
    amax_[static_cast<std::size_t>(slot)] = std::max(amax_[static_cast<std::size_t>(slot)], amax);
    const float s = scales_[static_cast<std::size_t>(slot)].scale();
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] * s;
    cast(r, tensor, out, out, log);
    return scales_[static_cast<std::size_t>(slot)].inv_scale();
  }
  // After a training step: this step's amaxes go into the histories (the scales of the next step).
  void end_step() {
    if (!recipe_.delayed_scaling) return;
    for (std::size_t i = 0; i < scales_.size(); ++i) {
      scales_[i].record(amax_[i]);
      amax_[i] = 0;
    }
  }
  void discard_amax() { std::fill(amax_.begin(), amax_.end(), 0.0); }

  // out (a.rows, b.cols) = a·b under the lane's accumulation model, times `descale` (FP8 inverse scales). `roles`
  // say which formats a and b hold: the h100 model takes Hopper's path for them (fp16, bf16, tf32, FP8); operands
  // with no tensor-core path (float32 ones of an fp8 lane's attention) are summed as an fp32 GEMM.
  void gemm(View<float> a, View<float> b, std::span<float> out, float descale = 1.0f, GemmRoles roles = {}) {
    const MatrixView av = matrix(a), bv = matrix(b);
    if (recipe_.mma == Accumulation::h100) {
      if (const std::optional<TensorCoreModel>& model = tensor_core_model(roles)) {
        tensor_core_gemm(*model, av, bv, MatrixView{}, out);
      } else {
        gemm_impl(Accumulation::fp32, av, bv, MatrixView{}, out);
      }
    } else {
      gemm_impl(recipe_.mma, av, bv, MatrixView{}, out);
    }
    if (descale != 1.0f)
      for (float& v : out) v *= descale;
  }
  // out = a·b as an fp32 GEMM (sequential FMA), whatever the lane's model: the upcast attention scores' bmm.
  void float32_gemm(View<float> a, View<float> b, std::span<float> out) {
    gemm_impl(Accumulation::fp32, matrix(a), matrix(b), MatrixView{}, out);
  }

 private:
  static bool is_identity(const RoleFormat& rf) {
    return rf.format == fp32() && rf.rounding == Rounding::nearest_even;
  }
  static MatrixView matrix(View<float> v) { return {v.data, v.rows, v.cols, v.row_stride, v.col_stride}; }
  static void gemm_impl(Accumulation model, MatrixView a, MatrixView b, MatrixView c, std::span<float> d) {
    sim::gemm(model, a, b, c, d);
  }
  // Hopper's path for operands of these roles' formats, once per pair; none where there is no tensor-core path.
  const std::optional<TensorCoreModel>& tensor_core_model(GemmRoles roles) {
    const auto key = std::pair{static_cast<int>(roles.a), static_cast<int>(roles.b)};
    auto it = tensor_core_models_.find(key);
    if (it == tensor_core_models_.end()) {
      std::optional<TensorCoreModel> model;
      try {
        model = hopper_model(role(roles.a).format, role(roles.b).format, recipe_.fp8_accumulation);
      } catch (const std::invalid_argument&) {
      }
      it = tensor_core_models_.emplace(key, model).first;
    }
    return it->second;
  }

  Recipe recipe_;
  RandomStream random_;
  std::vector<DelayedScaling> scales_;  // per GEMM op: gemm input, weights, gradient input
  std::vector<double> amax_;
  std::map<std::pair<int, int>, std::optional<TensorCoreModel>> tensor_core_models_;
};

template <typename V>
class WideOps {
 public:
  using T = V;
  using Wide = V;

  WideOps(const LaneConfig& c, int) : name_(c.recipe.storage == Storage::exact ? "exact" : "fp64") {}
  std::string format_name(Role) const { return name_; }
  bool same_format(Role, Role) const { return true; }
  bool master_gradients() const { return true; }
  Role scores_role() const { return Role::activations; }
  int random_state() const { return 0; }
  void restore_random_state(int) {}

  void cast(Role, std::size_t tensor, std::span<const V> in, std::span<V> out, StepLog& log) {
    if (in.data() != out.data()) std::copy(in.begin(), in.end(), out.begin());
    log.check_finite<V>(tensor, out);
  }
  void store(Role, std::size_t tensor, std::span<const V> in, std::span<V> out, StepLog& log) {
    std::copy(in.begin(), in.end(), out.begin());
    log.check_finite<V>(tensor, out);
  }
  void store_promoted_then(Role r, std::size_t tensor, std::span<const V> in, std::span<V> out, StepLog& log) {
    store(r, tensor, in, out, log);
  }
  V loss_value(const V& loss) const { return loss; }
  V to_format(Role, const V& v) const { return v; }
  static V to_float32(const V& v) { return v; }
  void store_loss_grad(std::size_t tensor, std::span<const V> in, std::span<V> out, StepLog& log) {
    store(Role::gradients, tensor, in, out, log);
  }
  float quantize(Role r, int, std::size_t tensor, std::span<const V> in, std::span<V> out, StepLog& log) {
    cast(r, tensor, in, out, log);
    return 1.0f;
  }
  void end_step() {}
  void discard_amax() {}

  // Sequential sums in k order, in V.
  void gemm(View<V> a, View<V> b, std::span<V> out, float = 1.0f, GemmRoles = {}) {
    for (std::int64_t i = 0; i < a.rows; ++i)
      for (std::int64_t j = 0; j < b.cols; ++j) {
        V acc(0);
        for (std::int64_t k = 0; k < a.cols; ++k) acc += a(i, k) * b(k, j);
        out[static_cast<std::size_t>(i * b.cols + j)] = acc;
      }
  }
  void float32_gemm(View<V> a, View<V> b, std::span<V> out) { gemm(a, b, out); }

 private:
  std::string name_;
};

}  // namespace mpscope::sim
