// Experiment files: every error names the key path and what was expected, unknown keys get a suggestion, shapes
// are checked before training; defaults are resolved.
#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

#include "sim/experiment.hpp"

using namespace mpscope::sim;
using json = nlohmann::json;

namespace {

json base() {
  return json::parse(R"({
    "name": "t", "seed": 1, "steps": 10, "batch_size": 16,
    "data": {"source": "spiral", "classes": 3, "points_per_class": 20, "noise": 0.2},
    "model": {"type": "mlp", "layers": [2, 8, 3], "activation": "relu"},
    "loss": "cross_entropy",
    "optimizer": {"type": "sgd", "lr": 0.1},
    "lanes": [{"name": "fp32", "recipe": "fp32", "reference": true},
              {"name": "fp16", "recipe": "fp16-amp", "loss_scale": {"type": "dynamic"}}],
    "record": {"every": 1}})");
}

std::string error_of(const json& j) {
  try {
    const Experiment e = parse_experiment(j, ".");
    prepare(e);
  } catch (const ConfigError& err) {
    return err.what();
  }
  return "no error";
}

TEST(Experiment, ParsesAndResolvesDefaults) {
  const Experiment e = parse_experiment(base(), ".");
  EXPECT_EQ(e.lanes.size(), 2u);
  EXPECT_EQ(e.reference, 0);
  EXPECT_EQ(e.lanes[1].lane.loss_scale.type, LossScaleConfig::Type::dynamic);
  EXPECT_EQ(e.lanes[1].lane.loss_scale.init_scale, 65536.0);
  const json r = resolved_json(e);
  EXPECT_EQ(r["lanes"][1]["loss_scale"]["growth_interval"], 2000);
  EXPECT_EQ(r["lanes"][1]["formats"]["activations"], "fp16");
  EXPECT_EQ(r["lanes"][0]["mma"], "fp32");
  EXPECT_EQ(r["lanes"][0]["attention_scores"], "autocast");
  EXPECT_EQ(r["optimizer"]["momentum"], 0.0);
  EXPECT_EQ(r["record"]["divergence_threshold"], 0.1);
  EXPECT_EQ(r["data"]["scale"], 1.0);
  // the resolved form parses back to the same experiment
  const Experiment again = parse_experiment(r, ".");
  EXPECT_EQ(resolved_json(again), r);
}

// "loss": a name, or {"type", "logits"} (docs/recipes.md): autocast by default, resolved as an object.
TEST(Experiment, LossTakesTheLogitsPrecision) {
  const Experiment plain = parse_experiment(base(), ".");
  EXPECT_EQ(plain.model.loss, LossType::cross_entropy);
  EXPECT_EQ(plain.model.loss_logits, LossLogits::autocast);
  EXPECT_EQ(resolved_json(plain)["loss"], json::parse(R"({"type": "cross_entropy", "logits": "autocast"})"));
  json j = base();
  j["loss"] = json::parse(R"({"type": "cross_entropy", "logits": "fp32"})");
  const Experiment cast_first = parse_experiment(j, ".");
  EXPECT_EQ(cast_first.model.loss_logits, LossLogits::fp32);
  EXPECT_EQ(resolved_json(parse_experiment(resolved_json(cast_first), ".")), resolved_json(cast_first));
  j["loss"] = json::parse(R"({"type": "mse"})");
  EXPECT_EQ(parse_experiment(j, ".").model.loss, LossType::mse);
  EXPECT_EQ(resolved_json(parse_experiment(j, "."))["loss"], json::parse(R"({"type": "mse"})"));
  j["loss"] = json::parse(R"({"type": "cross_entropy", "logits": "fp8"})");
  EXPECT_NE(error_of(j).find("loss.logits: 'fp8' is not one of autocast, fp32"), std::string::npos) << error_of(j);
  j["loss"] = json::parse(R"({"type": "mse", "logits": "fp32"})");  // MSE is computed in fp32 anyway
  EXPECT_NE(error_of(j).find("loss.logits: unknown key"), std::string::npos) << error_of(j);
  j["loss"] = "hinge";
  EXPECT_NE(error_of(j).find("loss: 'hinge' is not one of cross_entropy, mse"), std::string::npos) << error_of(j);
}

TEST(Experiment, ErrorsNameTheKeyPath) {
  json j = base();
  j["lanes"][1]["loss_scale"]["type"] = "dynamc";
  EXPECT_NE(error_of(j).find("lanes[1].loss_scale.type: 'dynamc' is not one of none, static, dynamic (did you mean 'dynamic'?)"),
            std::string::npos)
      << error_of(j);
  j = base();
  j["lanes"][1]["loss_scal"] = json::object();
  EXPECT_NE(error_of(j).find("lanes[1].loss_scal: unknown key (did you mean 'loss_scale'?)"), std::string::npos) << error_of(j);
  j = base();
  j["optimizer"]["lr"] = "fast";
  EXPECT_NE(error_of(j).find("optimizer.lr: expected a number, found a string"), std::string::npos);
  // what PyTorch's optimizers refuse (issue 17: negative momentum, weight decay and eps were accepted)
  for (const auto& [type, key] : {std::pair{"sgd", "momentum"}, std::pair{"sgd", "weight_decay"},
                                  std::pair{"adam", "eps"}, std::pair{"adamw", "weight_decay"}}) {
    j = base();
    j["optimizer"] = {{"type", type}, {key, -0.5}};
    EXPECT_NE(error_of(j).find(std::string("optimizer.") + key + ": must not be negative"), std::string::npos)
        << type << ": " << error_of(j);
  }
  // integers checked before narrowing to int (issue 17: 2^32 + 1 became 1)
  j = base();
  j["lanes"][1]["loss_scale"]["hysteresis"] = (std::int64_t{1} << 32) + 1;
  EXPECT_NE(error_of(j).find("lanes[1].loss_scale.hysteresis: must be 1..2147483647, got 4294967297"), std::string::npos)
      << error_of(j);
  j = base();
  j["lanes"][1] = {{"name", "f8"}, {"recipe", "fp8"}, {"fp8", {{"history", (std::int64_t{1} << 32) + 1}}}};
  EXPECT_NE(error_of(j).find("lanes[1].fp8.history: must be 1..65536 steps, got 4294967297"), std::string::npos) << error_of(j);
  j["lanes"][1]["fp8"] = {{"margin", 200}};
  EXPECT_NE(error_of(j).find("lanes[1].fp8.margin: must be -127..127"), std::string::npos) << error_of(j);
  j = base();
  j["steps"] = 2.5;
  EXPECT_NE(error_of(j).find("steps: expected an integer"), std::string::npos);
  j["steps"] = std::int64_t{1'000'000'000'000};  // (issue 17: 1e12 steps started a run that would not end)
  EXPECT_NE(error_of(j).find("steps: must be 1..1000000000, got 1000000000000"), std::string::npos) << error_of(j);
  j = base();
  j.erase("lanes");
  EXPECT_NE(error_of(j).find("lanes: is required"), std::string::npos);
  j = base();
  j["lanes"][1]["name"] = "fp32";
  EXPECT_NE(error_of(j).find("lanes[1].name: 'fp32' is used by another lane"), std::string::npos);
  j = base();
  j["lanes"][1]["reference"] = true;
  EXPECT_NE(error_of(j).find("already the reference"), std::string::npos);
  j = base();
  j["lanes"][1]["recipe"] = "fp17";
  EXPECT_NE(error_of(j).find("lanes[1].recipe: 'fp17' is not one of"), std::string::npos);
  j = base();
  j["lanes"][1]["mma"] = "h100";
  j["lanes"][1]["recipe"] = "fp32";
  EXPECT_NE(error_of(j).find("lanes[1].mma: the h100 model covers GEMMs of fp16, bf16 or tf32 inputs and FP8 (e4m3fn, e5m2); "
                             "this recipe's GEMMs take fp32: no Hopper tensor-core model"),
            std::string::npos) << error_of(j);
  j = base();
  j["lanes"][1] = {{"name", "c"}, {"recipe", "custom"}, {"mma", "h100"}, {"formats", {{"weights", "fp16"}}}};
  EXPECT_NE(error_of(j).find("lanes[1].mma: the h100 model covers GEMMs of fp16, bf16 or tf32 inputs and FP8"), std::string::npos)
      << error_of(j);
  j["lanes"][1]["formats"] = {{"weights", "tf32"}, {"activations", "tf32"}, {"gradients", "tf32"}};
  EXPECT_EQ(error_of(j), "no error");  // tf32 tensor cores
  j["lanes"][1] = {{"name", "f8"}, {"recipe", "fp8"}, {"fp8", {{"accumulation", "fast"}}}};
  EXPECT_NE(error_of(j).find("lanes[1].fp8.accumulation: describes the h100 model's FP8 GEMMs"), std::string::npos) << error_of(j);
  j["lanes"][1]["mma"] = "h100";
  EXPECT_EQ(error_of(j), "no error");
  EXPECT_EQ(resolved_json(parse_experiment(j, "."))["lanes"][1]["fp8"]["accumulation"], "fast");
  j = base();
  j["lanes"][1]["recipe"] = "fp16-pure";
  j["lanes"][1]["attention_scores"] = "float32";
  EXPECT_NE(error_of(j).find("lanes[1].attention_scores: \"float32\" keeps the scores in the master format, which is fp16"),
            std::string::npos) << error_of(j);
  j["lanes"][1]["attention_scores"] = "fp64";
  EXPECT_NE(error_of(j).find("lanes[1].attention_scores: 'fp64' is not one of"), std::string::npos) << error_of(j);
  j = base();
  j["lanes"][1]["recipe"] = "custom";
  j["lanes"][1]["formats"] = {{"activations", "e9m10"}};
  EXPECT_NE(error_of(j).find("lanes[1].formats.activations: e9m10 does not fit float32 storage"), std::string::npos) << error_of(j);
  j["lanes"][1]["formats"] = {{"activations", "fp99"}};
  EXPECT_NE(error_of(j).find("lanes[1].formats.activations: unknown format 'fp99'"), std::string::npos) << error_of(j);
  j = base();
  j["lanes"][0]["formats"] = {{"weights", "fp16"}};
  EXPECT_NE(error_of(j).find("lanes[0].formats: only a \"custom\" recipe takes formats"), std::string::npos);
  j = base();
  j["lanes"][1]["rounding"] = {{"update", "sideways"}};
  EXPECT_NE(error_of(j).find("lanes[1].rounding.update: 'sideways' is not one of"), std::string::npos);
  j = base();
  j["model"]["layers"] = {2, 0, 3};
  EXPECT_NE(error_of(j).find("model.layers[1]: expected a positive integer width"), std::string::npos);
  j = base();
  j["data"]["source"] = "npz";
  j["data"]["path"] = "missing.npz";
  EXPECT_NE(error_of(j).find("data.path: ./missing.npz does not exist"), std::string::npos) << error_of(j);
  EXPECT_NE(error_of(json::array()).find("expected an object, found an array"), std::string::npos);
}

TEST(Experiment, GpuLaneKeysAreChecked) {
  json j = base();
  j["lanes"][1]["gemm"] = "exact";
  EXPECT_NE(error_of(j).find("lanes[1].gemm: applies to gpu lanes only"), std::string::npos) << error_of(j);
  j["lanes"][1]["backend"] = "gpu";
  j["lanes"][1]["gemm"] = "fastest";
  EXPECT_NE(error_of(j).find("lanes[1].gemm: 'fastest' is not one of fast, exact"), std::string::npos) << error_of(j);
  j["lanes"][1]["gemm"] = "fast";
  j["lanes"][1]["mma"] = "h100";
  EXPECT_EQ(error_of(j), "no error");  // cuBLASLt set up to compute the model's bits
  j["lanes"][1]["gemm"] = "exact";
  EXPECT_EQ(error_of(j), "no error");
  j["lanes"][1]["rounding"] = {{"update", "stochastic"}};
  EXPECT_NE(error_of(j).find("lanes[1].rounding: gpu lanes round to nearest-even only"), std::string::npos) << error_of(j);
  j = base();
  j["lanes"][1] = {{"name", "f8"}, {"recipe", "fp8"}, {"backend", "gpu"}};
  EXPECT_EQ(error_of(j), "no error");
  j["lanes"][1]["recipe"] = "custom";
  EXPECT_NE(error_of(j).find("lanes[1].recipe: the custom recipe has no GPU lane"), std::string::npos) << error_of(j);
  j["lanes"][1] = {{"name", "b"}, {"recipe", "bf16-amp"}, {"backend", "gpu"}, {"gemm", "exact"}, {"mma", "h100"}};
  EXPECT_NE(error_of(j).find("lanes[1].mma: exact gpu lanes run the h100 model for fp16 GEMMs only"), std::string::npos)
      << error_of(j);
  j["lanes"][1]["gemm"] = "fast";
  EXPECT_EQ(error_of(j), "no error");
  j["lanes"][1] = {{"name", "f"}, {"recipe", "fp32"}, {"backend", "gpu"}, {"mma", "h100"}};
  EXPECT_NE(error_of(j).find("lanes[1].mma: the h100 model covers GEMMs of fp16, bf16 or tf32 inputs"), std::string::npos)
      << error_of(j);
  j["lanes"][1] = {{"name", "b"}, {"recipe", "bf16-amp"}, {"backend", "gpu"}, {"gemm", "exact"}, {"mma", "h100"}};
  j["lanes"][1]["backend"] = "cpu";
  j["lanes"][1].erase("gemm");
  EXPECT_EQ(error_of(j), "no error");  // on the CPU bf16 has its Hopper model
  // resolved_json names the GEMM mode of gpu lanes only.
  j = base();
  j["lanes"][1]["backend"] = "gpu";
  const Experiment e = parse_experiment(j, ".");
  const json resolved = resolved_json(e);
  EXPECT_EQ(resolved["lanes"][1]["gemm"], "fast");
  EXPECT_FALSE(resolved["lanes"][0].contains("gemm"));
}

TEST(Experiment, ShapeMismatchesAreCaughtBeforeTraining) {
  json j = base();
  j["model"]["layers"] = {3, 8, 3};
  EXPECT_NE(error_of(j).find("model.layers[0]: the data has 2 input features, the model takes 3"), std::string::npos);
  j = base();
  j["model"]["layers"] = {2, 8, 4};
  EXPECT_NE(error_of(j).find("model.layers[2]: the model has 4 outputs, the data has 3 classes"), std::string::npos);
  j = base();
  j["batch_size"] = 100;
  EXPECT_NE(error_of(j).find("batch_size: 100 is larger than the dataset (60 rows)"), std::string::npos);
  j = base();
  j["data"] = {{"source", "sine"}, {"points", 50}};
  j["model"]["layers"] = {1, 8, 1};
  EXPECT_NE(error_of(j).find("loss: cross_entropy needs class labels"), std::string::npos);
  j["loss"] = "mse";
  EXPECT_EQ(error_of(j), "no error");
}

// "source": "images": parsed with defaults, resolved (and parsed back), prepared with its sample shape and scale.
TEST(Experiment, ImagesSource) {
  json j = base();
  j["data"] = json::parse(R"({"source": "images", "classes": 5, "points_per_class": 12, "channels": 3, "height": 8,
                              "width": 6, "noise": 0.05, "scale": 2.0})");
  j["model"]["layers"] = {3 * 8 * 6, 8, 5};
  const Experiment e = parse_experiment(j, ".");
  EXPECT_EQ(e.data.source, "images");
  EXPECT_EQ(e.data.classes, 5);
  EXPECT_EQ(e.data.points_per_class, 12);
  EXPECT_EQ(e.data.channels, 3);
  EXPECT_EQ(e.data.height, 8);
  EXPECT_EQ(e.data.width, 6);
  EXPECT_EQ(e.data.noise, 0.05);
  EXPECT_EQ(e.data.scale, 2.0);
  const json r = resolved_json(e);
  EXPECT_EQ(r["data"], json::parse(R"({"source": "images", "classes": 5, "points_per_class": 12, "channels": 3,
                                        "height": 8, "width": 6, "noise": 0.05, "scale": 2.0})"));
  EXPECT_EQ(resolved_json(parse_experiment(r, ".")), r);
  const Prepared p = prepare(e);
  EXPECT_EQ(p.data.sample_shape, (std::vector<std::int64_t>{3, 8, 6}));
  EXPECT_EQ(p.data.size(), 60);
  EXPECT_EQ(p.data.classes, 5);
  const Dataset unscaled = make_images(5, 12, 3, 8, 6, 0.05, e.seed);  // the seed is the experiment's
  ASSERT_EQ(p.data.x.data.size(), unscaled.x.data.size());
  for (std::size_t i = 0; i < unscaled.x.data.size(); ++i) EXPECT_EQ(p.data.x.data[i], unscaled.x.data[i] * 2.0f);

  j["data"] = {{"source", "images"}};  // the defaults
  j["model"]["layers"] = {256, 8, 4};
  j["batch_size"] = 64;
  const json defaults = resolved_json(parse_experiment(j, "."))["data"];
  EXPECT_EQ(defaults, json::parse(R"({"source": "images", "classes": 4, "points_per_class": 200, "channels": 1,
                                       "height": 16, "width": 16, "noise": 0.1, "scale": 1.0})"));
  EXPECT_EQ(error_of(j), "no error");
  j["model"]["layers"] = {16, 8, 4};
  EXPECT_NE(error_of(j).find("model.layers[0]: the data has 256 input features"), std::string::npos) << error_of(j);

  const auto error_with = [&](const json& data) {
    json k = base();
    k["data"] = data;
    return error_of(k);
  };
  EXPECT_NE(error_with({{"source", "images"}, {"classes", 1}}).find("data.classes: must be 2..36, got 1"), std::string::npos)
      << error_with({{"source", "images"}, {"classes", 1}});
  EXPECT_NE(error_with({{"source", "images"}, {"classes", 40}}).find("data.classes: must be 2..36, got 40"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"height", 3}}).find("data.height: must be at least 4, got 3"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"width", 0}}).find("data.width: must be positive, got 0"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"channels", -2}}).find("data.channels: must be positive, got -2"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"noise", -1}}).find("data.noise: must not be negative"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"height", 2.5}}).find("data.height: expected an integer"), std::string::npos);
  EXPECT_NE(error_with({{"source", "images"}, {"features", 2}}).find("data.features: unknown key"), std::string::npos)
      << error_with({{"source", "images"}, {"features", 2}});
  const std::string big = error_with({{"source", "images"}, {"points_per_class", 1 << 24}, {"channels", 3}, {"height", 64}, {"width", 64}});
  EXPECT_NE(big.find("data.points_per_class: classes * points_per_class * channels * height * width = 4 * 16777216 * 3 * "
                     "64 * 64 is more than 2^31 values"),
            std::string::npos)
      << big;
  EXPECT_NE(error_with({{"source", "spiral"}, {"channels", 3}}).find("data.channels: unknown key"), std::string::npos);
  // generated datasets of any source: sizes whose product overflows are refused, not crashed on (issue 17)
  const std::int64_t two_32 = std::int64_t{1} << 32;
  const std::string spiral = error_with({{"source", "spiral"}, {"classes", two_32}, {"points_per_class", two_32}});
  EXPECT_NE(spiral.find("data.points_per_class: classes * points_per_class * 2 features = 4294967296 * 4294967296 * 2 "
                        "is more than 2^31 values"),
            std::string::npos)
      << spiral;
  EXPECT_NE(error_with({{"source", "blobs"}, {"features", two_32}}).find("data.points_per_class: classes * points_per_class "
                                                                         "* features"),
            std::string::npos);
  for (const char* source : {"circles", "xor", "sine"})
    EXPECT_NE(error_with({{"source", source}, {"points", two_32}}).find("data.points: points"), std::string::npos) << source;
}

TEST(Experiment, JsonSyntaxErrorsGiveLineAndColumn) {
  const auto file = std::filesystem::temp_directory_path() / "mpscope_bad_experiment.json";
  std::ofstream(file) << "{\n  \"name\": \"x\",\n  \"steps\": 10,,\n}\n";
  try {
    load_experiment(file);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("mpscope_bad_experiment.json:3:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
  }
  std::filesystem::remove(file);
}

TEST(Experiment, SelectLanes) {
  const Experiment e = parse_experiment(base(), ".");
  const Experiment one = select_lanes(e, {"fp16"});
  EXPECT_EQ(one.lanes.size(), 1u);
  EXPECT_EQ(one.reference, -1);  // the reference was left out
  try {
    select_lanes(e, {"fp1"});
    FAIL();
  } catch (const ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("no lane 'fp1' (did you mean 'fp16'?)"), std::string::npos) << err.what();
  }
}

}  // namespace

namespace {

// Sequential models: the model section parsed and written back; GPU lanes run them in every recipe.
TEST(Experiment, SequentialModelsAndWhatGpuLanesRefuse) {
  json j = base();
  j["data"] = {{"source", "images"}, {"classes", 3}, {"points_per_class", 20}, {"height", 8}, {"width", 8}};
  j["model"] = json::parse(R"({"type": "sequential", "input": [1, 8, 8], "layers": [
      {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "silu"},
      {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 3}]})");
  j["batch_size"] = 16;
  EXPECT_EQ(error_of(j), "no error");
  const Experiment e = parse_experiment(j, ".");
  EXPECT_EQ(resolved_json(e)["model"]["layers"][2], json::parse(R"({"type": "maxpool2d", "kernel_size": 2, "stride": 2})"));
  EXPECT_EQ(parse_experiment(resolved_json(e), ".").model.sequence.size(), 5u);
  json gpu = j;
  gpu["lanes"][1]["backend"] = "gpu";
  EXPECT_EQ(error_of(gpu), "no error");  // GPU lanes run the graph
  gpu["lanes"][1]["recipe"] = "fp8";
  gpu["lanes"][1].erase("loss_scale");
  EXPECT_EQ(error_of(gpu), "no error");  // every recipe, both GEMM modes
  json silu = base();
  silu["model"]["activation"] = "silu";
  silu["lanes"][1]["backend"] = "gpu";
  EXPECT_EQ(error_of(silu), "no error");  // an mlp with silu runs on the GPU
  json objects = base();
  objects["model"]["layers"] = json::parse(R"([{"type": "linear", "out_features": 3}])");
  EXPECT_NE(error_of(objects).find("model.layers[0]: an mlp's layers are widths; layers given as objects need \"type\": \"sequential\""),
            std::string::npos) << error_of(objects);
}

}  // namespace

namespace {

// Token data: "source": "tokens" (a seeded task) and "source": "text" (a file, character by character), parsed with
// defaults, resolved (and parsed back), prepared for a gpt model; errors name the key or the file.
json token_experiment(const json& data, std::int64_t vocab, std::int64_t block) {
  json j = base();
  j["data"] = data;
  j["model"] = {{"type", "gpt"}, {"vocab_size", vocab}, {"block_size", block}, {"n_embd", 8}, {"n_head", 2}, {"n_layer", 1}};
  return j;
}

TEST(Experiment, TokensSource) {
  const json j = token_experiment(json::parse(R"({"source": "tokens", "task": "modular_add", "vocab_size": 12,
                                                   "length": 10, "sequences": 40})"), 12, 10);
  const Experiment e = parse_experiment(j, ".");
  EXPECT_EQ(e.data.source, "tokens");
  EXPECT_EQ(e.data.task, "modular_add");
  EXPECT_EQ(e.data.vocab_size, 12);
  EXPECT_EQ(e.data.length, 10);
  EXPECT_EQ(e.data.sequences, 40);
  const json r = resolved_json(e);
  EXPECT_EQ(r["data"], json::parse(R"({"source": "tokens", "task": "modular_add", "vocab_size": 12, "length": 10,
                                        "sequences": 40})"));
  EXPECT_EQ(resolved_json(parse_experiment(r, ".")), r);
  const Prepared p = prepare(e);
  const Dataset direct = make_token_task("modular_add", 12, 10, 40, e.seed);  // the seed is the experiment's
  EXPECT_EQ(p.data.x.data, direct.x.data);
  EXPECT_EQ(p.data.labels, direct.labels);
  EXPECT_EQ(p.data.sample_shape, (std::vector<std::int64_t>{10}));
  EXPECT_EQ(p.data.label_positions, 10);
  EXPECT_EQ(p.data.vocab, 12);

  const json defaults = token_experiment({{"source", "tokens"}}, 16, 32);
  EXPECT_EQ(resolved_json(parse_experiment(defaults, "."))["data"],
            json::parse(R"({"source": "tokens", "task": "markov", "vocab_size": 16, "length": 32, "sequences": 1024})"));
  EXPECT_EQ(error_of(defaults), "no error");

  const auto error_with = [](const json& data) { return error_of(token_experiment(data, 16, 32)); };
  EXPECT_EQ(error_with({{"source", "tokens"}, {"task", "copy"}, {"vocab_size", 2}}),
            "data.vocab_size: the copy task needs at least 3 tokens (a separator and at least two content tokens), got 2");
  EXPECT_EQ(error_with({{"source", "tokens"}, {"task", "modular_add"}, {"length", 3}}),
            "data.length: the modular_add task needs at least 4 tokens per sample (one whole problem \"a + b = c\"), got 3");
  EXPECT_EQ(error_with({{"source", "tokens"}, {"vocab_size", 70000}}), "data.vocab_size: at most 65536 tokens, got 70000");
  EXPECT_EQ(error_with({{"source", "tokens"}, {"length", 0}}), "data.length: must be positive, got 0");
  EXPECT_EQ(error_with({{"source", "tokens"}, {"sequences", -5}}), "data.sequences: must be positive, got -5");
  EXPECT_NE(error_with({{"source", "tokens"}, {"task", "reverso"}}).find("data.task: 'reverso' is not one of markov, copy, reverse, modular_add"),
            std::string::npos) << error_with({{"source", "tokens"}, {"task", "reverso"}});
  EXPECT_NE(error_with({{"source", "tokens"}, {"vocab", 16}}).find("data.vocab: unknown key"), std::string::npos)
      << error_with({{"source", "tokens"}, {"vocab", 16}});
  EXPECT_NE(error_with({{"source", "tokens"}, {"scale", 2.0}}).find("data.scale: unknown key"), std::string::npos);
  EXPECT_NE(error_with({{"source", "tokens"}, {"path", "x.txt"}}).find("data.path: unknown key"), std::string::npos);
  EXPECT_NE(error_with({{"source", "spiral"}, {"vocab_size", 16}}).find("data.vocab_size: unknown key"), std::string::npos);
  // The model has to fit: its vocabulary and block size against the data's.
  EXPECT_NE(error_of(token_experiment({{"source", "tokens"}, {"vocab_size", 20}}, 16, 32)).find("model.vocab_size: the data has token ids up to 19"),
            std::string::npos);
  EXPECT_NE(error_of(token_experiment({{"source", "tokens"}, {"length", 16}}, 16, 32)).find("model.block_size:"), std::string::npos);
}

TEST(Experiment, TextSource) {
  const auto dir = std::filesystem::temp_directory_path() / ("mpscope_text_experiment_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat. ";  // 960 characters, 11 distinct
  std::ofstream(dir / "cats.txt", std::ios::binary) << text;
  std::ofstream(dir / "tiny.txt", std::ios::binary) << "meow";

  json j = token_experiment({{"source", "text"}, {"path", "cats.txt"}, {"length", 16}}, 11, 16);
  const Experiment e = parse_experiment(j, dir);
  EXPECT_EQ(e.data.source, "text");
  EXPECT_EQ(e.data.path, dir / "cats.txt");
  EXPECT_EQ(e.data.length, 16);
  EXPECT_EQ(e.data.sequences, 0);  // every window
  const json r = resolved_json(e);
  EXPECT_EQ(r["data"], json({{"source", "text"}, {"path", (dir / "cats.txt").string()}, {"length", 16}}));
  EXPECT_EQ(resolved_json(parse_experiment(r, ".")), r);
  const Prepared p = prepare(e);
  EXPECT_EQ(p.data.size(), (960 - 1) / 16);
  EXPECT_EQ(p.data.vocab, 11);
  EXPECT_EQ(p.data.token_text.size(), 11u);
  EXPECT_EQ(p.data.token_text[0], " ");

  j["data"]["sequences"] = 20;
  const Experiment some = parse_experiment(j, dir);
  EXPECT_EQ(resolved_json(some)["data"]["sequences"], 20);
  EXPECT_EQ(prepare(some).data.size(), 20);
  EXPECT_EQ(resolved_json(parse_experiment(token_experiment({{"source", "text"}, {"path", "cats.txt"}}, 11, 32), dir))["data"]["length"], 32);

  const auto error_with = [&](const json& data) {
    try {
      prepare(parse_experiment(token_experiment(data, 11, 16), dir));
    } catch (const ConfigError& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "cats.txt"}, {"length", 16}}), "no error");
  EXPECT_EQ(error_with({{"source", "text"}}), "data.path: is required (a string)");
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "dogs.txt"}}), "data.path: " + (dir / "dogs.txt").string() + " does not exist");
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "cats.txt"}, {"length", 0}}), "data.length: must be positive, got 0");
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "cats.txt"}, {"sequences", 0}}), "data.sequences: must be positive, got 0");
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "tiny.txt"}, {"length", 16}}),
            "data: " + (dir / "tiny.txt").string() +
                ": 4 characters, fewer than length + 1 = 17 (one sample of 16 tokens and its next token)");
  EXPECT_EQ(error_with({{"source", "text"}, {"path", "cats.txt"}, {"length", 16}, {"sequences", 60}}),
            "data: " + (dir / "cats.txt").string() + ": sequences 60 is more than the file's 59 windows of 17 characters (960 characters)");
  EXPECT_NE(error_with({{"source", "text"}, {"path", "cats.txt"}, {"task", "copy"}}).find("data.task: unknown key"), std::string::npos);
  EXPECT_NE(error_with({{"source", "text"}, {"path", "cats.txt"}, {"lenght", 16}}).find("data.lenght: unknown key (did you mean 'length'?)"),
            std::string::npos) << error_with({{"source", "text"}, {"path", "cats.txt"}, {"lenght", 16}});
  std::filesystem::remove_all(dir);
}

}  // namespace
