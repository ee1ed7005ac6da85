// Lanes do what their recipes say: where values are rounded and to what, what is kept in master precision, what
// the GEMM model changes, reproducibility, evaluation without side effects, skipped steps.
#include <gtest/gtest.h>

#include <random>

#include "sim/lane.hpp"
#include "sim/rounding.hpp"

using namespace mpscope::sim;

namespace {

ModelConfig spiral_model() {
  ModelConfig m;
  m.widths = {2, 16, 16, 3};
  return m;
}

Batch random_batch(unsigned seed, float scale = 1.0f, std::int64_t rows = 32) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  Batch b;
  b.x = Matrix<float>(rows, 2);
  for (auto& v : b.x.data) v = n(rng);
  for (std::int64_t i = 0; i < rows; ++i) b.labels.push_back(i % 3);
  return b;
}

LaneConfig lane(const std::string& recipe) {
  LaneConfig c;
  c.name = recipe;
  c.recipe = recipe_preset(recipe);
  c.optimizer.lr = 0.1;
  c.seed = 5;
  return c;
}

bool all_in(const std::vector<std::vector<double>>& layers, const Format& f) {
  for (const auto& l : layers)
    for (double v : l)
      if (!is_representable(v, f)) return false;
  return true;
}

const TensorRecord& record_named(const StepResult& r, const Lane& l, const std::string& name) {
  for (const auto& t : r.tensors)
    if (l.tensors()[t.index].name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

TEST(Lanes, PureFp16KeepsWeightsInFp16AmpKeepsFp32Masters) {
  const ModelConfig m = spiral_model();
  const InitialWeights w = default_initial_weights(m, 1);
  auto pure = make_lane(lane("fp16-pure"), m, w);
  auto amp = make_lane(lane("fp16-amp"), m, w);
  auto bf = make_lane(lane("bf16-amp"), m, w);
  for (int s = 0; s < 10; ++s) {
    const Batch b = random_batch(static_cast<unsigned>(s));
    pure->step(b, 0.1, false);
    amp->step(b, 0.1, false);
    bf->step(b, 0.1, false);
  }
  EXPECT_TRUE(all_in(pure->weights(), fp16()));
  EXPECT_TRUE(all_in(pure->gradients(), fp16()));
  EXPECT_FALSE(all_in(amp->weights(), fp16()));  // fp32 master weights accumulate finer updates
  EXPECT_TRUE(all_in(amp->weights(), fp32()));
  EXPECT_FALSE(all_in(bf->weights(), bf16()));
  // tensor formats as the recipe says
  for (const auto& t : amp->tensors()) {
    if (t.kind == "weight" || t.kind == "bias") {
      EXPECT_EQ(t.format, "fp32") << t.name;
    }
    if (t.kind == "activation" || t.kind == "activation_grad" || t.kind == "input") {
      EXPECT_EQ(t.format, "fp16") << t.name;
    }
  }
}

TEST(Lanes, RecordsRoundingEffectsAndHistograms) {
  const ModelConfig m = spiral_model();
  auto amp = make_lane(lane("fp16-amp"), m, default_initial_weights(m, 2));
  const StepResult r = amp->step(random_batch(1), 0.1, true);
  ASSERT_EQ(r.tensors.size(), amp->tensors().size());
  const TensorRecord& act = record_named(r, *amp, "layer1.activation");
  ASSERT_TRUE(act.effects.has_value());
  EXPECT_EQ(act.effects->elements, 32 * 16 * 2);  // two rounding points: the GEMM with its bias, the activation
  EXPECT_EQ(act.histogram.total(), 32 * 16);
  EXPECT_GT(act.histogram.zeros, 0);              // ReLU
  const TensorRecord& weight = record_named(r, *amp, "layer2.weight");
  ASSERT_TRUE(weight.effects.has_value());        // the cast of the fp32 master to fp16
  EXPECT_EQ(weight.effects->elements, 16 * 16);
  auto fp32 = make_lane(lane("fp32"), m, default_initial_weights(m, 2));
  const StepResult f = fp32->step(random_batch(1), 0.1, true);
  EXPECT_FALSE(record_named(f, *fp32, "layer2.weight").effects.has_value());  // nothing narrower to round to
  auto wide = make_lane(lane("fp64"), m, default_initial_weights(m, 2));
  const StepResult d = wide->step(random_batch(1), 0.1, true);
  EXPECT_FALSE(record_named(d, *wide, "layer1.activation").effects.has_value());
  EXPECT_EQ(record_named(d, *wide, "layer1.activation").histogram.total(), 32 * 16);
}

// With the output layer's weights at 1e-6 of their size, the gradients reaching the hidden layers are about
// 1e-8: below fp16's range without scaling, inside it after GradScaler's 2^16.
TEST(Lanes, LossScalingBringsUnderflowingGradientsBack) {
  const ModelConfig m = spiral_model();
  InitialWeights w = default_initial_weights(m, 3);
  for (double& v : w.at("layer" + std::to_string(m.layers()) + ".weight").values) v *= 1e-6;
  const Batch b = random_batch(4);
  LaneConfig unscaled = lane("fp16-amp"), scaled = lane("fp16-amp");
  scaled.loss_scale.type = LossScaleConfig::Type::dynamic;
  scaled.loss_scale.init_scale = 1 << 16;
  auto a = make_lane(unscaled, m, w), s = make_lane(scaled, m, w);
  std::int64_t under_a = 0, under_s = 0;
  for (int step = 0; step < 5; ++step) {
    const StepResult ra = a->step(b, 0.0, true), rs = s->step(b, 0.0, true);
    EXPECT_FALSE(rs.skipped);
    for (const auto& t : ra.tensors)
      if (t.effects && a->tensors()[t.index].kind.find("grad") != std::string::npos) under_a += t.effects->underflow;
    for (const auto& t : rs.tensors)
      if (t.effects && s->tensors()[t.index].kind.find("grad") != std::string::npos) under_s += t.effects->underflow;
  }
  EXPECT_GT(under_a, 1000);
  EXPECT_LT(under_s * 100, under_a);
  // the scaled lane's unscaled gradients are the true (small) ones, not zeros
  double norm_a = 0, norm_s = 0;
  for (const auto& l : a->gradients()) for (double v : l) norm_a += v * v;
  for (const auto& l : s->gradients()) for (double v : l) norm_s += v * v;
  EXPECT_GT(norm_s, norm_a);
}

TEST(Lanes, H100AndFp32AccumulationDiffer) {
  ModelConfig m = spiral_model();
  m.widths = {2, 64, 64, 3};  // K = 64: four tensor-core blocks chained, each truncating
  const InitialWeights w = default_initial_weights(m, 4);
  LaneConfig h = lane("fp16-amp");
  h.recipe.mma = Accumulation::h100;
  auto a = make_lane(lane("fp16-amp"), m, w), b = make_lane(h, m, w);
  // (Compared on the gradients: the loss, a mean of fp16-rounded log-probabilities, often hides the difference.)
  double max_diff = 0, max_grad = 0;
  for (int s = 0; s < 20; ++s) {
    const Batch batch = random_batch(static_cast<unsigned>(s) + 50, 30.0f, 64);
    a->step(batch, 0.1, false);
    b->step(batch, 0.1, false);
    const LayerValues ga = a->gradients(), gb = b->gradients();
    for (std::size_t k = 0; k < ga.size(); ++k)
      for (std::size_t i = 0; i < ga[k].size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(ga[k][i] - gb[k][i]));
        max_grad = std::max(max_grad, std::fabs(ga[k][i]));
      }
  }
  EXPECT_GT(max_diff, 0.0);
  EXPECT_LT(max_diff, 0.05 * max_grad);
}

TEST(Lanes, ReproducibleAndEvaluationHasNoSideEffects) {
  const ModelConfig m = spiral_model();
  const InitialWeights w = default_initial_weights(m, 6);
  LaneConfig c = lane("custom");
  c.recipe.weights.format = e5m2();
  c.recipe.activations = {bf16(), Rounding::stochastic};
  c.recipe.gradients = {make_format(6, 9), Rounding::stochastic};
  c.recipe.update.rounding = Rounding::stochastic;
  for (const std::string recipe : {"fp16-amp", "fp8", "custom"}) {
    const LaneConfig config = recipe == "custom" ? c : lane(recipe);
    auto a = make_lane(config, m, w), b = make_lane(config, m, w);
    for (int s = 0; s < 8; ++s) {
      const Batch batch = random_batch(static_cast<unsigned>(s));
      const double la = a->step(batch, 0.1, false).loss;
      b->evaluate(random_batch(99, 1.0f, 100));  // must not disturb b's streams, FP8 histories or weights
      ASSERT_EQ(la, b->step(batch, 0.1, false).loss) << recipe << " step " << s;
    }
    EXPECT_EQ(a->weights(), b->weights()) << recipe;
  }
  LaneConfig other = c;
  other.seed = 6;
  auto x = make_lane(c, m, w), y = make_lane(other, m, w);
  for (int s = 0; s < 3; ++s) {
    x->step(random_batch(static_cast<unsigned>(s)), 0.1, false);
    y->step(random_batch(static_cast<unsigned>(s)), 0.1, false);
  }
  EXPECT_NE(x->weights(), y->weights());  // another seed, other stochastic roundings
}

TEST(Lanes, SkippedStepsLeaveWeightsAlone) {
  const ModelConfig m = spiral_model();
  const InitialWeights w = default_initial_weights(m, 7);
  LaneConfig c = lane("fp16-amp");
  c.loss_scale.type = LossScaleConfig::Type::dynamic;
  auto l = make_lane(c, m, w);
  const auto before = l->weights();
  const StepResult r = l->step(random_batch(1, 1e5f), 0.1, false);  // inputs beyond 65504: inf in fp16
  EXPECT_TRUE(r.found_inf);
  EXPECT_TRUE(r.skipped);
  EXPECT_TRUE(r.scale_backed_off);
  EXPECT_EQ(r.scale_after, 32768.0f);
  EXPECT_FALSE(r.first_nonfinite.empty());
  EXPECT_EQ(l->weights(), before);
  EXPECT_FALSE(r.weights_nonfinite);
  auto unscaled = make_lane(lane("fp16-amp"), m, w);  // without a scaler NaN reaches the weights
  EXPECT_TRUE(unscaled->step(random_batch(1, 1e5f), 0.1, false).weights_nonfinite);
}

TEST(Lanes, RecipeChecks) {
  LaneConfig c = lane("fp32");  // float32 GEMM inputs have no Hopper tensor-core model (TF32 is a custom recipe)
  c.recipe.mma = Accumulation::h100;
  EXPECT_THROW(make_lane(c, spiral_model(), default_initial_weights(spiral_model(), 1)), std::invalid_argument);
  LaneConfig wide = lane("custom");
  wide.recipe.activations.format = make_format(9, 10);
  EXPECT_NE(check_recipe(wide.recipe).find("formats.activations"), std::string::npos);
}

}  // namespace
