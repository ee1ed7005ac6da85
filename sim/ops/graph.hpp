// A model as the lanes run it: a sequence of op nodes with their shapes, parameters (PyTorch names) and the tensor
// catalogue that statistics, run files and the app use — all derived here from the ModelConfig, once.
//
// Catalogue groups: the network input is group 0 ("input"); every op with parameters starts a group named after its
// module ("layer1" of an mlp, "0" of a Sequential) and the parameter-free ops after it join that group (an mlp's
// LayerNorm joins its Linear's group). A group's tensors: <g>.weight, <g>.bias (when the op has one),
// <g>.weight_grad, <g>.bias_grad, <g>.activation (the output of the group's last op) and <g>.activation_grad (the
// gradient at the output of its first op). Rounding effects count to the group of the tensor they round: an op's
// output to its own group's activation, the gradient of its input to the input's group's activation_grad.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/lane.hpp"
#include "sim/model.hpp"

namespace mpscope::sim {

struct ParamInfo {
  std::string name;                 // PyTorch's: "0.weight", "3.bias", "layer1.weight", "layer1.norm.weight"
  std::vector<std::int64_t> shape;  // PyTorch's layout: Linear (out, in), Conv2d (out, in, kh, kw), norms (n)
  bool is_bias = false;             // counts to the group's bias tensors (else its weight tensors)
  enum class Init { uniform, normal, ones, zeros } init = Init::uniform;
  double bound = 0;                 // uniform: +-bound (PyTorch's default: 1/sqrt(fan_in)); normal: the std
  std::int64_t size() const;
};

struct Node {
  LayerSpec spec;
  std::string module;                          // PyTorch module name ("0", "layer1", "layer1.norm")
  std::vector<std::int64_t> in_shape, out_shape;  // per sample: (features), (C, H, W), (T, D), ...
  std::vector<ParamInfo> params;
  int group = 0;                               // catalogue group of its output
  int gemm = -1;                               // index among the GEMM ops (FP8 scaling slots), -1: none
  bool needs_input_grad = false;               // an op before it has parameters
  int residual = -1;                           // add: the activation added to the input (0: the model's input,
                                               // k + 1: node k's output); its gradient gets this node's added
  // Where autocast keeps values in float32 (docs/recipes.md "Autocast's types"): the output (and its gradient) is
  // in the `promoted` role's format — ops on autocast's fp32 list (layer_norm), embeddings (fp32 weights), sums
  // with such a value — instead of the activation format. A LayerNorm whose only reader is a GEMM (which casts
  // its input anyway) rounds through the promoted format to the activation format itself: `promoted` false.
  bool promoted = false;
  bool promoted_input = false;                 // its input is promoted (a GEMM casts it to the activation format)
  std::size_t scores_tensor = static_cast<std::size_t>(-1);  // causal_attention: the catalogue entry of head 0's
                                               // attention scores (heads follow in order, then the probabilities)
  std::int64_t in_size() const;                // elements per sample
  std::int64_t out_size() const;
};

constexpr std::size_t no_tensor = static_cast<std::size_t>(-1);

struct Group {
  std::string name;  // "input", "layer1", "0"
  int first_node = -1;  // -1: the input group
  // Catalogue indices (no_tensor where absent).
  std::size_t weight = no_tensor, bias = no_tensor, weight_grad = no_tensor, bias_grad = no_tensor;
  std::size_t activation = no_tensor, activation_grad = no_tensor;
};

struct Graph {
  std::vector<std::int64_t> input;  // per-sample input shape
  std::vector<Node> nodes;
  std::vector<Group> groups;        // [0] is the input
  std::vector<TensorInfo> tensors;  // the catalogue (format left empty: each lane fills in its own)
  std::vector<Role> tensor_roles;   // per catalogue entry: master, activations, gradients or promoted
  int gemms = 0;
  bool mlp = false;                 // built from an mlp
  bool tokens = false;              // the input holds token ids (an embedding reads it): not cast, no gradient
  std::int64_t vocab = 0;           // tokens: the embedding's num_embeddings

  // Rows per evaluation chunk of a `rows`-row set: all of them unless the largest buffer (an op's output or a
  // convolution's im2col matrix) would pass 2^26 values; an mlp evaluates in one piece. The CPU and GPU lanes
  // chunk alike (a chunk's loss is rounded to float32 before the chunks are averaged).
  std::int64_t evaluation_chunk(std::int64_t rows) const;
  std::int64_t outputs() const;     // elements per sample of the last op's output
  std::int64_t parameters() const;  // trainable values
  // The catalogue entry a node's output rounding counts to, and its input gradient's (no_tensor: none).
  std::size_t output_tensor(int node) const;
  std::size_t input_grad_tensor(int node) const;
};

// The nodes of a gpt model with nanoGPT's module names (each a LayerSpec; adds name the earlier node they read).
std::vector<std::pair<LayerSpec, std::string>> gpt_sequence(const GptConfig& c);

// Builds and shape-checks the graph; throws std::invalid_argument naming the layer ("layers[3] (conv2d): ...") and
// both shapes where they do not fit.
Graph build_graph(const ModelConfig& m);

std::string shape_text(const std::vector<std::int64_t>& shape);  // "(8, 4, 4)"

// PyTorch's default initialisation: weights and biases uniform in +-1/sqrt(fan_in) from one seeded stream, in the
// graph's parameter order (float32 values, like PyTorch's); norms' weights 1, biases 0.
InitialWeights default_initial_weights(const Graph& g, std::uint64_t seed);

}  // namespace mpscope::sim
