// Builders of models and experiment snippets shared by the layer-graph tests (test_ops_gradients.cpp,
// test_gpt_model.cpp).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "sim/experiment.hpp"
#include "sim/ops/graph.hpp"

namespace mpscope::test {

using namespace mpscope::sim;
using json = nlohmann::json;

using Type = LayerSpec::Type;

inline LayerSpec linear(std::int64_t out, bool bias = true) {
  LayerSpec s;
  s.type = Type::linear;
  s.out = out;
  s.bias = bias;
  return s;
}
inline LayerSpec conv(std::int64_t out, std::int64_t k, std::int64_t stride = 1, std::int64_t padding = 0, bool bias = true) {
  LayerSpec s;
  s.type = Type::conv2d;
  s.out = out;
  s.kernel = k;
  s.stride = stride;
  s.padding = padding;
  s.bias = bias;
  return s;
}
inline LayerSpec pool(Type t, std::int64_t k, std::int64_t stride = 0) {
  LayerSpec s;
  s.type = t;
  s.kernel = k;
  s.stride = stride ? stride : k;
  return s;
}
inline LayerSpec of(Type t) {
  LayerSpec s;
  s.type = t;
  return s;
}
inline LayerSpec add(std::int64_t from) {
  LayerSpec s;
  s.type = Type::add;
  s.from = from;
  return s;
}
inline LayerSpec act(Activation a) {
  LayerSpec s;
  s.type = Type::activation;
  s.activation = a;
  return s;
}

inline ModelConfig sequential(std::vector<std::int64_t> input, std::vector<LayerSpec> layers, LossType loss) {
  ModelConfig m;
  m.type = ModelConfig::Type::sequential;
  m.input = std::move(input);
  m.sequence = std::move(layers);
  m.loss = loss;
  return m;
}

inline ModelConfig gpt(std::int64_t vocab, std::int64_t block, std::int64_t embd, std::int64_t heads, std::int64_t layers) {
  ModelConfig m;
  m.type = ModelConfig::Type::gpt;
  m.gpt = {vocab, block, embd, heads, layers, true};
  return m;
}
inline LayerSpec embedding(std::int64_t count, std::int64_t dim) {
  LayerSpec s = of(Type::embedding);
  s.count = count;
  s.out = dim;
  return s;
}
inline LayerSpec positions(std::int64_t count) {
  LayerSpec s = of(Type::position_embedding);
  s.count = count;
  return s;
}
inline LayerSpec attention(std::int64_t heads) {
  LayerSpec s = of(Type::causal_attention);
  s.heads = heads;
  return s;
}

inline void expect_contains(const std::string& text, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(text.find(p), std::string::npos) << "'" << p << "' not in: " << text;
}

inline json experiment_with(const json& model) {
  json j = json::parse(R"({
    "name": "t", "seed": 1, "steps": 10, "batch_size": 16,
    "data": {"source": "spiral", "classes": 3, "points_per_class": 20, "noise": 0.2},
    "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.1},
    "lanes": [{"name": "fp32", "recipe": "fp32", "reference": true}]})");
  j["model"] = model;
  return j;
}

inline std::string experiment_error(const json& model) {
  try {
    parse_experiment(experiment_with(model), ".");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace mpscope::test
