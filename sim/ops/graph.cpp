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
      params.push_back({module + ".bias", {in.back()}, true, ParamInfo::Init::zeros, 0});
      return in;
    case T::batch_norm2d:
      image("batch_norm2d");
      params.push_back({module + ".weight", {in[0]}, false, ParamInfo::Init::ones, 0});
      params.push_back({module + ".bias", {in[0]}, true, ParamInfo::Init::zeros, 0});
      return in;
    case T::add: return in;  // (the added activation's shape is checked by build_graph)
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

}  // namespace

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
  } else {
    g.input = m.input;
    for (std::size_t i = 0; i < m.sequence.size(); ++i) seq.emplace_back(m.sequence[i], std::to_string(i));
  }
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
      throw std::invalid_argument((mlp ? "layers[" + std::to_string(g.groups.size()) + "]" : "layers[" + std::to_string(i) + "]") +
                                  " (" + std::string(to_string(n.spec.type)) + "): " + e.what());
    }
    if (n.spec.type == LayerSpec::Type::add) {
      const std::string at = "layers[" + std::to_string(i) + "] (add): ";
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
      if (d <= 0) throw std::invalid_argument("layers[" + std::to_string(i) + "] (" + std::string(to_string(n.spec.type)) +
                                              "): its output " + shape_text(n.out_shape) + " is empty");
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
      // (batch norm's parameters and their gradients stay float32 under autocast: the master format)
      const Role grads = n.spec.type == LayerSpec::Type::batch_norm2d ? Role::master : Role::gradients;
      grp.weight_grad = add("weight_grad", grads, n.params[0].size(), 0);
      if (bias) grp.bias_grad = add("bias_grad", grads, bias->size(), 0);
      grp.activation = add("activation", Role::activations, 0, n.out_size());
      grp.activation_grad = add("activation_grad", Role::gradients, 0, n.out_size());
      g.groups.push_back(grp);
    }
    n.group = static_cast<int>(g.groups.size()) - 1;
    if (n.group > 0) g.tensors[g.groups.back().activation].per_sample = n.out_size();
    params_before = params_before || !n.params.empty();
    shape = n.out_shape;
    shapes.push_back(shape);
    g.nodes.push_back(std::move(n));
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
      for (double& x : v.values)
        x = p.init == ParamInfo::Init::uniform ? uniform(p.bound) : p.init == ParamInfo::Init::ones ? 1.0 : 0.0;
      w.params.push_back(std::move(v));
    }
  return w;
}

InitialWeights default_initial_weights(const ModelConfig& m, std::uint64_t seed) {
  return default_initial_weights(build_graph(m), seed);
}

}  // namespace mpscope::sim
