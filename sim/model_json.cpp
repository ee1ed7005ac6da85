#include "sim/model_json.hpp"

#include "sim/ops/graph.hpp"

namespace mpscope::sim {

namespace {

using json = nlohmann::json;
using Type = LayerSpec::Type;

Activation activation_of(const std::string& name) {
  for (Activation a : all_activations)
    if (to_string(a) == name) return a;
  throw std::logic_error("unknown activation " + name);
}

std::int64_t positive(JsonObject& o, const std::string& key, std::optional<std::int64_t> fallback = {}) {
  const std::int64_t v = o.integer(key, fallback);
  if (v <= 0) o.fail(key, "must be a positive integer, found " + std::to_string(v));
  return v;
}

LayerSpec parse_layer(JsonObject o) {
  const std::string name = o.choice("type", layer_type_names());
  LayerSpec s;
  s.type = Type::activation;  // unless the name is a layer type's
  for (Type t : LayerSpec::all_types)
    if (to_string(t) == name) s.type = t;
  switch (s.type) {
    case Type::linear:
      s.out = positive(o, "out_features");
      s.bias = o.boolean("bias", true);
      break;
    case Type::conv2d:
      s.out = positive(o, "out_channels");
      s.kernel = positive(o, "kernel_size");
      s.stride = positive(o, "stride", 1);
      s.padding = o.integer("padding", 0);
      if (s.padding < 0) o.fail("padding", "must not be negative");
      s.bias = o.boolean("bias", true);
      break;
    case Type::maxpool2d:
    case Type::avgpool2d:
      s.kernel = positive(o, "kernel_size");
      s.stride = positive(o, "stride", s.kernel);
      break;
    case Type::flatten: break;
    case Type::batch_norm2d:
      s.momentum = o.number("momentum", 0.1);
      if (!(s.momentum >= 0 && s.momentum <= 1)) o.fail("momentum", "must be in [0, 1]");
      [[fallthrough]];
    case Type::layer_norm:
      s.eps = o.number("eps", 1e-5);
      if (!(s.eps > 0)) o.fail("eps", "must be positive");
      break;
    case Type::activation: s.activation = activation_of(name); break;
    case Type::add:
      s.from = o.integer("from");
      if (s.from < -1) o.fail("from", "expected the index of an earlier layer whose output is added (-1: the model's input)");
      break;
    case Type::embedding:
      s.count = positive(o, "num_embeddings");
      s.out = positive(o, "embedding_dim");
      break;
    case Type::position_embedding: s.count = positive(o, "positions"); break;
    case Type::causal_attention: s.heads = positive(o, "heads"); break;
  }
  o.finish();
  return s;
}

// Every key of the layer, defaults included (the names as parse_layer reads them).
json layer_json(const LayerSpec& s) {
  json j{{"type", std::string(s.type == Type::activation ? to_string(s.activation) : to_string(s.type))}};
  switch (s.type) {
    case Type::linear: j.update({{"out_features", s.out}, {"bias", s.bias}}); break;
    case Type::conv2d:
      j.update({{"out_channels", s.out}, {"kernel_size", s.kernel}, {"stride", s.stride}, {"padding", s.padding}, {"bias", s.bias}});
      break;
    case Type::maxpool2d:
    case Type::avgpool2d: j.update({{"kernel_size", s.kernel}, {"stride", s.stride}}); break;
    case Type::layer_norm: j["eps"] = s.eps; break;
    case Type::batch_norm2d: j.update({{"eps", s.eps}, {"momentum", s.momentum}}); break;
    case Type::add: j["from"] = s.from; break;
    case Type::embedding: j.update({{"num_embeddings", s.count}, {"embedding_dim", s.out}}); break;
    case Type::position_embedding: j["positions"] = s.count; break;
    case Type::causal_attention: j["heads"] = s.heads; break;
    case Type::flatten:
    case Type::activation: break;
  }
  return j;
}

}  // namespace

ModelConfig parse_model_json(JsonObject& o) {
  ModelConfig m;
  const std::string type = o.choice("type", {"mlp", "sequential", "gpt"}, "mlp");
  if (type == "gpt") {
    m.type = ModelConfig::Type::gpt;
    GptConfig& c = m.gpt;
    c.vocab_size = positive(o, "vocab_size");
    c.block_size = positive(o, "block_size");
    c.n_embd = positive(o, "n_embd");
    c.n_head = positive(o, "n_head");
    c.n_layer = positive(o, "n_layer");
    c.bias = o.boolean("bias", true);
    if (c.n_embd % c.n_head != 0)
      o.fail("n_head", std::to_string(c.n_head) + " does not divide n_embd " + std::to_string(c.n_embd));
    return m;
  }
  const json& layers = o.array("layers");
  if (type == "mlp") {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i].is_object())
        o.fail("layers[" + std::to_string(i) + "]", "an mlp's layers are widths; layers given as objects need \"type\": \"sequential\" (and \"input\")");
    if (layers.size() < 2) o.fail("layers", "needs at least an input and an output width, e.g. [2, 64, 3]");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (!layers[i].is_number_integer() || layers[i].get<std::int64_t>() <= 0)
        o.fail("layers[" + std::to_string(i) + "]", "expected a positive integer width, found " + layers[i].dump());
      m.widths.push_back(layers[i].get<std::int64_t>());
    }
    m.activation = activation_of(o.choice("activation", activation_names(), "relu"));
    m.layer_norm = o.boolean("layer_norm", false);
    m.layer_norm_eps = o.number("layer_norm_eps", 1e-5);
  } else {
    m.type = ModelConfig::Type::sequential;
    const json& input = o.array("input");
    if (input.empty() || input.size() > 3) o.fail("input", "expected the shape of one sample: [features] or [C, H, W]");
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (!input[i].is_number_integer() || input[i].get<std::int64_t>() <= 0)
        o.fail("input[" + std::to_string(i) + "]", "expected a positive integer, found " + input[i].dump());
      m.input.push_back(input[i].get<std::int64_t>());
    }
    if (layers.empty()) o.fail("layers", "needs at least one layer, e.g. [{\"type\": \"linear\", \"out_features\": 10}]");
    for (std::size_t i = 0; i < layers.size(); ++i)
      m.sequence.push_back(parse_layer(JsonObject(layers[i], o.path_of("layers[" + std::to_string(i) + "]"))));
  }
  try {
    const Graph g = build_graph(m);
    if (g.parameters() == 0) o.fail("layers", "the model has no layer with parameters to train");
    // (a token model may predict every position: (T, vocabulary))
    if (g.nodes.back().out_shape.size() != 1 && !(g.tokens && g.nodes.back().out_shape.size() == 2))
      o.fail("layers", "the last layer's output per sample is " + shape_text(g.nodes.back().out_shape) +
                           "; the loss needs (outputs,) (add a flatten and a linear layer)");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    throw ConfigError(what.starts_with("layers[") ? o.path_of(what) : o.path() + ": " + what);
  }
  return m;
}

json model_json(const ModelConfig& m) {
  if (m.type == ModelConfig::Type::gpt)
    return {{"type", "gpt"},          {"vocab_size", m.gpt.vocab_size}, {"block_size", m.gpt.block_size}, {"n_embd", m.gpt.n_embd},
            {"n_head", m.gpt.n_head}, {"n_layer", m.gpt.n_layer},       {"bias", m.gpt.bias}};
  if (m.type == ModelConfig::Type::mlp)
    return {{"type", "mlp"}, {"layers", m.widths}, {"activation", std::string(to_string(m.activation))},
            {"layer_norm", m.layer_norm}, {"layer_norm_eps", m.layer_norm_eps}};
  json layers = json::array();
  for (const LayerSpec& s : m.sequence) layers.push_back(layer_json(s));
  return {{"type", "sequential"}, {"input", m.input}, {"layers", layers}};
}

void check_model_fits_data(const ModelConfig& m, const Dataset& data) {
  const Graph g = build_graph(m);
  const std::vector<std::int64_t> sample = data.sample_shape.empty() ? std::vector<std::int64_t>{data.features()} : data.sample_shape;
  if (g.tokens != (data.vocab > 0))
    throw ConfigError(g.tokens ? "data: the model reads token ids (an integer (n, T) array); this data holds real values"
                               : "data: the inputs are token ids (integers); this model takes real values (use a gpt model, or a "
                                 "sequential model starting with an embedding)");
  const std::vector<std::int64_t>& out = g.nodes.back().out_shape;
  if (g.tokens) {
    const std::string model = m.type == ModelConfig::Type::gpt ? "model.vocab_size" : "model.layers[0]";
    if (data.vocab > g.vocab)
      throw ConfigError(model + ": the data has token ids up to " + std::to_string(data.vocab - 1) + ", the embedding only " +
                        std::to_string(g.vocab) + " tokens");
    if (g.input != sample)
      throw ConfigError((m.type == ModelConfig::Type::gpt ? "model.block_size: " : "model.input: ") + std::string("the model takes ") +
                        std::to_string(g.input[0]) + " tokens per sample, the data's sequences have " + std::to_string(sample[0]));
    const std::int64_t positions = out.size() == 2 ? out[0] : 1;
    if (data.classification() && data.label_positions != positions)
      throw ConfigError("data: the model predicts " + std::to_string(positions) + " position(s) per sample, the data has " +
                        std::to_string(data.label_positions) + " target(s) per sample");
    if (data.classification() && data.classes > out.back())
      throw ConfigError("data: targets go up to class " + std::to_string(data.classes - 1) + ", the model has " +
                        std::to_string(out.back()) + " outputs per position");
    if (m.loss == LossType::cross_entropy && !data.classification())
      throw ConfigError("loss: cross_entropy needs class labels; this data has regression targets (use \"mse\")");
    return;
  }
  if (m.type == ModelConfig::Type::mlp) {
    if (g.input.front() != data.features())
      throw ConfigError("model.layers[0]: the data has " + std::to_string(data.features()) +
                        " input features, the model takes " + std::to_string(g.input.front()));
  } else if (g.input != sample) {
    throw ConfigError("model.input: the model takes samples of shape " + shape_text(g.input) + ", the data's are " +
                      shape_text(sample));
  }
  if (m.loss == LossType::cross_entropy && !data.classification())
    throw ConfigError("loss: cross_entropy needs class labels; this data has regression targets (use \"mse\")");
  if (g.outputs() != data.outputs()) {
    const std::string last = "model.layers[" + std::to_string(m.type == ModelConfig::Type::mlp ? m.widths.size() - 1 : m.sequence.size() - 1) + "]";
    throw ConfigError(last + ": the model has " + std::to_string(g.outputs()) + " outputs, the data has " +
                      std::to_string(data.outputs()) + (data.classification() ? " classes" : " target columns"));
  }
}

}  // namespace mpscope::sim
