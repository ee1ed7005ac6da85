// The model mpscope trains — an MLP of any widths, or a sequence of layers (convolutions, pooling, norms, ...) in
// nn.Sequential's terms — with its loss, plus the initial weights every lane starts from and the batches every lane
// sees. sim/ops/graph.hpp turns a ModelConfig into the graph of ops the lanes run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sim/tensor.hpp"

namespace mpscope::sim {

enum class Activation { relu, gelu, gelu_tanh, tanh, sigmoid, silu };
inline constexpr Activation all_activations[] = {Activation::relu,    Activation::gelu,    Activation::gelu_tanh,
                                                 Activation::tanh,    Activation::sigmoid, Activation::silu};
enum class LossType { cross_entropy, mse };
// Which precision cross-entropy's log-probabilities have (docs/recipes.md). `autocast`: PyTorch's F.cross_entropy on
// the logits as they are: under autocast it is not promoted, so log_softmax rounds to the logits' format (fp16,
// bf16) and the gradient flows back through those rounded values. `fp32`: F.cross_entropy(logits.float(), y).
enum class LossLogits { autocast, fp32 };
std::string_view to_string(Activation a);
std::string_view to_string(LossType l);
std::string_view to_string(LossLogits l);

// One layer of a sequential model, as its nn.Module: Linear(out_features), Conv2d(out_channels, kernel_size,
// stride, padding), MaxPool2d / AvgPool2d(kernel_size, stride), Flatten, an activation, LayerNorm (over the last
// dimension), BatchNorm2d (training-mode batch statistics), a residual add, Embedding(count, out) of token ids,
// a learned position embedding (count positions) added to a (T, D) input, and causal multi-head self-attention
// (heads) of a (T, 3D) q|k|v input, written out as nanoGPT does without flash attention.
struct LayerSpec {
  enum class Type { linear, conv2d, maxpool2d, avgpool2d, flatten, activation, layer_norm, batch_norm2d, add,
                    embedding, position_embedding, causal_attention };
  static constexpr Type all_types[] = {Type::linear,     Type::conv2d,     Type::maxpool2d,    Type::avgpool2d, Type::flatten,
                                       Type::activation, Type::layer_norm, Type::batch_norm2d, Type::add,
                                       Type::embedding,  Type::position_embedding, Type::causal_attention};
  Type type = Type::linear;
  std::int64_t out = 0;  // linear: out_features; conv2d: out_channels
  std::int64_t kernel = 0, stride = 0, padding = 0;  // conv2d, pools (stride 0: the kernel size for pools, 1 for conv)
  bool bias = true;                                   // linear, conv2d; layer_norm: elementwise_affine's bias
  Activation activation = Activation::relu;
  double eps = 1e-5;        // norms
  double momentum = 0.1;    // batch_norm2d's running statistics
  std::int64_t from = -1;   // add (a residual edge): the earlier layer whose output is added to the input (-1: the
                            // model's input)
  std::int64_t count = 0;   // embedding: num_embeddings (the vocabulary); position_embedding: the positions it has
  std::int64_t heads = 0;   // causal_attention
  double init_std = 0;      // > 0: weights drawn from N(0, init_std²) and biases zero (nanoGPT's init) instead of
                            // PyTorch's default (uniform ±1/sqrt(fan_in); embeddings N(0, 1))
};
std::string_view to_string(LayerSpec::Type t);  // "linear", "conv2d", ... as in experiment files
// The names experiment files give activations and layers (an activation layer is named by its activation).
std::vector<std::string> activation_names();
std::vector<std::string> layer_type_names();

// A nanoGPT model (docs/models.md): token and position embeddings, n_layer blocks of
// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) with causal multi-head self-attention and a GELU (tanh) MLP of width
// 4·n_embd, a final LayerNorm and an untied lm_head without bias; nanoGPT's parameter names and init.
struct GptConfig {
  std::int64_t vocab_size = 0, block_size = 0, n_embd = 0, n_head = 0, n_layer = 0;
  bool bias = true;  // biases of the Linears and LayerNorms
};

struct ModelConfig {
  enum class Type { mlp, sequential, gpt };
  Type type = Type::mlp;
  // mlp: Linear layers widths[0] -> widths[1] -> ... -> widths.back(). Each hidden layer is Linear, activation,
  // then (optionally) LayerNorm; the last layer is Linear only (logits, or the regression output).
  std::vector<std::int64_t> widths;
  Activation activation = Activation::relu;
  bool layer_norm = false;
  double layer_norm_eps = 1e-5;
  // sequential: the shape of one sample ({features}, or {C, H, W} for images) and the layers, in order.
  std::vector<std::int64_t> input;
  std::vector<LayerSpec> sequence;
  GptConfig gpt;  // gpt

  LossType loss = LossType::cross_entropy;
  LossLogits loss_logits = LossLogits::autocast;  // cross-entropy only

  int layers() const { return static_cast<int>(widths.size()) - 1; }  // mlp: its Linear layers
};

// A trainable parameter's initial values, by its PyTorch name ("0.weight" of a Sequential; "layer1.weight" of an
// mlp), in PyTorch's layout (Linear (out, in), Conv2d (out, in, kh, kw)), as doubles; every lane converts them to
// its own storage. In the order of the graph's parameters (sim/ops/graph.hpp).
struct ParamValues {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<double> values;
};
struct InitialWeights {
  std::vector<ParamValues> params;
  const ParamValues& at(std::string_view name) const;  // throws std::out_of_range naming it
  ParamValues& at(std::string_view name);
};

// PyTorch's default initialisation of the model's parameters from a seeded stream (sim/ops/graph.hpp).
InitialWeights default_initial_weights(const ModelConfig& m, std::uint64_t seed);

// One training batch: the rows of the dataset for this step.
struct Batch {
  std::vector<std::int64_t> rows;    // (batch) the dataset rows it holds (GPU lanes gather them on the device)
  Matrix<float> x;                   // (batch, features) each row one sample, flattened (images: C, H, W)
  std::vector<std::int64_t> labels;  // (batch, positions) class indices (cross-entropy, or one-hot targets for MSE);
                                     // positions 1, or one per token of a sequence model's sample
  Matrix<float> targets;             // (batch, outputs) regression targets (MSE); empty for classification
};
// Rows [begin, end) of a batch (evaluation in chunks).
Batch slice(const Batch& b, std::int64_t begin, std::int64_t end);

}  // namespace mpscope::sim
