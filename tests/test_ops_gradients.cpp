// The layer graph's ops (sim/ops/*.cpp) through whole lanes: the fp64 lane's parameter gradients against central
// finite differences of the loss for sequential models that use every op and option, the fp64 lane against the
// exact (113-bit) lane, direct checks of conv2d / pooling semantics against naive loops (fp32 recipe), and the
// shape errors of build_graph and of the experiment parser.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "sim/experiment.hpp"
#include "sim/lane.hpp"
#include "sim/ops/graph.hpp"
#include "model_builders.hpp"

using namespace mpscope::sim;
using namespace mpscope::test;

namespace {

struct Case {
  std::string name;
  ModelConfig model;
};

std::vector<Case> cases() {
  const auto ce = LossType::cross_entropy, mse = LossType::mse;
  return {
      {"conv_silu_maxpool_conv_tanh",
       sequential({2, 6, 6},
                  {conv(3, 3, 1, 1), act(Activation::silu), pool(Type::maxpool2d, 2), conv(4, 3, 2, 1, false),
                   act(Activation::tanh), of(Type::flatten), linear(3)},
                  ce)},
      {"conv_batchnorm_relu_avgpool_layernorm_gelu",
       sequential({1, 5, 5},
                  {conv(2, 2), of(Type::batch_norm2d), act(Activation::relu), pool(Type::avgpool2d, 2, 1),
                   of(Type::flatten), of(Type::layer_norm), act(Activation::gelu), linear(4)},
                  ce)},
      {"linear_gelutanh_layernorm_sigmoid",
       sequential({6}, {linear(5), act(Activation::gelu_tanh), of(Type::layer_norm), act(Activation::sigmoid), linear(3)}, ce)},
      {"linear_nobias_mse",
       sequential({6}, {linear(5, false), act(Activation::gelu_tanh), of(Type::layer_norm), act(Activation::sigmoid), linear(3)},
                  mse)},
      // overlapping max windows (gradients add up at a shared maximum), a linear layer and a layer norm on the
      // last dimension of an image, MSE
      {"conv_overlapping_maxpool_lastdim_linear_mse",
       sequential({1, 6, 6},
                  {conv(2, 3, 1, 1), pool(Type::maxpool2d, 3, 2), linear(3), of(Type::layer_norm), of(Type::flatten),
                   linear(2)},
                  mse)},
      // residual edges: around a conv block, from the model's input, around a Linear + LayerNorm, and x + x
      {"residual_adds",
       sequential({2, 5, 5},
                  {conv(2, 3, 1, 1), act(Activation::relu), conv(2, 3, 1, 1), add(0), add(-1), of(Type::flatten),
                   linear(50), of(Type::layer_norm), add(5), add(8), act(Activation::tanh), linear(3)},
                  ce)},
      // transformer ops: a nanoGPT of two blocks (token ids in, a prediction per position), and the ops on their
      // own in a sequence (attention on a LayerNorm read by an add too, so its output stays promoted)
      {"gpt_two_blocks", gpt(5, 4, 8, 2, 2)},
      {"embedding_attention_sequence",
       sequential({5}, {embedding(7, 6), positions(6), of(Type::layer_norm), linear(18), attention(3), add(2),
                        act(Activation::gelu_tanh), linear(4)},
                  ce)},
  };
}

// Default initialisation, with the norms' weights and biases moved away from 1 and 0 so that they matter.
InitialWeights init_for(const ModelConfig& m, unsigned seed) {
  const Graph g = build_graph(m);
  InitialWeights w = default_initial_weights(g, seed);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> scale(0.5, 1.5), shift(-0.3, 0.3);
  for (const Node& n : g.nodes) {
    if (n.spec.type != Type::layer_norm && n.spec.type != Type::batch_norm2d) continue;
    for (double& v : w.at(n.params[0].name).values) v = scale(rng);
    for (double& v : w.at(n.params[1].name).values) v = shift(rng);
  }
  // nanoGPT's N(0, 0.02) weights barely move the attention: larger ones make every term of the gradient count
  if (m.type == ModelConfig::Type::gpt)
    for (ParamValues& p : w.params)
      if (p.name.ends_with(".weight") && p.name.find("ln_") == std::string::npos)
        for (double& v : p.values) v *= 20;
  return w;
}

Batch batch_for(const ModelConfig& m, unsigned seed, int rows = 6) {
  const Graph g = build_graph(m);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Batch b;
  b.x = Matrix<float>(rows, g.nodes.front().in_size());
  for (auto& v : b.x.data) v = g.tokens ? static_cast<float>(rng() % static_cast<unsigned>(g.vocab)) : n(rng);
  const std::vector<std::int64_t>& out = g.nodes.back().out_shape;
  const std::int64_t outputs = out.back(), positions = out.size() == 2 ? out[0] : 1;  // (a prediction per token)
  if (m.loss == LossType::cross_entropy) {
    for (int i = 0; i < rows * positions; ++i) b.labels.push_back(static_cast<std::int64_t>(rng() % static_cast<unsigned>(outputs)));
  } else {
    b.targets = Matrix<float>(rows, outputs);
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

// The training-mode loss of a fresh lane (batch norms on batch statistics): step's loss is the one before the update.
double step_loss(const ModelConfig& m, const InitialWeights& w, const Batch& b) {
  return make_lane(lane("fp64"), m, w)->step(b, 0.0, false).loss;
}

std::vector<double> flat(const LayerValues& v) {
  std::vector<double> out;
  for (const auto& layer : v) out.insert(out.end(), layer.begin(), layer.end());
  return out;
}

std::size_t tensor_index(const Lane& l, const std::string& name) {
  const auto& t = l.tensors();
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i].name == name) return i;
  ADD_FAILURE() << "no tensor " << name;
  return 0;
}

std::vector<double> read(const Lane& l, const std::string& name) {
  std::vector<double> out;
  EXPECT_TRUE(l.read_tensor(tensor_index(l, name), out)) << name;
  return out;
}

class OpModelGradients : public ::testing::TestWithParam<Case> {};

// d loss / d every parameter (gradients() concatenated over the groups is the initial weights' parameter order).
TEST_P(OpModelGradients, Fp64MatchesCentralDifferences) {
  const ModelConfig& m = GetParam().model;
  InitialWeights w = init_for(m, 7);
  const Batch b = batch_for(m, 11);
  auto l = make_lane(lane("fp64"), m, w);
  l->step(b, 0.0, false);
  const std::vector<double> analytic = flat(l->gradients());
  std::vector<double*> params;
  for (ParamValues& p : w.params)
    for (double& v : p.values) params.push_back(&v);
  ASSERT_EQ(analytic.size(), params.size());
  const double h = 1e-6;
  double largest = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    double* p = params[i];
    const double saved = *p;
    *p = saved + h;
    const double up = step_loss(m, w, b);
    *p = saved - h;
    const double down = step_loss(m, w, b);
    *p = saved;
    const double numeric = (up - down) / (2 * h);
    largest = std::max(largest, std::fabs(numeric));
    // truncation O(h^2) ~ 1e-12, rounding of the loss ~ 1e-16 / h ~ 1e-10
    ASSERT_NEAR(analytic[i], numeric, 1e-8 + 1e-6 * std::fabs(numeric)) << "parameter " << i;
  }
  EXPECT_GT(largest, 1e-2);  // the gradients are not all (nearly) zero
}

// The exact lane and the fp64 lane agree to double precision: losses over 5 training steps, the first gradients.
TEST_P(OpModelGradients, Fp64AgreesWithExact) {
  const ModelConfig& m = GetParam().model;
  const InitialWeights w = init_for(m, 3);
  auto fp64 = make_lane(lane("fp64"), m, w);
  auto exact = make_lane(lane("exact"), m, w);
  for (int step = 0; step < 5; ++step) {
    const Batch b = batch_for(m, 100 + static_cast<unsigned>(step));
    const double l64 = fp64->step(b, 0.1, false).loss, lx = exact->step(b, 0.1, false).loss;
    ASSERT_NEAR(l64, lx, 1e-12 * std::fabs(lx)) << "step " << step;
    if (step > 0) continue;
    const std::vector<double> g64 = flat(fp64->gradients()), gx = flat(exact->gradients());
    ASSERT_EQ(g64.size(), gx.size());
    double largest = 0;
    for (double g : gx) largest = std::max(largest, std::fabs(g));
    // relative 1e-12, with a floor of 1e-14 of the largest gradient for gradients that cancel to ~0 (a bias
    // before a batch norm)
    for (std::size_t i = 0; i < g64.size(); ++i)
      ASSERT_NEAR(g64[i], gx[i], 1e-12 * std::fabs(gx[i]) + 1e-14 * largest) << "parameter " << i;
  }
  const std::vector<double> w64 = flat(fp64->weights()), wx = flat(exact->weights());
  for (std::size_t i = 0; i < w64.size(); ++i) ASSERT_NEAR(w64[i], wx[i], 1e-12 * std::max(1.0, std::fabs(wx[i]))) << i;
}

INSTANTIATE_TEST_SUITE_P(OpGradients, OpModelGradients, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// A batch norm takes out each channel's mean: the bias of the convolution before it gets no gradient.
TEST(OpSemantics, BiasBeforeBatchNormGetsNoGradient) {
  const ModelConfig m = cases()[1].model;
  auto l = make_lane(lane("exact"), m, init_for(m, 5));
  l->step(batch_for(m, 13), 0.0, false);
  const LayerValues g = l->gradients();  // group "0": conv weight (2·1·2·2), bias (2)
  ASSERT_EQ(g[0].size(), 10u);
  EXPECT_GT(std::fabs(g[0][0]), 1e-6);
  for (std::size_t i = 8; i < 10; ++i) EXPECT_LT(std::fabs(g[0][i]), 1e-25) << "bias " << i - 8;
}

// Conv2d's output (+ bias), weight and bias gradients against naive loops; the conv's group is conv + flatten, so
// "0.activation" is the convolution's output and "0.activation_grad" the gradient there.
TEST(OpSemantics, Conv2dMatchesNaiveLoops) {
  const std::int64_t C = 2, H = 5, Wd = 5, F = 3, K = 3, S = 2, P = 1, Ho = 3, Wo = 3;
  const ModelConfig m = sequential({C, H, Wd}, {conv(F, K, S, P), of(Type::flatten), linear(2)}, LossType::cross_entropy);
  const InitialWeights init = default_initial_weights(m, 21);
  const Batch b = batch_for(m, 22, 4);
  auto l = make_lane(lane("fp32"), m, init);
  l->step(b, 0.0, false);
  const std::vector<double>& w = init.at("0.weight").values;  // (F, C, K, K)
  const std::vector<double>& bias = init.at("0.bias").values;
  const std::vector<double> y = read(*l, "0.activation"), dy = read(*l, "0.activation_grad");
  const std::vector<double> dw = read(*l, "0.weight_grad"), db = read(*l, "0.bias_grad");
  ASSERT_EQ(y.size(), static_cast<std::size_t>(4 * F * Ho * Wo));
  ASSERT_EQ(dy.size(), y.size());
  std::vector<double> dw_ref(w.size(), 0.0), dw_mag(w.size(), 0.0), db_ref(F, 0.0), db_mag(F, 0.0);
  const auto x = [&](std::int64_t r, std::int64_t c, std::int64_t ih, std::int64_t iw) {
    return ih < 0 || ih >= H || iw < 0 || iw >= Wd ? 0.0 : static_cast<double>(b.x(r, (c * H + ih) * Wd + iw));
  };
  for (std::int64_t r = 0; r < 4; ++r)
    for (std::int64_t f = 0; f < F; ++f)
      for (std::int64_t oh = 0; oh < Ho; ++oh)
        for (std::int64_t ow = 0; ow < Wo; ++ow) {
          const std::size_t o = static_cast<std::size_t>(((r * F + f) * Ho + oh) * Wo + ow);
          double sum = bias[static_cast<std::size_t>(f)], magnitude = std::fabs(sum);
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t kh = 0; kh < K; ++kh)
              for (std::int64_t kw = 0; kw < K; ++kw) {
                const std::size_t wi = static_cast<std::size_t>(((f * C + c) * K + kh) * K + kw);
                const double xv = x(r, c, oh * S - P + kh, ow * S - P + kw);
                sum += w[wi] * xv;
                magnitude += std::fabs(w[wi] * xv);
                dw_ref[wi] += dy[o] * xv;
                dw_mag[wi] += std::fabs(dy[o] * xv);
              }
          EXPECT_NEAR(y[o], sum, 1e-6 * magnitude) << "output " << o;
          db_ref[static_cast<std::size_t>(f)] += dy[o];
          db_mag[static_cast<std::size_t>(f)] += std::fabs(dy[o]);
        }
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-6 * dw_mag[i]) << "weight_grad " << i;
  for (std::int64_t f = 0; f < F; ++f) EXPECT_NEAR(db[f], db_ref[f], 1e-6 * db_mag[f]) << "bias_grad " << f;
}

// Input (1, 4, 4) through conv2d(1, k1) with weight 1 and bias 0 (the identity, exact in fp32), a pool, flatten and
// linear(3): "0.activation" is the pool's output, "0.activation_grad" the gradient at the pool's input, and the
// gradient at the pool's output is the linear layer's W^T · d logits ("3.activation_grad").
struct PoolRun {
  std::unique_ptr<Lane> lane;
  Batch batch;
  std::vector<double> y, dx, dy_pool, dy_mag;  // dy_mag: Σ|terms| of each dy_pool (the fp32 GEMM's error scale)
};

PoolRun run_pool(LayerSpec p, const std::vector<std::vector<float>>& rows) {
  const ModelConfig m = sequential({1, 4, 4}, {conv(1, 1), p, of(Type::flatten), linear(3)}, LossType::cross_entropy);
  InitialWeights init = default_initial_weights(m, 31);
  init.at("0.weight").values = {1.0};
  init.at("0.bias").values = {0.0};
  PoolRun r;
  r.batch.x = Matrix<float>(static_cast<std::int64_t>(rows.size()), 16);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::copy(rows[i].begin(), rows[i].end(), r.batch.x.row(static_cast<std::int64_t>(i)));
    r.batch.labels.push_back(static_cast<std::int64_t>(i % 3));
  }
  r.lane = make_lane(lane("fp32"), m, init);
  r.lane->step(r.batch, 0.0, false);
  r.y = read(*r.lane, "0.activation");
  r.dx = read(*r.lane, "0.activation_grad");
  const std::vector<double> dz = read(*r.lane, "3.activation_grad");
  const std::vector<double>& w = init.at("3.weight").values;  // (3, outputs)
  const std::size_t outputs = w.size() / 3;
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t o = 0; o < outputs; ++o) {
      double s = 0, mag = 0;
      for (std::size_t k = 0; k < 3; ++k) {
        s += w[k * outputs + o] * dz[i * 3 + k];
        mag += std::fabs(w[k * outputs + o] * dz[i * 3 + k]);
      }
      r.dy_pool.push_back(s);
      r.dy_mag.push_back(mag);
    }
  return r;
}

TEST(OpSemantics, MaxPoolSendsTheGradientToTheFirstMaximum) {
  // windows (row-major within each): all equal; max tied at (0,1),(1,0),(1,1); tied at (0,1),(1,0); tied at (1,0),(1,1)
  const std::vector<float> tied = {0.5f, 0.5f, 0.1f, 0.7f,   //
                                   0.5f, 0.5f, 0.7f, 0.7f,   //
                                   -0.3f, -0.2f, 0.2f, 0.1f,  //
                                   -0.2f, -0.9f, 0.9f, 0.9f};
  // +0 maxima tied; a unique maximum last in its window; a tie of the first and the last; all four tied
  const std::vector<float> zeros = {0.0f, -1.0f, -2.0f, 1.0f,   //
                                    0.0f, 0.0f, 0.0f, 3.0f,     //
                                    2.0f, 1.0f, -1.0f, -1.0f,   //
                                    1.0f, 2.0f, -1.0f, -1.0f};
  const PoolRun r = run_pool(pool(Type::maxpool2d, 2), {tied, zeros});
  // the index within the sample of each window's first maximum, row-major over the windows
  const std::vector<std::vector<int>> first = {{0, 3, 9, 14}, {0, 7, 8, 10}};
  const std::vector<std::vector<float>> max = {{0.5f, 0.7f, -0.2f, 0.9f}, {0.0f, 3.0f, 2.0f, -1.0f}};
  ASSERT_EQ(r.y.size(), 8u);
  ASSERT_EQ(r.dx.size(), 32u);
  for (int s = 0; s < 2; ++s) {
    for (int o = 0; o < 4; ++o) EXPECT_EQ(r.y[static_cast<std::size_t>(s * 4 + o)], max[s][o]) << "sample " << s << " window " << o;
    std::vector<double> expected(16, 0.0), tolerance(16, 0.0);
    for (int o = 0; o < 4; ++o) {
      expected[static_cast<std::size_t>(first[s][o])] = r.dy_pool[static_cast<std::size_t>(s * 4 + o)];
      tolerance[static_cast<std::size_t>(first[s][o])] = 1e-6 * r.dy_mag[static_cast<std::size_t>(s * 4 + o)];
    }
    for (int i = 0; i < 16; ++i) {
      const double got = r.dx[static_cast<std::size_t>(s * 16 + i)], want = expected[static_cast<std::size_t>(i)];
      if (want == 0.0) {
        EXPECT_EQ(got, 0.0) << "sample " << s << " input " << i << " is not its window's first maximum";
      } else {
        EXPECT_NEAR(got, want, tolerance[static_cast<std::size_t>(i)]) << "sample " << s << " input " << i;
      }
    }
  }
}

TEST(OpSemantics, AvgPoolAveragesOverlappingWindows) {
  std::mt19937 rng(41);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<std::vector<float>> rows(3, std::vector<float>(16));
  for (auto& row : rows)
    for (float& v : row) v = n(rng);
  const PoolRun r = run_pool(pool(Type::avgpool2d, 3, 1), rows);  // (1, 4, 4) -> (1, 2, 2), windows overlap
  ASSERT_EQ(r.y.size(), 12u);
  for (std::size_t s = 0; s < rows.size(); ++s) {
    std::vector<double> dx_ref(16, 0.0), dx_mag(16, 0.0);
    for (int oh = 0; oh < 2; ++oh)
      for (int ow = 0; ow < 2; ++ow) {
        double sum = 0;  // nine floats of similar size: exact in double
        for (int kh = 0; kh < 3; ++kh)
          for (int kw = 0; kw < 3; ++kw) {
            sum += rows[s][static_cast<std::size_t>((oh + kh) * 4 + ow + kw)];
            const std::size_t i = static_cast<std::size_t>((oh + kh) * 4 + ow + kw), o = s * 4 + static_cast<std::size_t>(oh * 2 + ow);
            dx_ref[i] += r.dy_pool[o] / 9;
            dx_mag[i] += r.dy_mag[o] / 9;
          }
        // the mean in the wide type, rounded once to fp32
        EXPECT_EQ(r.y[s * 4 + static_cast<std::size_t>(oh * 2 + ow)], static_cast<double>(static_cast<float>(sum / 9)))
            << "sample " << s << " window " << oh << "," << ow;
      }
    for (std::size_t i = 0; i < 16; ++i) EXPECT_NEAR(r.dx[s * 16 + i], dx_ref[i], 1e-6 * dx_mag[i]) << s << " " << i;
  }
}

std::string build_error(const ModelConfig& m) {
  try {
    build_graph(m);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}


TEST(GraphErrors, NameTheLayerAndTheShapes) {
  const auto ce = LossType::cross_entropy;
  expect_contains(build_error(sequential({6}, {conv(2, 3), of(Type::flatten), linear(2)}, ce)),
                  {"layers[0] (conv2d)", "(C, H, W)", "(6,)"});
  // the kernel against the padded input, at a later layer: (1, 8, 8) -> conv k3 (2, 6, 6) -> maxpool 2 (2, 3, 3)
  expect_contains(build_error(sequential({1, 8, 8}, {conv(2, 3), pool(Type::maxpool2d, 2), conv(2, 5), of(Type::flatten), linear(2)}, ce)),
                  {"layers[2] (conv2d)", "kernel_size 5", "(2, 3, 3)"});
  EXPECT_EQ(build_error(sequential({1, 8, 8}, {conv(2, 3), pool(Type::maxpool2d, 2), conv(2, 5, 1, 1), of(Type::flatten), linear(2)}, ce)),
            "no error");  // padding 1 makes the input 5 × 5
  expect_contains(build_error(sequential({1, 8, 8}, {conv(2, 3), pool(Type::avgpool2d, 2), pool(Type::maxpool2d, 4), of(Type::flatten), linear(2)}, ce)),
                  {"layers[2] (maxpool2d)", "kernel_size 4", "(2, 3, 3)"});
  expect_contains(build_error(sequential({1, 4, 4}, {conv(2, 3), of(Type::flatten), of(Type::batch_norm2d), linear(2)}, ce)),
                  {"layers[2] (batch_norm2d)", "(C, H, W)", "(8,)"});
  expect_contains(build_error(sequential({4}, {linear(3), pool(Type::avgpool2d, 2)}, ce)), {"layers[1] (avgpool2d)", "(3,)"});
  expect_contains(build_error(sequential({2, 0, 4}, {linear(3)}, ce)), {"(2, 0, 4)"});
  // residual edges: an earlier layer of the same shape, once per activation
  expect_contains(build_error(sequential({4}, {linear(3), add(1), linear(2)}, ce)), {"layers[1] (add)", "from 1", "0 .. 0"});
  expect_contains(build_error(sequential({4}, {linear(3), add(-1), linear(2)}, ce)),
                  {"layers[1] (add)", "the model's input (4,)", "its input (3,)"});
  expect_contains(build_error(sequential({4}, {linear(4), add(-1), add(-1), linear(2)}, ce)),
                  {"layers[2] (add)", "the model's input is added by another layer already"});
  EXPECT_EQ(build_error(sequential({4}, {linear(4), add(-1), add(1), linear(2)}, ce)), "no error");
}

// A linear layer on an image acts on its last dimension (as nn.Linear does); the graph allows it.
TEST(GraphErrors, LinearOnAnImageActsOnTheLastDimension) {
  const Graph g = build_graph(sequential({2, 4, 4}, {conv(3, 3), linear(5)}, LossType::cross_entropy));
  EXPECT_EQ(g.nodes[1].out_shape, (std::vector<std::int64_t>{3, 2, 5}));
  EXPECT_EQ(g.nodes[1].params[0].shape, (std::vector<std::int64_t>{5, 2}));
}



// The loss needs (outputs,) per sample: a model that ends in an image (or a linear layer on one) is refused with the
// shape it ends in; the graph's own shape errors come back with the key path.
TEST(GraphErrors, ExperimentRefusesALossOnAnImage) {
  const json image_end = json::parse(R"({"type": "sequential", "input": [2, 4, 4],
    "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3}, {"type": "linear", "out_features": 5}]})");
  expect_contains(experiment_error(image_end), {"model.layers", "(3, 2, 5)", "the loss needs (outputs,)"});
  const json flattened = json::parse(R"({"type": "sequential", "input": [2, 4, 4],
    "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]})");
  EXPECT_EQ(experiment_error(flattened), "no error");
  const json bad_conv = json::parse(R"({"type": "sequential", "input": [6],
    "layers": [{"type": "conv2d", "out_channels": 3, "kernel_size": 3}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]})");
  expect_contains(experiment_error(bad_conv), {"model.layers[0] (conv2d)", "(C, H, W)", "(6,)"});
  // residual edges in experiment files: "from" names an earlier layer, required
  const json residual = json::parse(R"({"type": "sequential", "input": [3],
    "layers": [{"type": "linear", "out_features": 3}, {"type": "relu"}, {"type": "add", "from": -1}, {"type": "linear", "out_features": 3}]})");
  EXPECT_EQ(experiment_error(residual), "no error");
  json no_from = residual;
  no_from["layers"][2].erase("from");
  expect_contains(experiment_error(no_from), {"model.layers[2].from"});
  json later = residual;
  later["layers"][2]["from"] = 3;
  expect_contains(experiment_error(later), {"layers[2] (add)", "from 3 is not an earlier layer"});
}

}  // namespace

