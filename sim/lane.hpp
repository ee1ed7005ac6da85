// A lane: one copy of the model trained with one recipe on one backend. Every lane starts from the same initial
// weights and sees the same batch at every step; what differs is the arithmetic. The trainer drives lanes in
// lockstep through this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/histogram.hpp"
#include "sim/loss_scaler.hpp"
#include "sim/model.hpp"
#include "sim/optimizer.hpp"
#include "sim/recipe.hpp"
#include "sim/round_array.hpp"

namespace mpscope::sim {

struct LaneConfig {
  std::string name;
  Recipe recipe;
  LossScaleConfig loss_scale;
  OptimizerConfig optimizer;
  std::uint64_t seed = 0;  // stochastic rounding streams of this lane
  int fp8_history = 1024;  // delayed scaling: amax history length and margin
  int fp8_margin = 0;
};

// A tensor the lane reports (the catalogue, sim/ops/graph.hpp): layer 0 is the network input, layers 1..L the
// groups of ops that start with a layer with parameters (an mlp's Linear layers, a Sequential's conv/linear/norms).
struct TensorInfo {
  std::string name;  // "input", "layer1.weight", "layer1.weight_grad", "0.activation", ...
  std::string kind;  // input, weight, bias, weight_grad, bias_grad, activation, activation_grad
  int layer = 0;
  std::string format;  // the format the lane keeps it in ("fp64", "exact" for wide lanes)
  std::int64_t elements = 0;    // parameters and their gradients
  std::int64_t per_sample = 0;  // activations and their gradients: elements per batch row
};

// A recorded tensor: its log2 histogram (made by the lane, from its own buffers: CPU lanes on the training thread,
// GPU lanes on the device) and, where the lane rounds it, the rounding effects.
struct TensorRecord {
  std::size_t index = 0;  // into Lane::tensors()
  analysis::Log2Histogram histogram;
  std::optional<RoundingEffects> effects;  // summed over the points where the lane rounds this tensor
};

struct StepResult {
  double loss = 0;                 // before the update, in the lane's loss precision
  float loss_scale = 1;            // the scale this step's backward pass used
  float scale_after = 1;
  bool found_inf = false, skipped = false, scale_backed_off = false, scale_grew = false;
  double grad_norm = 0;            // of the unscaled gradients, all layers
  bool weights_nonfinite = false;  // inf/NaN reached the weights: the lane has diverged and stops
  std::string first_nonfinite;     // the first tensor of this step holding inf/NaN ("" if none)
  std::vector<double> lost_updates;  // per layer: share of weights whose nonzero update changed nothing
  std::vector<TensorRecord> tensors;  // when recording
};

using LayerValues = std::vector<std::vector<double>>;  // per layer: its parameters (or gradients), flattened

struct Evaluation {
  double loss = 0;
  std::optional<double> accuracy;  // classification only
};

class Lane {
 public:
  virtual ~Lane() = default;
  virtual const LaneConfig& config() const = 0;
  // One training step on `batch`: forward, backward, loss scaling, optimizer. `record`: fill StepResult::tensors.
  virtual StepResult step(const Batch& batch, double lr, bool record) = 0;
  // Forward pass only (no state changes): loss and accuracy on `data`.
  virtual Evaluation evaluate(const Batch& data) = 0;
  // Master weights and the last step's unscaled gradients, per layer, flattened (weight, bias, LayerNorm), as double,
  // into `out` (its buffers reused: the trainer reads them at every recorded step).
  virtual void read_weights(LayerValues& out) const = 0;
  virtual void read_gradients(LayerValues& out) const = 0;
  LayerValues weights() const {
    LayerValues v;
    read_weights(v);
    return v;
  }
  LayerValues gradients() const {
    LayerValues v;
    read_gradients(v);
    return v;
  }
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  // The last step's values of tensor `index` of tensors(), in the lane's format, as double (for per-tensor
  // comparisons with PyTorch and between backends). False where the lane does not keep them on the host.
  virtual bool read_tensor(std::size_t /*index*/, std::vector<double>& /*out*/) const { return false; }
};

// Builds the lane for its recipe's storage: float32 (every rounded recipe), float64, or exact (113-bit).
std::unique_ptr<Lane> make_lane(const LaneConfig& lane, const ModelConfig& model, const InitialWeights& init);

}  // namespace mpscope::sim
