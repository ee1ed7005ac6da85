#include "sim/ops/graph.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "sim/random.hpp"

namespace mpscope::sim {

namespace {

std::int64_t product(const std::vector<std::int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

ParamInfo uniform_param(std::string name, std::vector<std::int64_t> shape, bool is_bias, std::int64_t fan_in) {
  return {std::move(name), std::move(shape), is_bias, ParamInfo::Init::uniform, 1.0 / std::sqrt(static_cast<double>(fan_in))};
}

// init_std > 0 (nanoGPT): weights N(0, std²), biases zero.
void apply_init_std(const LayerSpec& spec, std::vector<ParamInfo>& params) {
  if (spec.init_std <= 0 || spec.type == LayerSpec::Type::layer_norm) return;
  for (ParamInfo& p : params) {
    p.init = p.is_bias ? ParamInfo::Init::zeros : ParamInfo::Init::normal;
    p.bound = p.is_bias ? 0 : spec.init_std;
  }
}

// The output shape of `spec` on `in` and its parameters; throws std::invalid_argument (without the layer prefix).
std::vector<std::int64_t> infer(const LayerSpec& spec, const std::vector<std::int64_t>& in, const std::string& module,
                                std::vector<ParamInfo>& params) {
  using T = LayerSpec::Type;
  const auto image = [&](const char* what) {
    if (in.size() != 3) throw std::invalid_argument(std::string(what) + " needs an input of shape (C, H, W), gets " + shape_text(in));
  };
  switch (spec.type) {
    case T::linear: {
      if (spec.out <= 0) throw std::invalid_argument("out_features must be positive");
      const std::int64_t features = in.back();
      params.push_back(uniform_param(module + ".weight", {spec.out, features}, false, features));
      if (spec.bias) params.push_back(uniform_param(module + ".bias", {spec.out}, true, features));
      std::vector<std::int64_t> out = in;
      out.back() = spec.out;
      return out;
    }
    case T::conv2d: {
      image("conv2d");
      if (spec.out <= 0 || spec.kernel <= 0 || spec.stride <= 0 || spec.padding < 0)
        throw std::invalid_argument("out_channels, kernel_size and stride must be positive, padding not negative");
      const std::int64_t h = (in[1] + 2 * spec.padding - spec.kernel) / spec.stride + 1;
      const std::int64_t w = (in[2] + 2 * spec.padding - spec.kernel) / spec.stride + 1;
      if (in[1] + 2 * spec.padding < spec.kernel || in[2] + 2 * spec.padding < spec.kernel)
        throw std::invalid_argument("kernel_size " + std::to_string(spec.kernel) + " is larger than the padded input " +
                                    shape_text(in));
      const std::int64_t fan_in = in[0] * spec.kernel * spec.kernel;
      params.push_back(uniform_param(module + ".weight", {spec.out, in[0], spec.kernel, spec.kernel}, false, fan_in));
      if (spec.bias) params.push_back(uniform_param(module + ".bias", {spec.out}, true, fan_in));
      return {spec.out, h, w};
    }
    case T::maxpool2d:
    case T::avgpool2d: {
      image(spec.type == T::maxpool2d ? "maxpool2d" : "avgpool2d");
      if (spec.kernel <= 0 || spec.stride <= 0) throw std::invalid_argument("kernel_size and stride must be positive");
      if (in[1] < spec.kernel || in[2] < spec.kernel)
        throw std::invalid_argument("kernel_size " + std::to_string(spec.kernel) + " is larger than the input " + shape_text(in));
      return {in[0], (in[1] - spec.kernel) / spec.stride + 1, (in[2] - spec.kernel) / spec.stride + 1};
    }
    case T::flatten: return {product(in)};
    case T::activation: return in;
    case T::layer_norm:
      params.push_back({module + ".weight", {in.back()}, false, ParamInfo::Init::ones, 0});
      if (spec.bias) params.push_back({module + ".bias", {in.back()}, true, ParamInfo::Init::zeros, 0});
      return in;
    case T::batch_norm2d:
      image("batch_norm2d");
      params.push_back({module + ".weight", {in[0]}, false, ParamInfo::Init::ones, 0});
      params.push_back({module + ".bias", {in[0]}, true, ParamInfo::Init::zeros, 0});
      return in;
    case T::add: return in;  // (the added activation's shape is checked by build_graph)
    case T::embedding:
      if (in.size() != 1) throw std::invalid_argument("embedding needs token ids (T,) as its input, gets " + shape_text(in));
      if (spec.count <= 0 || spec.out <= 0) throw std::invalid_argument("num_embeddings and embedding_dim must be positive");
      params.push_back({module + ".weight", {spec.count, spec.out}, false, ParamInfo::Init::normal, 1.0});
      return {in[0], spec.out};
    case T::position_embedding:
      if (in.size() != 2) throw std::invalid_argument("position_embedding needs an input of shape (T, D), gets " + shape_text(in));
      if (spec.count < in[0])
        throw std::invalid_argument("the input has " + std::to_string(in[0]) + " positions, the embedding only " +
                                    std::to_string(spec.count) + " (block_size)");
      params.push_back({module + ".weight", {spec.count, in[1]}, false, ParamInfo::Init::normal, 1.0});
      return in;
    case T::causal_attention:
      if (in.size() != 2 || in[1] % 3 != 0)
        throw std::invalid_argument("causal_attention needs q|k|v as one (T, 3·D) input, gets " + shape_text(in));
      if (spec.heads <= 0 || (in[1] / 3) % spec.heads != 0)
        throw std::invalid_argument("heads must be positive and divide the embedding width " + std::to_string(in[1] / 3));
      return {in[0], in[1] / 3};
  }
  throw std::logic_error("unknown layer type");
}

// The mlp as the sequence it is: Linear, activation, LayerNorm per hidden layer; its groups "layer1", "layer2", ...
std::vector<std::pair<LayerSpec, std::string>> mlp_sequence(const ModelConfig& m) {
  std::vector<std::pair<LayerSpec, std::string>> seq;
  for (int k = 0; k < m.layers(); ++k) {
    const std::string name = "layer" + std::to_string(k + 1);
    LayerSpec linear;
    linear.type = LayerSpec::Type::linear;
    linear.out = m.widths[static_cast<std::size_t>(k) + 1];
    seq.emplace_back(linear, name);
    if (k + 1 == m.layers()) break;
    LayerSpec act;
    act.type = LayerSpec::Type::activation;
    act.activation = m.activation;
    seq.emplace_back(act, name + ".act");
    if (m.layer_norm) {
      LayerSpec norm;
      norm.type = LayerSpec::Type::layer_norm;
      norm.eps = m.layer_norm_eps;
      seq.emplace_back(norm, name + ".norm");
    }
  }
  return seq;
}

// Which activations autocast keeps in float32 (Node::promoted): decided once all nodes are known, since a
// LayerNorm read only by a GEMM folds the GEMM's cast into its own output.
void mark_promoted(Graph& g) {
  using T = LayerSpec::Type;
  std::vector<int> readers(g.nodes.size() + 1, 0);  // [a] adds reading activation a besides its next node
  for (const Node& n : g.nodes)
    if (n.residual >= 0) ++readers[static_cast<std::size_t>(n.residual)];
  bool previous = false;  // the input: cast to the activation format (token ids: not floating)
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    n.promoted_input = previous;
    switch (n.spec.type) {
      case T::linear:
      case T::conv2d:
      case T::causal_attention: n.promoted = false; break;
      case T::embedding:
      case T::position_embedding: n.promoted = true; break;
      case T::add: n.promoted = previous || (n.residual > 0 && g.nodes[static_cast<std::size_t>(n.residual) - 1].promoted); break;
      case T::layer_norm: {
        const bool gemm_reads = i + 1 < g.nodes.size() && readers[i + 1] == 0 &&
                                (g.nodes[i + 1].spec.type == T::linear || g.nodes[i + 1].spec.type == T::conv2d);
        n.promoted = !gemm_reads;
        break;
      }
      default: n.promoted = previous;  // activations, pools, flatten keep their input's type
    }
    previous = n.promoted;
  }
}

// N(0, 1) from two uniforms (Box-Muller), in double.
double standard_normal(RandomStream& random) {
  const double u1 = (static_cast<double>(random.next() >> 11) + 1) * 0x1p-53;  // (0, 1]
  const double u2 = static_cast<double>(random.next() >> 11) * 0x1p-53;
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * 3.14159265358979323846 * u2);
}

}  // namespace

std::vector<std::pair<LayerSpec, std::string>> gpt_sequence(const GptConfig& c) {
  using T = LayerSpec::Type;
  std::vector<std::pair<LayerSpec, std::string>> seq;
  const double std_init = 0.02, proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer));
  // Appends a node; returns its spec to set more fields (valid until the next append).
  const auto layer = [&](T type, std::string name, std::int64_t out = 0, double init = 0) -> LayerSpec& {
    LayerSpec s;
    s.type = type;
    s.out = out;
    s.bias = c.bias;
    s.init_std = init;
    return seq.emplace_back(s, std::move(name)).first;
  };
  const auto last = [&] { return static_cast<std::int64_t>(seq.size()) - 1; };
  LayerSpec& wte = layer(T::embedding, "transformer.wte", c.n_embd, std_init);
  wte.count = c.vocab_size;
  layer(T::position_embedding, "transformer.wpe", 0, std_init).count = c.block_size;
  std::int64_t stream = last();  // the node whose output is the residual stream
  for (std::int64_t b = 0; b < c.n_layer; ++b) {
    const std::string h = "transformer.h." + std::to_string(b) + ".";
    layer(T::layer_norm, h + "ln_1");
    layer(T::linear, h + "attn.c_attn", 3 * c.n_embd, std_init);
    layer(T::causal_attention, h + "attn").heads = c.n_head;
    layer(T::linear, h + "attn.c_proj", c.n_embd, proj_std);
    layer(T::add, h + "attn.residual").from = stream;
    stream = last();
    layer(T::layer_norm, h + "ln_2");
    layer(T::linear, h + "mlp.c_fc", 4 * c.n_embd, std_init);
    layer(T::activation, h + "mlp.gelu").activation = Activation::gelu_tanh;
    layer(T::linear, h + "mlp.c_proj", c.n_embd, proj_std);
    layer(T::add, h + "mlp.residual").from = stream;
    stream = last();
  }
  layer(T::layer_norm, "transformer.ln_f");
  layer(T::linear, "lm_head", c.vocab_size, std_init).bias = false;
  return seq;
}

std::int64_t ParamInfo::size() const { return product(shape); }
std::int64_t Node::in_size() const { return product(in_shape); }
std::int64_t Node::out_size() const { return product(out_shape); }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::int64_t Graph::evaluation_chunk(std::int64_t rows) const {
  if (mlp) return rows;
  std::int64_t widest = 1;
  for (const Node& n : nodes) {
    widest = std::max({widest, n.in_size(), n.out_size()});
    if (n.spec.type == LayerSpec::Type::conv2d)
      widest = std::max(widest, n.out_shape[1] * n.out_shape[2] * n.in_shape[0] * n.spec.kernel * n.spec.kernel);
  }
  return std::max<std::int64_t>(1, std::min(rows, (std::int64_t{1} << 26) / widest));
}

std::int64_t Graph::outputs() const { return nodes.empty() ? product(input) : nodes.back().out_size(); }

std::int64_t Graph::parameters() const {
  std::int64_t n = 0;
  for (const Node& node : nodes)
    for (const ParamInfo& p : node.params) n += p.size();
  return n;
}

std::size_t Graph::output_tensor(int node) const { return groups[static_cast<std::size_t>(nodes[static_cast<std::size_t>(node)].group)].activation; }

std::size_t Graph::input_grad_tensor(int node) const {
  if (node == 0) return no_tensor;
  return groups[static_cast<std::size_t>(nodes[static_cast<std::size_t>(node) - 1].group)].activation_grad;
}

Graph build_graph(const ModelConfig& m) {
  Graph g;
  std::vector<std::pair<LayerSpec, std::string>> seq;
  const bool mlp = m.type == ModelConfig::Type::mlp;
  g.mlp = mlp;
  if (mlp) {
    if (m.widths.size() < 2) throw std::invalid_argument("an mlp needs at least an input and an output width");
    g.input = {m.widths.front()};
    seq = mlp_sequence(m);
  } else if (m.type == ModelConfig::Type::gpt) {
    const GptConfig& c = m.gpt;
    for (const auto& [value, key] : {std::pair{c.vocab_size, "vocab_size"}, {c.block_size, "block_size"}, {c.n_embd, "n_embd"},
                                     {c.n_head, "n_head"}, {c.n_layer, "n_layer"}})
      if (value <= 0) throw std::invalid_argument(std::string(key) + " must be positive, found " + std::to_string(value));
    if (c.n_embd % c.n_head != 0)
      throw std::invalid_argument("n_head " + std::to_string(c.n_head) + " does not divide n_embd " + std::to_string(c.n_embd));
    g.input = {c.block_size};
    seq = gpt_sequence(c);
  } else {
    g.input = m.input;
    for (std::size_t i = 0; i < m.sequence.size(); ++i) seq.emplace_back(m.sequence[i], std::to_string(i));
  }
  const bool gpt = m.type == ModelConfig::Type::gpt;
  // How errors name a node: the mlp's layers by their Linear, a gpt's by module, a sequence's by index.
  const auto where = [&](std::size_t i, const LayerSpec& spec) {
    const std::string name = mlp ? "layers[" + std::to_string(g.groups.size()) + "]" : gpt ? seq[i].second : "layers[" + std::to_string(i) + "]";
    return name + " (" + std::string(to_string(spec.type)) + "): ";
  };
  if (g.input.empty()) throw std::invalid_argument("the model's input shape is empty");
  for (std::int64_t d : g.input)
    if (d <= 0) throw std::invalid_argument("the model's input shape " + shape_text(g.input) + " has a non-positive size");
  if (seq.empty()) throw std::invalid_argument("the model has no layers");

  g.groups.push_back({"input", -1});
  g.tensors.push_back({"input", "input", 0, "", 0, product(g.input)});
  g.tensor_roles.push_back(Role::activations);
  g.groups[0].activation = 0;
  std::vector<std::int64_t> shape = g.input;
  std::vector<std::vector<std::int64_t>> shapes{g.input};  // [a] activation a's: the input, then each node's output
  std::vector<bool> added(seq.size() + 1, false);          // an add already reads activation a
  bool params_before = false;
  for (std::size_t i = 0; i < seq.size(); ++i) {
    Node n;
    n.spec = seq[i].first;
    n.module = seq[i].second;
    n.in_shape = shape;
    try {
      n.out_shape = infer(n.spec, shape, n.module, n.params);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where(i, n.spec) + e.what());
    }
    if (n.spec.type == LayerSpec::Type::embedding) {
      if (i != 0) throw std::invalid_argument(where(i, n.spec) + "an embedding reads token ids: it must be the first layer");
      g.tokens = true;
      g.vocab = n.spec.count;
    }
    if (n.spec.type == LayerSpec::Type::add) {
      const std::string at = where(i, n.spec);
      if (n.spec.from < -1 || n.spec.from >= static_cast<std::int64_t>(i))
        throw std::invalid_argument(at + "from " + std::to_string(n.spec.from) +
                                    " is not an earlier layer (expected -1 for the model's input, or 0 .. " +
                                    std::to_string(static_cast<std::int64_t>(i) - 1) + ")");
      n.residual = static_cast<int>(n.spec.from + 1);
      const std::string source = n.spec.from < 0 ? "the model's input" : "the output of layers[" + std::to_string(n.spec.from) + "]";
      if (shapes[static_cast<std::size_t>(n.residual)] != shape)
        throw std::invalid_argument(at + "adds " + source + " " + shape_text(shapes[static_cast<std::size_t>(n.residual)]) +
                                    " to its input " + shape_text(shape) + ": the shapes must be equal");
      if (added[static_cast<std::size_t>(n.residual)])
        throw std::invalid_argument(at + source + " is added by another layer already (one residual edge per activation)");
      added[static_cast<std::size_t>(n.residual)] = true;
    }
    for (std::int64_t d : n.out_shape)
      if (d <= 0) throw std::invalid_argument(where(i, n.spec) + "its output " + shape_text(n.out_shape) + " is empty");
    apply_init_std(n.spec, n.params);
    n.needs_input_grad = params_before;
    if (n.spec.type == LayerSpec::Type::linear || n.spec.type == LayerSpec::Type::conv2d) n.gemm = g.gemms++;
    const bool joins = mlp && n.spec.type == LayerSpec::Type::layer_norm;  // an mlp's norm joins its Linear's group
    if (!n.params.empty() && !joins) {
      Group grp{n.module, static_cast<int>(i)};
      const int layer = static_cast<int>(g.groups.size());
      const auto add = [&](const std::string& kind, Role role, std::int64_t elements, std::int64_t per_sample) {
        g.tensors.push_back({n.module + "." + kind, kind, layer, "", elements, per_sample});
        g.tensor_roles.push_back(role);
        return g.tensors.size() - 1;
      };
      const ParamInfo* bias = n.params.size() > 1 && n.params[1].is_bias ? &n.params[1] : nullptr;
      grp.weight = add("weight", Role::master, n.params[0].size(), 0);
      if (bias) grp.bias = add("bias", Role::master, bias->size(), 0);
      // (norms' and embeddings' parameters are used in float32 under autocast: their gradients are promoted)
      const bool gemm = n.spec.type == LayerSpec::Type::linear || n.spec.type == LayerSpec::Type::conv2d;
      const Role grads = gemm ? Role::gradients : Role::promoted;
      grp.weight_grad = add("weight_grad", grads, n.params[0].size(), 0);
      if (bias) grp.bias_grad = add("bias_grad", grads, bias->size(), 0);
      grp.activation = add("activation", Role::activations, 0, n.out_size());
      grp.activation_grad = add("activation_grad", Role::gradients, 0, n.out_size());
      g.groups.push_back(grp);
    }
    n.group = static_cast<int>(g.groups.size()) - 1;
    if (n.group > 0) g.tensors[g.groups.back().activation].per_sample = n.out_size();
    if (n.spec.type == LayerSpec::Type::causal_attention) {
      // Each head's attention scores q·kᵀ/√d at the causal positions, T·(T+1)/2 per sample, then the attention
      // probabilities of all heads as att·v reads them.
      const std::int64_t t = n.in_shape[0], causal = t * (t + 1) / 2;
      n.scores_tensor = g.tensors.size();
      for (std::int64_t h = 0; h < n.spec.heads; ++h) {
        g.tensors.push_back({n.module + ".head" + std::to_string(h) + ".scores", "attention_scores", n.group, "", 0, causal});
        g.tensor_roles.push_back(Role::activations);
      }
      g.tensors.push_back({n.module + ".probs", "attention_probs", n.group, "", 0, n.spec.heads * causal});
      g.tensor_roles.push_back(Role::activations);
    }
    params_before = params_before || !n.params.empty();
    shape = n.out_shape;
    shapes.push_back(shape);
    g.nodes.push_back(std::move(n));
  }
  mark_promoted(g);
  for (std::size_t k = 1; k < g.groups.size(); ++k) {  // a group's activation is its last node's, its gradient its first's
    Group& grp = g.groups[k];
    std::size_t last = static_cast<std::size_t>(grp.first_node);
    while (last + 1 < g.nodes.size() && g.nodes[last + 1].group == static_cast<int>(k)) ++last;
    if (g.nodes[last].promoted) g.tensor_roles[grp.activation] = Role::promoted;
    if (g.nodes[static_cast<std::size_t>(grp.first_node)].promoted) g.tensor_roles[grp.activation_grad] = Role::promoted;
  }
  return g;
}

InitialWeights default_initial_weights(const Graph& g, std::uint64_t seed) {
  RandomStream random(seed, 0x696e6974 /* "init" */);
  const auto uniform = [&](double bound) {
    const double u = static_cast<double>(random.next() >> 11) * 0x1p-53;  // [0, 1)
    return static_cast<double>(static_cast<float>((2 * u - 1) * bound));   // float32 values, like PyTorch's
  };
  InitialWeights w;
  for (const Node& n : g.nodes)
    for (const ParamInfo& p : n.params) {
      ParamValues v{p.name, p.shape, std::vector<double>(static_cast<std::size_t>(p.size()))};
      for (double& x : v.values) {
        switch (p.init) {
          case ParamInfo::Init::uniform: x = uniform(p.bound); break;
          case ParamInfo::Init::normal: x = static_cast<double>(static_cast<float>(p.bound * standard_normal(random))); break;
          case ParamInfo::Init::ones: x = 1.0; break;
          case ParamInfo::Init::zeros: x = 0.0; break;
        }
      }
      w.params.push_back(std::move(v));
    }
  return w;
}

InitialWeights default_initial_weights(const ModelConfig& m, std::uint64_t seed) {
  return default_initial_weights(build_graph(m), seed);
}

}  // namespace mpscope::sim
