// The gpt model: nanoGPT's parameter names, shapes and init, the activations autocast keeps in float32, the
// attention catalogue, and the experiment file's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "model_builders.hpp"
#include "sim/lane.hpp"
#include "sim/rounding.hpp"

using namespace mpscope::sim;
using namespace mpscope::test;

namespace {

// A gpt model is nanoGPT's: its parameters' names, shapes and init; which activations autocast keeps in fp32.
TEST(GptModel, NanoGptNamesShapesInitAndPromotedActivations) {
  const ModelConfig m = gpt(16, 32, 64, 4, 2);
  const Graph g = build_graph(m);
  std::vector<std::string> names;
  for (const Node& n : g.nodes)
    for (const ParamInfo& p : n.params) names.push_back(p.name + " " + shape_text(p.shape));
  const std::vector<std::string> block0 = {
      "transformer.h.0.ln_1.weight (64,)",           "transformer.h.0.ln_1.bias (64,)",
      "transformer.h.0.attn.c_attn.weight (192, 64)", "transformer.h.0.attn.c_attn.bias (192,)",
      "transformer.h.0.attn.c_proj.weight (64, 64)",  "transformer.h.0.attn.c_proj.bias (64,)",
      "transformer.h.0.ln_2.weight (64,)",           "transformer.h.0.ln_2.bias (64,)",
      "transformer.h.0.mlp.c_fc.weight (256, 64)",    "transformer.h.0.mlp.c_fc.bias (256,)",
      "transformer.h.0.mlp.c_proj.weight (64, 256)",  "transformer.h.0.mlp.c_proj.bias (64,)"};
  ASSERT_EQ(names.size(), 2 + 2 * block0.size() + 3);
  EXPECT_EQ(names[0], "transformer.wte.weight (16, 64)");
  EXPECT_EQ(names[1], "transformer.wpe.weight (32, 64)");
  for (std::size_t i = 0; i < block0.size(); ++i) EXPECT_EQ(names[2 + i], block0[i]);
  EXPECT_EQ(names[names.size() - 3], "transformer.ln_f.weight (64,)");
  EXPECT_EQ(names.back(), "lm_head.weight (16, 64)");
  EXPECT_TRUE(g.tokens);
  EXPECT_EQ(g.nodes.back().out_shape, (std::vector<std::int64_t>{32, 16}));
  // nanoGPT's init: N(0, 0.02), c_proj N(0, 0.02/sqrt(2·n_layer)), biases 0, LayerNorm 1 and 0
  const InitialWeights w = default_initial_weights(g, 3);
  const auto std_of = [&](const std::string& name) {
    double sum = 0, squares = 0;
    for (double v : w.at(name).values) sum += v, squares += v * v;
    const double n = static_cast<double>(w.at(name).values.size());
    EXPECT_NEAR(sum / n, 0.0, 4 * std::sqrt(squares / n / n)) << name;  // mean within 4 standard errors
    return std::sqrt(squares / n);
  };
  EXPECT_NEAR(std_of("transformer.h.0.mlp.c_fc.weight"), 0.02, 0.0005);
  EXPECT_NEAR(std_of("transformer.wte.weight"), 0.02, 0.002);
  EXPECT_NEAR(std_of("transformer.h.1.mlp.c_proj.weight"), 0.02 / std::sqrt(4.0), 0.0003);
  for (double v : w.at("transformer.h.0.attn.c_attn.bias").values) ASSERT_EQ(v, 0.0);
  for (double v : w.at("transformer.ln_f.weight").values) ASSERT_EQ(v, 1.0);
  // fp32 under autocast: the embeddings, the residual stream (every add); LayerNorms read by a Linear fold its cast
  for (const Node& n : g.nodes) {
    const bool stream = n.spec.type == Type::embedding || n.spec.type == Type::position_embedding || n.spec.type == Type::add;
    EXPECT_EQ(n.promoted, stream) << n.module;
    EXPECT_EQ(n.promoted_input, n.spec.type == Type::layer_norm || n.spec.type == Type::position_embedding) << n.module;
  }
  // the catalogue: each head's attention scores and the probabilities, in the c_attn group
  std::vector<std::string> scores;
  for (const TensorInfo& t : g.tensors)
    if (t.kind == "attention_scores" || t.kind == "attention_probs") scores.push_back(t.name);
  ASSERT_EQ(scores.size(), 10u);
  EXPECT_EQ(scores[0], "transformer.h.0.attn.head0.scores");
  EXPECT_EQ(scores[4], "transformer.h.0.attn.probs");
}

TEST(GptModel, ConfigErrorsNameTheKey) {
  const json ok = json::parse(R"({"type": "gpt", "vocab_size": 8, "block_size": 4, "n_embd": 8, "n_head": 2, "n_layer": 1})");
  json heads = ok;
  heads["n_head"] = 3;
  expect_contains(experiment_error(heads), {"model.n_head", "3 does not divide n_embd 8"});
  json zero = ok;
  zero["n_layer"] = 0;
  expect_contains(experiment_error(zero), {"model.n_layer", "positive"});
  json typo = ok;
  typo["n_embed"] = 8;
  expect_contains(experiment_error(typo), {"n_embed"});
  // the spiral's real-valued inputs do not fit a token model
  try {
    prepare(parse_experiment(experiment_with(ok), "."));
    ADD_FAILURE() << "expected an error";
  } catch (const ConfigError& e) {
    expect_contains(e.what(), {"the model reads token ids", "this data holds real values"});
  }
}

// Under fp16-amp the promoted values stay float32 (a LayerNorm that an add also reads, the sum), the narrow ones
// are fp16 values (the gradient at a Linear's output), and the catalogue says so.
TEST(GptModel, Fp16AmpKeepsPromotedValuesInFloat32) {
  const ModelConfig m = sequential({5}, {embedding(7, 6), positions(6), of(Type::layer_norm), linear(18), attention(3), add(2),
                                         act(Activation::gelu_tanh), linear(4)},
                                   LossType::cross_entropy);
  const Graph g = build_graph(m);
  EXPECT_TRUE(g.nodes[2].promoted);   // the LayerNorm: an add reads it too
  EXPECT_TRUE(g.nodes[3].promoted_input);
  EXPECT_TRUE(g.nodes[5].promoted);   // the add
  EXPECT_TRUE(g.nodes[6].promoted);   // GELU keeps its input's type
  EXPECT_TRUE(g.nodes[7].promoted_input);
  LaneConfig c;
  c.name = "fp16-amp";
  c.recipe = recipe_preset("fp16-amp");
  auto lane = make_lane(c, m, default_initial_weights(g, 4));
  Batch b;
  b.x = Matrix<float>(3, 5);
  for (std::size_t i = 0; i < b.x.data.size(); ++i) b.x.data[i] = static_cast<float>(i % 7);
  for (int i = 0; i < 15; ++i) b.labels.push_back(i % 4);
  const StepResult r = lane->step(b, 0.01, true);
  ASSERT_TRUE(std::isfinite(r.loss));
  const auto format_of = [&](const std::string& name) {
    for (const TensorInfo& t : lane->tensors())
      if (t.name == name) return t.format;
    ADD_FAILURE() << name;
    return std::string();
  };
  EXPECT_EQ(format_of("2.activation"), "fp32");
  EXPECT_EQ(format_of("1.activation"), "fp32");
  EXPECT_EQ(format_of("3.activation_grad"), "fp16");
  const auto values = [&](const std::string& name) {
    std::vector<double> v;
    for (std::size_t i = 0; i < lane->tensors().size(); ++i)
      if (lane->tensors()[i].name == name) {
        EXPECT_TRUE(lane->read_tensor(i, v));
      }
    return v;
  };
  const auto fp16_values = [](const std::vector<double>& v) {
    return std::count_if(v.begin(), v.end(), [](double x) { return round(x, fp16()) == x; });
  };
  const std::vector<double> norm = values("2.activation"), grad = values("3.activation_grad");
  ASSERT_EQ(norm.size(), 90u);
  EXPECT_LT(fp16_values(norm), 45) << "the LayerNorm's output is rounded to float32, not fp16";
  EXPECT_EQ(fp16_values(grad), static_cast<std::ptrdiff_t>(grad.size())) << "the Linear's output gradient is fp16";
}

// "attention_scores": "float32" forms the same scores from the same fp16 q and k with an fp32 GEMM: they are
// float32 values (fp16 ones in the autocast lane) and differ from the autocast lane's by fp16's two roundings (of
// q·kᵀ and of its scaling) at most; the rest of the step runs on.
TEST(GptModel, Float32AttentionScoresAreTheSameScoresInFloat32) {
  const ModelConfig m = sequential({5}, {embedding(7, 6), positions(6), of(Type::layer_norm), linear(18), attention(3), linear(4)},
                                   LossType::cross_entropy);
  const Graph g = build_graph(m);
  Batch b;
  b.x = Matrix<float>(3, 5);
  for (std::size_t i = 0; i < b.x.data.size(); ++i) b.x.data[i] = static_cast<float>(i % 7);
  for (int i = 0; i < 15; ++i) b.labels.push_back(i % 4);
  std::map<bool, std::vector<double>> scores;
  for (bool upcast : {false, true}) {
    LaneConfig c;
    c.name = upcast ? "upcast" : "autocast";
    c.recipe = recipe_preset("fp16-amp");
    c.recipe.float32_attention_scores = upcast;
    auto lane = make_lane(c, m, default_initial_weights(g, 4));
    const StepResult r = lane->step(b, 0.01, true);
    ASSERT_TRUE(std::isfinite(r.loss)) << c.name;
    for (std::size_t i = 0; i < lane->tensors().size(); ++i) {
      const TensorInfo& t = lane->tensors()[i];
      if (t.kind != "attention_scores") continue;
      EXPECT_EQ(t.format, upcast ? "fp32" : "fp16") << t.name;
      std::vector<double> v;
      ASSERT_TRUE(lane->read_tensor(i, v));
      scores[upcast].insert(scores[upcast].end(), v.begin(), v.end());
    }
  }
  const std::vector<double>&narrow = scores[false], &wide = scores[true];
  ASSERT_EQ(narrow.size(), 3u * 3 * 15);  // 3 heads, 3 samples, 5·6/2 causal positions
  ASSERT_EQ(wide.size(), narrow.size());
  int not_fp16 = 0;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    EXPECT_EQ(round(narrow[i], fp16()), narrow[i]) << i;
    EXPECT_EQ(round(wide[i], fp32()), wide[i]) << i;
    not_fp16 += round(wide[i], fp16()) != wide[i];
    EXPECT_LE(std::abs(narrow[i] - wide[i]), 0x1p-10 * std::abs(wide[i]) + 0x1p-24) << i;
  }
  EXPECT_GT(not_fp16, static_cast<int>(wide.size()) / 2);
}

}  // namespace
