// The model mpscope trains: an MLP of any widths, with its activation, optional LayerNorm and loss, plus the
// initial weights every lane starts from and the batches every lane sees.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/tensor.hpp"

namespace mpscope::sim {

enum class Activation { relu, gelu, gelu_tanh, tanh, sigmoid };
enum class LossType { cross_entropy, mse };
// Which precision cross-entropy's log-probabilities have (docs/recipes.md). `autocast`: PyTorch's F.cross_entropy on
// the logits as they are: under autocast it is not promoted, so log_softmax rounds to the logits' format (fp16,
// bf16) and the gradient flows back through those rounded values. `fp32`: F.cross_entropy(logits.float(), y).
enum class LossLogits { autocast, fp32 };
std::string_view to_string(Activation a);
std::string_view to_string(LossType l);
std::string_view to_string(LossLogits l);

// Linear layers widths[0] -> widths[1] -> ... -> widths.back(). Each hidden layer is Linear, activation, then
// (optionally) LayerNorm; the last layer is Linear only (logits, or the regression output).
struct ModelConfig {
  std::vector<std::int64_t> widths;
  Activation activation = Activation::relu;
  bool layer_norm = false;
  double layer_norm_eps = 1e-5;
  LossType loss = LossType::cross_entropy;
  LossLogits loss_logits = LossLogits::autocast;  // cross-entropy only

  int layers() const { return static_cast<int>(widths.size()) - 1; }
  std::int64_t parameters() const;
};

// Initial weights in PyTorch's layout (weight (out, in), y = x·Wᵀ + b), as doubles; every lane converts them to
// its own storage. LayerNorm starts at gamma = 1, beta = 0.
struct InitialWeights {
  std::vector<Matrix<double>> weight;        // [layer] (out, in)
  std::vector<std::vector<double>> bias;     // [layer] (out)
  // LayerNorm parameters of the hidden layers (empty: gamma = 1, beta = 0, PyTorch's default).
  std::vector<std::vector<double>> norm_gamma, norm_beta;  // [layer] (out)
};

// PyTorch's default Linear initialisation: weight and bias uniform in +-1/sqrt(in), from a seeded stream.
InitialWeights default_initial_weights(const ModelConfig& m, std::uint64_t seed);

// One training batch: the rows of the dataset for this step.
struct Batch {
  std::vector<std::int64_t> rows;    // (batch) the dataset rows it holds (GPU lanes gather them on the device)
  Matrix<float> x;                   // (batch, features)
  std::vector<std::int64_t> labels;  // (batch) class indices (cross-entropy, or one-hot targets for MSE)
  Matrix<float> targets;             // (batch, outputs) regression targets (MSE); empty for classification
};

}  // namespace mpscope::sim
