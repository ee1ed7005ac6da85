// Optimizers against PyTorch's update formulas written out plainly; learning-rate schedules; lost updates in a
// narrow format and stochastic rounding of the update.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sim/optimizer.hpp"
#include "sim/rounding.hpp"

using namespace mpscope::sim;

namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed, double scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// torch.optim.SGD, one parameter tensor, in double.
struct ReferenceSgd {
  double lr, momentum, dampening, wd;
  bool nesterov;
  std::vector<double> buf;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + wd * p[i];
      if (momentum != 0) {
        if (buf.size() < p.size()) buf.resize(p.size(), std::numeric_limits<double>::quiet_NaN());
        buf[i] = std::isnan(buf[i]) ? d : momentum * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
};

// torch.optim.Adam / AdamW, in double, written as in the paper (bias-corrected moments).
struct ReferenceAdam {
  double lr, b1, b2, eps, wd;
  bool decoupled;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    ++t;
    m.resize(p.size(), 0.0);
    v.resize(p.size(), 0.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double grad = g[i];
      if (decoupled) p[i] *= 1 - lr * wd;
      else grad += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * grad;
      v[i] = b2 * v[i] + (1 - b2) * grad * grad;
      const double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat_sqrt = std::sqrt(v[i]) / std::sqrt(1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (v_hat_sqrt + eps);
    }
  }
};

TEST(Optimizer, SgdVariantsMatchPyTorchFormulas) {
  for (const auto& [momentum, dampening, nesterov, wd] :
       {std::tuple{0.0, 0.0, false, 0.0}, std::tuple{0.9, 0.0, false, 0.0}, std::tuple{0.9, 0.1, false, 1e-3},
        std::tuple{0.8, 0.0, true, 5e-4}}) {
    OptimizerConfig c;
    c.lr = 0.05;
    c.momentum = momentum;
    c.dampening = dampening;
    c.nesterov = nesterov;
    c.weight_decay = wd;
    std::vector<double> p = random_vector(50, 1, 1.0), q = p;
    ParamOptimizer<double> opt(c, p.size());
    ReferenceSgd ref{c.lr, momentum, dampening, wd, nesterov, {}};
    NativeArith<double> arith;
    for (int step = 0; step < 20; ++step) {
      const std::vector<double> g = random_vector(50, 100 + step, 0.1);
      opt.step(std::span<double>(p), std::span<const double>(g), c.lr, arith);
      ref.step(q, g);
    }
    for (std::size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(p[i], q[i], 1e-12) << "momentum " << momentum;
  }
}

TEST(Optimizer, AdamAndAdamWMatchThePaperFormulas) {
  for (const auto type : {OptimizerConfig::Type::adam, OptimizerConfig::Type::adamw}) {
    OptimizerConfig c;
    c.type = type;
    c.lr = 1e-3;
    c.weight_decay = 0.01;
    std::vector<double> p = random_vector(40, 2, 1.0), q = p;
    ParamOptimizer<double> opt(c, p.size());
    ReferenceAdam ref{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, type == OptimizerConfig::Type::adamw, {}, {}};
    NativeArith<double> arith;
    for (int step = 0; step < 30; ++step) {
      const std::vector<double> g = random_vector(40, 200 + step, 0.01);
      opt.step(std::span<double>(p), std::span<const double>(g), c.lr, arith);
      ref.step(q, g);
    }
    // PyTorch's expression order (lerp, sqrt(v)/sqrt(bc2) + eps, addcdiv) differs from the paper's in rounding only.
    for (std::size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(p[i], q[i], 1e-12);
  }
}

TEST(Optimizer, Schedules) {
  OptimizerConfig c;
  c.lr = 1.0;
  EXPECT_EQ(learning_rate(c, 0, 100), 1.0);
  c.schedule.type = ScheduleConfig::Type::step;
  c.schedule.step_size = 10;
  c.schedule.gamma = 0.5;
  EXPECT_EQ(learning_rate(c, 9, 100), 1.0);
  EXPECT_EQ(learning_rate(c, 10, 100), 0.5);
  EXPECT_EQ(learning_rate(c, 25, 100), 0.25);
  c.schedule.type = ScheduleConfig::Type::cosine;
  c.schedule.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0, 100), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 50, 100), 0.55);
  c.schedule.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0, 110), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4, 110), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10, 110), 1.0);
}

// In fp16, 1024 + 0.1 rounds back to 1024: the update is lost (swamping). With stochastic rounding of the update
// it lands on 1025 with probability 0.1 per step, so the expected value moves as it should.
TEST(Optimizer, LostUpdatesAndStochasticUpdateRounding) {
  OptimizerConfig c;
  c.lr = 0.1;
  const std::vector<float> g(1000, -1.0f);  // each step adds lr * 1 = 0.1
  std::vector<float> p(1000, 1024.0f);
  ParamOptimizer<float> opt(c, p.size());
  FormatArith nearest;
  nearest.format = fp16();
  EXPECT_EQ(opt.step(std::span<float>(p), std::span<const float>(g), c.lr, nearest), 1000);
  EXPECT_EQ(p[0], 1024.0f);

  RandomStream random(3);
  FormatArith stochastic;
  stochastic.format = fp16();
  stochastic.update_rounding = Rounding::stochastic;
  stochastic.random = &random;
  ParamOptimizer<float> sr(c, p.size());
  std::int64_t lost = 0;
  for (int step = 0; step < 10; ++step) lost += sr.step(std::span<float>(p), std::span<const float>(g), c.lr, stochastic);
  double mean = 0;
  for (float x : p) mean += x;
  mean /= static_cast<double>(p.size());
  EXPECT_NEAR(mean, 1025.0, 0.1);  // 10 steps of +0.1 each, in expectation (sd of the mean ~0.03)
  EXPECT_GT(lost, 7000);           // most single steps still round back
  // fp32 master weights keep such updates
  std::vector<float> m(1000, 1024.0f);
  ParamOptimizer<float> master(c, m.size());
  FormatArith fp32_arith;
  EXPECT_EQ(master.step(std::span<float>(m), std::span<const float>(g), c.lr, fp32_arith), 0);
  EXPECT_FLOAT_EQ(m[0], 1024.1f);
}

}  // namespace
