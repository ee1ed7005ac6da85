// The backward pass is right: fp64 gradients against central finite differences of the loss, for every activation,
// with and without LayerNorm, for both losses; and the fp64 lane against the exact (113-bit) lane.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sim/lane.hpp"
#include "sim/ops/graph.hpp"

using namespace mpscope::sim;

namespace {

struct Case {
  Activation activation;
  bool layer_norm;
  LossType loss;
};

ModelConfig model_for(const Case& c) {
  ModelConfig m;
  m.widths = {3, 5, 4, 3};
  m.activation = c.activation;
  m.layer_norm = c.layer_norm;
  m.loss = c.loss;
  return m;
}

InitialWeights init_for(const ModelConfig& m, unsigned seed) {
  InitialWeights w = default_initial_weights(m, seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.5, 1.5), b(-0.3, 0.3);
  for (ParamValues& p : w.params) {  // LayerNorm parameters away from their defaults, so they matter
    if (p.name.ends_with(".norm.weight"))
      for (auto& g : p.values) g = u(rng);
    if (p.name.ends_with(".norm.bias"))
      for (auto& x : p.values) x = b(rng);
  }
  return w;
}

Batch batch_for(const ModelConfig& m, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Batch b;
  b.x = Matrix<float>(6, m.widths.front());
  for (auto& v : b.x.data) v = n(rng);
  if (m.loss == LossType::cross_entropy) {
    for (int i = 0; i < 6; ++i) b.labels.push_back(i % m.widths.back());
  } else {
    b.targets = Matrix<float>(6, m.widths.back());
    for (auto& v : b.targets.data) v = n(rng);
  }
  return b;
}

LaneConfig lane(const char* recipe) {
  LaneConfig c;
  c.name = recipe;
  c.recipe = recipe_preset(recipe);
  c.optimizer.lr = 0.1;
  return c;
}

// Every parameter as a pointer into InitialWeights, in the lanes' gradients() order (per layer "layerK": weight,
// bias, LayerNorm gamma, beta).
std::vector<std::vector<double*>> parameters(InitialWeights& w, const ModelConfig& m) {
  std::vector<std::vector<double*>> out(static_cast<std::size_t>(m.layers()));
  for (ParamValues& p : w.params) {
    const std::size_t k = std::stoul(p.name.substr(5, p.name.find('.') - 5)) - 1;  // "layer<k+1>.weight"
    for (auto& x : p.values) out[k].push_back(&x);
  }
  return out;
}

class FiniteDifferences : public ::testing::TestWithParam<Case> {};

TEST_P(FiniteDifferences, Fp64GradientsMatchCentralDifferences) {
  const ModelConfig m = model_for(GetParam());
  InitialWeights w = init_for(m, 7);
  const Batch b = batch_for(m, 11);
  auto analytic_lane = make_lane(lane("fp64"), m, w);
  analytic_lane->step(b, 0.0, false);  // lr 0: gradients only
  const auto analytic = analytic_lane->gradients();
  const double h = 1e-6;
  auto params = parameters(w, m);
  int checked = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    ASSERT_EQ(analytic[k].size(), params[k].size());
    for (std::size_t i = 0; i < params[k].size(); ++i) {
      double* p = params[k][i];
      const double saved = *p;
      *p = saved + h;
      const double up = make_lane(lane("fp64"), m, w)->evaluate(b).loss;
      *p = saved - h;
      const double down = make_lane(lane("fp64"), m, w)->evaluate(b).loss;
      *p = saved;
      const double numeric = (up - down) / (2 * h);
      // central differences are exact to O(h^2) ~ 1e-12 plus rounding ~ 1e-16/h ~ 1e-10
      ASSERT_NEAR(analytic[k][i], numeric, 1e-7 * std::max(1.0, std::fabs(numeric))) << "layer " << k + 1 << " parameter " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

INSTANTIATE_TEST_SUITE_P(
    Models, FiniteDifferences,
    ::testing::Values(Case{Activation::relu, false, LossType::cross_entropy}, Case{Activation::gelu, false, LossType::cross_entropy},
                      Case{Activation::gelu_tanh, true, LossType::cross_entropy}, Case{Activation::tanh, true, LossType::mse},
                      Case{Activation::sigmoid, false, LossType::mse}, Case{Activation::gelu, true, LossType::mse},
                      Case{Activation::relu, true, LossType::cross_entropy}),
    [](const auto& info) {
      return std::string(to_string(info.param.activation)) + (info.param.layer_norm ? "_layernorm_" : "_") +
             std::string(to_string(info.param.loss));
    });

// The exact lane (113-bit) and the fp64 lane agree to double precision on gradients and over 20 training steps.
TEST(ExactLane, AgreesWithFp64) {
  for (const Case c : {Case{Activation::gelu, true, LossType::cross_entropy}, Case{Activation::tanh, false, LossType::mse}}) {
    const ModelConfig m = model_for(c);
    const InitialWeights w = init_for(m, 3);
    auto fp64 = make_lane(lane("fp64"), m, w);
    auto exact = make_lane(lane("exact"), m, w);
    for (int step = 0; step < 20; ++step) {
      const Batch b = batch_for(m, 100 + static_cast<unsigned>(step));
      const double l64 = fp64->step(b, 0.1, false).loss, lx = exact->step(b, 0.1, false).loss;
      // fp64 rounds each of its thousands of operations to 53 bits: agreement to ~1e-11 relative is double precision
      ASSERT_NEAR(l64, lx, 1e-12 * std::fabs(lx)) << "step " << step;
      if (step == 0) {
        const auto g64 = fp64->gradients(), gx = exact->gradients();
        for (std::size_t k = 0; k < g64.size(); ++k)
          for (std::size_t i = 0; i < g64[k].size(); ++i) ASSERT_NEAR(g64[k][i], gx[k][i], 1e-11 * std::max(1.0, std::fabs(gx[k][i])));
      }
    }
    const auto w64 = fp64->weights(), wx = exact->weights();
    for (std::size_t k = 0; k < w64.size(); ++k)
      for (std::size_t i = 0; i < w64[k].size(); ++i) ASSERT_NEAR(w64[k][i], wx[k][i], 1e-12);
  }
}

}  // namespace
