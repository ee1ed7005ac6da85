// Experiment files: every error names the key path and what was expected, unknown keys get a suggestion, shapes
// are checked before training; defaults are resolved.
#include <gtest/gtest.h>

#include <fstream>

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
  j = base();
  j["steps"] = 2.5;
  EXPECT_NE(error_of(j).find("steps: expected an integer"), std::string::npos);
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
  j["lanes"][1]["recipe"] = "bf16-amp";
  EXPECT_NE(error_of(j).find("lanes[1].mma: the h100 model is measured for fp16 GEMM inputs only"), std::string::npos) << error_of(j);
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
  EXPECT_NE(error_of(j).find("lanes[1].mma: \"h100\" models mpscope's own tensor-core kernels"), std::string::npos)
      << error_of(j);
  j["lanes"][1]["gemm"] = "exact";
  EXPECT_EQ(error_of(j), "no error");
  j["lanes"][1]["rounding"] = {{"update", "stochastic"}};
  EXPECT_NE(error_of(j).find("lanes[1].rounding: gpu lanes round to nearest-even only"), std::string::npos) << error_of(j);
  j = base();
  j["lanes"][1] = {{"name", "f8"}, {"recipe", "fp8"}, {"backend", "gpu"}};
  EXPECT_EQ(error_of(j), "no error");
  j["lanes"][1]["recipe"] = "custom";
  EXPECT_NE(error_of(j).find("lanes[1].recipe: the custom recipe has no GPU lane"), std::string::npos) << error_of(j);
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
