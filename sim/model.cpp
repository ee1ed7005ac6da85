#include "sim/model.hpp"

#include <cmath>

#include "sim/random.hpp"

namespace mpscope::sim {

std::string_view to_string(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::tanh: return "tanh";
    case Activation::sigmoid: return "sigmoid";
  }
  return "?";
}

std::string_view to_string(LossType l) { return l == LossType::cross_entropy ? "cross_entropy" : "mse"; }
std::string_view to_string(LossLogits l) { return l == LossLogits::autocast ? "autocast" : "fp32"; }

std::int64_t ModelConfig::parameters() const {
  std::int64_t n = 0;
  for (int k = 0; k < layers(); ++k) {
    n += widths[k] * widths[k + 1] + widths[k + 1];
    if (layer_norm && k + 1 < layers()) n += 2 * widths[k + 1];
  }
  return n;
}

InitialWeights default_initial_weights(const ModelConfig& m, std::uint64_t seed) {
  RandomStream random(seed, 0x696e6974 /* "init" */);
  const auto uniform = [&](double bound) {
    const double u = static_cast<double>(random.next() >> 11) * 0x1p-53;  // [0, 1)
    return static_cast<double>(static_cast<float>((2 * u - 1) * bound));   // float32 values, like PyTorch's
  };
  InitialWeights w;
  for (int k = 0; k < m.layers(); ++k) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(m.widths[k]));
    Matrix<double> weight(m.widths[k + 1], m.widths[k]);
    for (auto& x : weight.data) x = uniform(bound);
    std::vector<double> bias(static_cast<std::size_t>(m.widths[k + 1]));
    for (auto& x : bias) x = uniform(bound);
    w.weight.push_back(std::move(weight));
    w.bias.push_back(std::move(bias));
  }
  return w;
}

}  // namespace mpscope::sim
