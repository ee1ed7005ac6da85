#include "sim/model.hpp"

#include <stdexcept>

namespace mpscope::sim {

std::string_view to_string(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::tanh: return "tanh";
    case Activation::sigmoid: return "sigmoid";
    case Activation::silu: return "silu";
  }
  return "?";
}

std::string_view to_string(LossType l) { return l == LossType::cross_entropy ? "cross_entropy" : "mse"; }
std::string_view to_string(LossLogits l) { return l == LossLogits::autocast ? "autocast" : "fp32"; }

std::string_view to_string(LayerSpec::Type t) {
  using T = LayerSpec::Type;
  switch (t) {
    case T::linear: return "linear";
    case T::conv2d: return "conv2d";
    case T::maxpool2d: return "maxpool2d";
    case T::avgpool2d: return "avgpool2d";
    case T::flatten: return "flatten";
    case T::activation: return "activation";
    case T::layer_norm: return "layer_norm";
    case T::batch_norm2d: return "batch_norm2d";
    case T::add: return "add";
    case T::embedding: return "embedding";
    case T::position_embedding: return "position_embedding";
    case T::causal_attention: return "causal_attention";
  }
  return "?";
}

std::vector<std::string> activation_names() {
  std::vector<std::string> names;
  for (Activation a : all_activations) names.emplace_back(to_string(a));
  return names;
}

std::vector<std::string> layer_type_names() {
  std::vector<std::string> names;
  for (LayerSpec::Type t : LayerSpec::all_types)
    if (t != LayerSpec::Type::activation) names.emplace_back(to_string(t));
  for (const std::string& a : activation_names()) names.push_back(a);
  return names;
}

const ParamValues& InitialWeights::at(std::string_view name) const {
  for (const ParamValues& p : params)
    if (p.name == name) return p;
  throw std::out_of_range("no initial values for parameter " + std::string(name));
}

ParamValues& InitialWeights::at(std::string_view name) {
  return const_cast<ParamValues&>(static_cast<const InitialWeights&>(*this).at(name));
}

Batch slice(const Batch& b, std::int64_t begin, std::int64_t end) {
  Batch s;
  if (!b.rows.empty()) s.rows.assign(b.rows.begin() + begin, b.rows.begin() + end);
  if (b.x.rows > 0) {
    s.x = Matrix<float>(end - begin, b.x.cols);
    std::copy(b.x.row(begin), b.x.row(end - 1) + b.x.cols, s.x.data.begin());
  }
  if (!b.labels.empty()) {
    const std::int64_t per = static_cast<std::int64_t>(b.labels.size()) / b.x.rows;  // labels per sample
    s.labels.assign(b.labels.begin() + begin * per, b.labels.begin() + end * per);
  }
  if (b.targets.rows > 0) {
    s.targets = Matrix<float>(end - begin, b.targets.cols);
    std::copy(b.targets.row(begin), b.targets.row(end - 1) + b.targets.cols, s.targets.data.begin());
  }
  return s;
}

}  // namespace mpscope::sim
