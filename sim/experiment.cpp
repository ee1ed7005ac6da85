#include "sim/experiment.hpp"

#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "sim/model_json.hpp"
#include "sim/npy.hpp"
#include "sim/ops/graph.hpp"
#include "sim/weights.hpp"

namespace mpscope::sim {

namespace {

using json = nlohmann::json;

const std::vector<std::string> rounding_names = {"nearest", "toward-zero", "up", "down", "stochastic"};

Rounding rounding_of(const std::string& s) { return parse_rounding(s); }

std::string rounding_text(Rounding r) { return std::string(to_string(r)); }

DataConfig parse_data(JsonObject o, const std::filesystem::path& base) {
  DataConfig d;
  d.source = o.choice("source", {"spiral", "circles", "xor", "blobs", "sine", "images", "tokens", "text", "npz", "csv"});
  const auto positive = [&](const std::string& key, std::int64_t fallback) {
    const std::int64_t v = o.integer(key, fallback);
    if (v <= 0) o.fail(key, "must be positive, got " + std::to_string(v));
    return v;
  };
  const auto non_negative = [&](const std::string& key, double fallback) {
    const double v = o.number(key, fallback);
    if (v < 0) o.fail(key, "must not be negative");
    return v;
  };
  // A generated dataset holds at most 2^31 values: the product of its sizes, checked without overflowing, and the
  // error naming `key` with the product written out (a dataset that large would not fit in memory anyway).
  const auto at_most_2_31_values = [&](const std::string& key, std::initializer_list<std::pair<const char*, std::int64_t>> sizes) {
    std::int64_t values = 1;
    std::string product, factors;
    for (const auto& [name, v] : sizes) {
      product += (product.empty() ? "" : " * ") + std::string(name);
      factors += (factors.empty() ? "" : " * ") + std::to_string(v);
    }
    for (const auto& [name, v] : sizes) {
      if (values > (std::int64_t{1} << 31) / v) o.fail(key, product + " = " + factors + " is more than 2^31 values");
      values *= v;
    }
  };
  if (d.source == "spiral") {
    d.classes = positive("classes", 3);
    d.points_per_class = positive("points_per_class", 300);
    d.noise = non_negative("noise", 0.2);
    at_most_2_31_values("points_per_class", {{"classes", d.classes}, {"points_per_class", d.points_per_class}, {"2 features", 2}});
  } else if (d.source == "circles") {
    d.points = positive("points", 600);
    d.noise = non_negative("noise", 0.05);
    d.factor = non_negative("factor", 0.5);
    at_most_2_31_values("points", {{"points", d.points}, {"2 features", 2}});
  } else if (d.source == "xor") {
    d.points = positive("points", 600);
    d.noise = non_negative("noise", 0.05);
    at_most_2_31_values("points", {{"points", d.points}, {"2 features", 2}});
  } else if (d.source == "blobs") {
    d.classes = positive("classes", 3);
    d.points_per_class = positive("points_per_class", 200);
    d.features = positive("features", 2);
    d.spread = non_negative("spread", 1.0);
    at_most_2_31_values("points_per_class", {{"classes", d.classes}, {"points_per_class", d.points_per_class}, {"features", d.features}});
  } else if (d.source == "sine") {
    d.points = positive("points", 600);
    d.noise = non_negative("noise", 0.05);
    d.amplitude = o.number("amplitude", 1.0);
    at_most_2_31_values("points", {{"points", d.points}});
  } else if (d.source == "images") {
    d.classes = positive("classes", 4);
    if (d.classes < 2 || d.classes > max_image_classes)
      o.fail("classes", "must be 2.." + std::to_string(max_image_classes) + ", got " + std::to_string(d.classes));
    d.points_per_class = positive("points_per_class", 200);
    d.channels = positive("channels", 1);
    d.height = positive("height", 16);
    d.width = positive("width", 16);
    for (const auto& [key, v] : {std::pair{"height", d.height}, std::pair{"width", d.width}})
      if (v < 4) o.fail(key, "must be at least 4, got " + std::to_string(v));
    d.noise = non_negative("noise", 0.1);
    at_most_2_31_values("points_per_class", {{"classes", d.classes}, {"points_per_class", d.points_per_class},
                                             {"channels", d.channels}, {"height", d.height}, {"width", d.width}});
  } else if (d.source == "tokens") {
    d.task = o.choice("task", token_tasks, "markov");
    d.vocab_size = positive("vocab_size", 16);
    d.length = positive("length", 32);
    d.sequences = positive("sequences", 1024);
    const std::string problem = check_token_task(d.task, d.vocab_size, d.length, d.sequences);  // "key: what is wrong"
    if (!problem.empty()) {
      const auto colon = problem.find(": ");
      o.fail(problem.substr(0, colon), problem.substr(colon + 2));
    }
  } else if (d.source == "text") {
    d.length = positive("length", 32);
    d.sequences = o.has("sequences") ? positive("sequences", 0) : 0;  // 0: every window of the file
  }
  const bool file = d.source == "text" || d.source == "npz" || d.source == "csv";
  if (!file && d.source != "tokens") d.scale = o.number("scale", 1.0);  // (token ids are not scaled)
  if (file) {
    const std::string p = o.text("path");
    d.path = std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base / p;
    if (!std::filesystem::exists(d.path)) o.fail("path", d.path.string() + " does not exist");
    if (d.source == "npz") {
      d.x = o.text("x", "X");
      d.y = o.text("y", "Y");
      d.batch_index = o.text("batch_index", "");
    } else if (d.source == "csv") {
      d.label = o.text("label", "");
      if (o.has("targets")) d.targets = o.value("targets").get<std::vector<std::string>>();
      if (o.has("inputs")) d.inputs = o.value("inputs").get<std::vector<std::string>>();
      if (d.label.empty() == d.targets.empty())
        o.fail("label", "give either \"label\" (a class column) or \"targets\" (regression columns)");
    }
  }
  o.finish();
  return d;
}

// "loss": "cross_entropy" | "mse", or {"type": ..., "logits": "autocast" | "fp32"} (cross-entropy only).
void parse_loss(JsonObject& o, ModelConfig& m) {
  const std::vector<std::string> types = {"cross_entropy", "mse"};
  std::string type = "cross_entropy", logits = "autocast";
  if (o.has("loss") && o.value("loss").is_object()) {
    JsonObject l = o.object("loss");
    type = l.choice("type", types, "cross_entropy");
    if (type == "cross_entropy") logits = l.choice("logits", {"autocast", "fp32"}, "autocast");
    l.finish();
  } else {
    type = o.choice("loss", types, "cross_entropy");
  }
  m.loss = type == "mse" ? LossType::mse : LossType::cross_entropy;
  m.loss_logits = logits == "fp32" ? LossLogits::fp32 : LossLogits::autocast;
}

ModelConfig parse_model(JsonObject o, InitConfig& init, const std::filesystem::path& base) {
  ModelConfig m = parse_model_json(o);
  if (o.has("init")) {
    JsonObject i = o.object("init");
    if (i.has("npz") == i.has("safetensors")) i.fail("npz", "give one of \"npz\" or \"safetensors\" (a file of initial weights)");
    init.kind = i.has("npz") ? InitConfig::Kind::npz : InitConfig::Kind::safetensors;
    const std::string key = i.has("npz") ? "npz" : "safetensors";
    const std::string p = i.text(key);
    init.path = std::filesystem::path(p).is_absolute() ? std::filesystem::path(p) : base / p;
    if (!std::filesystem::exists(init.path)) i.fail(key, init.path.string() + " does not exist");
    init.prefix = i.text("prefix", "");
    i.finish();
  }
  o.finish();
  return m;
}

OptimizerConfig parse_optimizer(JsonObject o) {
  OptimizerConfig c;
  const std::string type = o.choice("type", {"sgd", "adam", "adamw"}, "sgd");
  c.type = type == "sgd" ? OptimizerConfig::Type::sgd : type == "adam" ? OptimizerConfig::Type::adam : OptimizerConfig::Type::adamw;
  c.lr = o.number("lr", type == "sgd" ? 0.1 : 0.001);
  if (c.lr < 0) o.fail("lr", "must not be negative");
  c.weight_decay = o.number("weight_decay", type == "adamw" ? 0.01 : 0.0);
  if (!(c.weight_decay >= 0)) o.fail("weight_decay", "must not be negative (PyTorch refuses it too)");
  if (type == "sgd") {
    c.momentum = o.number("momentum", 0.0);
    if (!(c.momentum >= 0)) o.fail("momentum", "must not be negative (PyTorch refuses it too)");
    c.dampening = o.number("dampening", 0.0);
    c.nesterov = o.boolean("nesterov", false);
    if (c.nesterov && (c.momentum <= 0 || c.dampening != 0))
      o.fail("nesterov", "needs momentum > 0 and dampening 0 (as in PyTorch)");
  } else {
    if (o.has("betas")) {
      const json& b = o.array("betas");
      if (b.size() != 2 || !b[0].is_number() || !b[1].is_number()) o.fail("betas", "expected two numbers, e.g. [0.9, 0.999]");
      c.beta1 = b[0].get<double>();
      c.beta2 = b[1].get<double>();
      if (c.beta1 < 0 || c.beta1 >= 1 || c.beta2 < 0 || c.beta2 >= 1) o.fail("betas", "each must be in [0, 1)");
    }
    c.eps = o.number("eps", 1e-8);
    if (!(c.eps >= 0)) o.fail("eps", "must not be negative (PyTorch refuses it too)");
  }
  if (o.has("schedule")) {
    JsonObject s = o.object("schedule");
    const std::string st = s.choice("type", {"constant", "step", "cosine"}, "constant");
    c.schedule.type = st == "constant" ? ScheduleConfig::Type::constant
                      : st == "step"   ? ScheduleConfig::Type::step
                                       : ScheduleConfig::Type::cosine;
    c.schedule.warmup_steps = s.integer("warmup_steps", 0);
    if (c.schedule.warmup_steps < 0) s.fail("warmup_steps", "must not be negative");
    c.schedule.step_size = s.integer("step_size", 100);  // (read for every type: used by "step")
    if (c.schedule.step_size <= 0) s.fail("step_size", "must be positive");
    c.schedule.gamma = s.number("gamma", 0.1);
    c.schedule.min_lr = s.number("min_lr", 0.0);  // used by "cosine"
    s.finish();
  }
  o.finish();
  return c;
}

LossScaleConfig parse_loss_scale(JsonObject o) {
  LossScaleConfig c;
  const std::string type = o.choice("type", {"none", "static", "dynamic"});
  if (type == "static") {
    c.type = LossScaleConfig::Type::fixed;
    c.value = o.number("value");
    if (c.value <= 0) o.fail("value", "must be positive");
  } else if (type == "dynamic") {
    c.type = LossScaleConfig::Type::dynamic;
    c.init_scale = o.number("init_scale", 65536.0);
    c.growth_factor = o.number("growth_factor", 2.0);
    c.backoff_factor = o.number("backoff_factor", 0.5);
    c.growth_interval = o.integer("growth_interval", 2000);
    const std::int64_t hysteresis = o.integer("hysteresis", 1);
    if (hysteresis < 1 || hysteresis > std::numeric_limits<int>::max())
      o.fail("hysteresis", "must be 1.." + std::to_string(std::numeric_limits<int>::max()) + ", got " + std::to_string(hysteresis));
    c.hysteresis = static_cast<int>(hysteresis);
    c.min_scale = o.number("min_scale", 0.0);
    if (o.has("max_scale")) c.max_scale = o.number("max_scale");
    if (c.init_scale <= 0) o.fail("init_scale", "must be positive");
    if (c.growth_factor < 1) o.fail("growth_factor", "must be at least 1");
    if (c.backoff_factor <= 0 || c.backoff_factor >= 1) o.fail("backoff_factor", "must be in (0, 1)");
    if (c.growth_interval <= 0) o.fail("growth_interval", "must be positive");
  }
  o.finish();
  return c;
}

// What GPU lanes run (gpu/gpu_lane.hpp), checked here so that the error names the key.
void check_gpu_lane(JsonObject& o, const LaneSpec& s, const std::string& recipe) {
  const Recipe& r = s.lane.recipe;
  if (recipe != "fp32" && recipe != "fp16-amp" && recipe != "bf16-amp" && recipe != "fp16-pure" && recipe != "fp8")
    o.fail("recipe", "the " + recipe + " recipe has no GPU lane (gpu lanes run fp32, fp16-amp, bf16-amp, fp16-pure "
                     "and fp8; \"backend\": \"cpu\" runs it emulated)");
  for (const RoleFormat* role : {&r.weights, &r.activations, &r.gradients, &r.update})
    if (role->rounding != Rounding::nearest_even) o.fail("rounding", "gpu lanes round to nearest-even only");
  // "h100": fast lanes arrange cuBLASLt to compute the model's bits; exact lanes have mma.sync kernels for fp16 only
  if (r.mma == Accumulation::h100 && s.gemm == "exact" && !(r.weights.format == fp16()))
    o.fail("mma", "exact gpu lanes run the h100 model for fp16 GEMMs only (mpscope's mma.sync kernels); the " + recipe +
                      " recipe's h100 model (" + r.weights.format.name + " inputs) runs on fast gpu lanes (\"gemm\": "
                      "\"fast\") and on cpu lanes");
}

LaneSpec parse_lane(JsonObject o, const OptimizerConfig& optimizer, std::uint64_t seed, std::size_t index) {
  LaneSpec s;
  LaneConfig& l = s.lane;
  l.name = o.text("name");
  if (l.name.empty() || l.name.find(',') != std::string::npos) o.fail("name", "must be non-empty and without commas");
  const std::string recipe = o.choice("recipe", {"fp64", "fp32", "exact", "fp16-amp", "bf16-amp", "fp16-pure", "fp8", "custom"});
  l.recipe = recipe_preset(recipe);
  s.reference = o.boolean("reference", false);
  s.backend = o.choice("backend", {"cpu", "gpu"}, "cpu");
  if (o.has("gemm") && s.backend != "gpu") o.fail("gemm", "applies to gpu lanes only (\"backend\": \"gpu\")");
  s.gemm = o.choice("gemm", {"fast", "exact"}, "fast");
  l.recipe.mma = o.choice("mma", {"fp32", "h100"}, "fp32") == "h100" ? Accumulation::h100 : Accumulation::fp32;
  l.recipe.float32_attention_scores = o.choice("attention_scores", {"autocast", "float32"}, "autocast") == "float32";
  if (o.has("loss_scale")) l.loss_scale = parse_loss_scale(o.object("loss_scale"));
  l.optimizer = optimizer;
  l.seed = static_cast<std::uint64_t>(o.integer("seed", static_cast<std::int64_t>(seed * 1000 + index)));

  if (o.has("formats")) {
    if (l.recipe.storage != Storage::float32) o.fail("formats", "the " + recipe + " recipe does not round");
    const Recipe preset = l.recipe;
    JsonObject f = o.object("formats");
    const auto format = [&](const std::string& key, RoleFormat& role) {
      if (!f.has(key)) return;
      try {
        role.format = parse_format(f.text(key));
      } catch (const std::invalid_argument& e) {
        f.fail(key, e.what());
      }
    };
    format("master", l.recipe.master);
    format("weights", l.recipe.weights);
    format("activations", l.recipe.activations);
    format("gradients", l.recipe.gradients);
    l.recipe.update.format = l.recipe.master.format;
    // Master gradients (AMP style) when the master format is not the gradient format; "pure" otherwise.
    l.recipe.master_gradients = f.boolean("master_gradients", recipe == "custom" ? !(l.recipe.master.format == l.recipe.gradients.format)
                                                                                 : preset.master_gradients);
    f.finish();
    // A preset may restate its own formats (a resolved experiment does), not change them.
    const bool same = preset.master.format == l.recipe.master.format && preset.weights.format == l.recipe.weights.format &&
                      preset.activations.format == l.recipe.activations.format &&
                      preset.gradients.format == l.recipe.gradients.format && preset.master_gradients == l.recipe.master_gradients;
    if (recipe != "custom" && !same)
      o.fail("formats", "only a \"custom\" recipe takes formats (this lane's recipe is " + recipe + ")");
  }
  if (o.has("rounding")) {
    if (l.recipe.storage != Storage::float32) o.fail("rounding", "the " + recipe + " recipe does not round");
    JsonObject r = o.object("rounding");
    for (auto [key, role] : {std::pair{"weights", &l.recipe.weights}, std::pair{"activations", &l.recipe.activations},
                             std::pair{"gradients", &l.recipe.gradients}, std::pair{"update", &l.recipe.update}})
      if (r.has(key)) role->rounding = rounding_of(r.choice(key, rounding_names));
    r.finish();
  }
  if (o.has("fp8")) {
    if (recipe != "fp8") o.fail("fp8", "only the fp8 recipe uses delayed scaling settings");
    JsonObject f = o.object("fp8");
    l.recipe.delayed_scaling = f.choice("scaling", {"delayed", "none"}, "delayed") == "delayed";
    l.recipe.fp8_accumulation = parse_fp8_accumulation(f.choice("accumulation", {"promoted", "fast"}, "promoted"));
    if (f.has("accumulation") && l.recipe.mma != Accumulation::h100)
      f.fail("accumulation", "describes the h100 model's FP8 GEMMs (\"mma\": \"h100\"); with \"mma\": \"fp32\" they sum in float32");
    // (checked before narrowing: 2^32 + 1 must not become 1; a history is held per scaled tensor)
    const std::int64_t history = f.integer("history", 1024), margin = f.integer("margin", 0);
    if (history < 1 || history > 65536) f.fail("history", "must be 1..65536 steps, got " + std::to_string(history));
    if (margin < -127 || margin > 127) f.fail("margin", "must be -127..127 (scales of 2^-margin), got " + std::to_string(margin));
    l.fp8_history = static_cast<int>(history);
    l.fp8_margin = static_cast<int>(margin);
    f.finish();
  }
  const std::string problem = check_recipe(l.recipe);  // "key: what is wrong"
  if (!problem.empty()) {
    const auto colon = problem.find(": ");
    o.fail(problem.substr(0, colon), problem.substr(colon + 2));
  }
  if (s.backend == "gpu") check_gpu_lane(o, s, recipe);
  o.finish();
  return s;
}

}  // namespace

Experiment parse_experiment(const json& j, const std::filesystem::path& base_dir) {
  JsonObject o(j, "");
  Experiment e;
  e.given = j;
  e.base_dir = base_dir;
  e.name = o.text("name", "experiment");
  e.seed = static_cast<std::uint64_t>(o.integer("seed", 1));
  e.steps = o.integer("steps", 100);
  if (e.steps <= 0 || e.steps > max_steps)
    o.fail("steps", "must be 1.." + std::to_string(max_steps) + ", got " + std::to_string(e.steps));
  e.batch_size = o.integer("batch_size", 64);
  if (e.batch_size <= 0) o.fail("batch_size", "must be positive");
  e.data = parse_data(o.object("data"), base_dir);
  e.model = parse_model(o.object("model"), e.init, base_dir);
  parse_loss(o, e.model);
  e.optimizer = o.has("optimizer") ? parse_optimizer(o.object("optimizer")) : OptimizerConfig{};
  const json& lanes = o.array("lanes");
  if (lanes.empty()) o.fail("lanes", "needs at least one lane");
  std::set<std::string> names;
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    LaneSpec s = parse_lane(JsonObject(lanes[i], "lanes[" + std::to_string(i) + "]"), e.optimizer, e.seed, i);
    if (!names.insert(s.lane.name).second)
      throw ConfigError("lanes[" + std::to_string(i) + "].name: '" + s.lane.name + "' is used by another lane");
    if (s.reference) {
      if (e.reference >= 0)
        throw ConfigError("lanes[" + std::to_string(i) + "].reference: lane '" + e.lanes[static_cast<std::size_t>(e.reference)].lane.name +
                          "' is already the reference (one lane only)");
      e.reference = static_cast<int>(i);
    }
    e.lanes.push_back(std::move(s));
  }
  if (e.reference < 0) e.reference = 0;  // the first lane, when none is marked
  e.lanes[static_cast<std::size_t>(e.reference)].reference = true;
  if (o.has("record")) {
    JsonObject r = o.object("record");
    e.record.every = r.integer("every", 1);
    if (e.record.every <= 0) r.fail("every", "must be positive");
    e.record.accuracy_every = r.integer("accuracy_every", e.record.every);
    if (e.record.accuracy_every <= 0) r.fail("accuracy_every", "must be positive");
    e.record.divergence_threshold = r.number("divergence_threshold", 0.1);
    if (e.record.divergence_threshold <= 0) r.fail("divergence_threshold", "must be positive");
    r.finish();
  }
  o.finish();
  return e;
}

Experiment load_experiment(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& err) {
    // nlohmann reports the byte offset; turn it into a line and column.
    std::ifstream again(file);
    std::string text((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i + 1 < err.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = err.what();
    const auto detail = what.find("syntax error");
    throw ConfigError(file.string() + ":" + std::to_string(line) + ":" + std::to_string(column) + ": not valid JSON (" +
                      (detail != std::string::npos ? what.substr(detail) : what) + ")");
  }
  try {
    Experiment e = parse_experiment(j, file.has_parent_path() ? file.parent_path() : std::filesystem::path("."));
    e.file = file;
    return e;
  } catch (const ConfigError& err) {
    throw ConfigError(file.string() + ": " + err.what());
  }
}

json resolved_json(const Experiment& e) {
  json j;
  j["name"] = e.name;
  j["seed"] = e.seed;
  j["steps"] = e.steps;
  j["batch_size"] = e.batch_size;
  json d{{"source", e.data.source}};
  if (e.data.source == "spiral") d.update({{"classes", e.data.classes}, {"points_per_class", e.data.points_per_class}, {"noise", e.data.noise}});
  if (e.data.source == "circles") d.update({{"points", e.data.points}, {"noise", e.data.noise}, {"factor", e.data.factor}});
  if (e.data.source == "xor") d.update({{"points", e.data.points}, {"noise", e.data.noise}});
  if (e.data.source == "sine") d.update({{"points", e.data.points}, {"noise", e.data.noise}, {"amplitude", e.data.amplitude}});
  if (e.data.source == "blobs")
    d.update({{"classes", e.data.classes}, {"points_per_class", e.data.points_per_class}, {"features", e.data.features}, {"spread", e.data.spread}});
  if (e.data.source == "images")
    d.update({{"classes", e.data.classes}, {"points_per_class", e.data.points_per_class}, {"channels", e.data.channels},
              {"height", e.data.height}, {"width", e.data.width}, {"noise", e.data.noise}});
  if (e.data.source == "tokens")
    d.update({{"task", e.data.task}, {"vocab_size", e.data.vocab_size}, {"length", e.data.length}, {"sequences", e.data.sequences}});
  if (e.data.source == "text") {
    d.update({{"path", e.data.path.string()}, {"length", e.data.length}});
    if (e.data.sequences > 0) d["sequences"] = e.data.sequences;  // absent: every window (the count depends on the file)
  }
  if (e.data.source != "tokens" && e.data.source != "text" && e.data.source != "npz" && e.data.source != "csv")
    d["scale"] = e.data.scale;
  if (e.data.source == "npz") d.update({{"path", e.data.path.string()}, {"x", e.data.x}, {"y", e.data.y}, {"batch_index", e.data.batch_index}});
  if (e.data.source == "csv") d.update({{"path", e.data.path.string()}, {"label", e.data.label}, {"targets", e.data.targets}, {"inputs", e.data.inputs}});
  j["data"] = d;
  json m = model_json(e.model);
  if (e.init.kind != InitConfig::Kind::seeded)
    m["init"] = {{e.init.kind == InitConfig::Kind::npz ? "npz" : "safetensors", e.init.path.string()}, {"prefix", e.init.prefix}};
  j["model"] = m;
  j["loss"] = {{"type", std::string(to_string(e.model.loss))}};
  if (e.model.loss == LossType::cross_entropy) j["loss"]["logits"] = std::string(to_string(e.model.loss_logits));
  const OptimizerConfig& o = e.optimizer;
  json opt{{"type", o.type == OptimizerConfig::Type::sgd ? "sgd" : o.type == OptimizerConfig::Type::adam ? "adam" : "adamw"},
           {"lr", o.lr}, {"weight_decay", o.weight_decay}};
  if (o.type == OptimizerConfig::Type::sgd)
    opt.update({{"momentum", o.momentum}, {"dampening", o.dampening}, {"nesterov", o.nesterov}});
  else
    opt.update({{"betas", {o.beta1, o.beta2}}, {"eps", o.eps}});
  const char* st[] = {"constant", "step", "cosine"};
  opt["schedule"] = {{"type", st[static_cast<int>(o.schedule.type)]}, {"warmup_steps", o.schedule.warmup_steps},
                     {"step_size", o.schedule.step_size}, {"gamma", o.schedule.gamma}, {"min_lr", o.schedule.min_lr}};
  j["optimizer"] = opt;
  j["lanes"] = json::array();
  for (const LaneSpec& s : e.lanes) {
    const LaneConfig& l = s.lane;
    json lane{{"name", l.name}, {"recipe", l.recipe.name}, {"reference", s.reference}, {"backend", s.backend},
              {"mma", std::string(to_string(l.recipe.mma))}, {"seed", l.seed},
              {"attention_scores", l.recipe.float32_attention_scores ? "float32" : "autocast"}};
    if (s.backend == "gpu") lane["gemm"] = s.gemm;
    const LossScaleConfig& ls = l.loss_scale;
    if (ls.type == LossScaleConfig::Type::none) lane["loss_scale"] = {{"type", "none"}};
    if (ls.type == LossScaleConfig::Type::fixed) lane["loss_scale"] = {{"type", "static"}, {"value", ls.value}};
    if (ls.type == LossScaleConfig::Type::dynamic)
      lane["loss_scale"] = {{"type", "dynamic"}, {"init_scale", ls.init_scale}, {"growth_factor", ls.growth_factor},
                            {"backoff_factor", ls.backoff_factor}, {"growth_interval", ls.growth_interval},
                            {"hysteresis", ls.hysteresis}, {"min_scale", ls.min_scale}};
    if (ls.type == LossScaleConfig::Type::dynamic && std::isfinite(ls.max_scale)) lane["loss_scale"]["max_scale"] = ls.max_scale;
    if (l.recipe.storage == Storage::float32) {
      const Recipe& r = l.recipe;
      lane["formats"] = {{"master", r.master.format.name}, {"weights", r.weights.format.name},
                         {"activations", r.activations.format.name}, {"gradients", r.gradients.format.name},
                         {"master_gradients", r.master_gradients}};
      lane["rounding"] = {{"weights", rounding_text(r.weights.rounding)}, {"activations", rounding_text(r.activations.rounding)},
                          {"gradients", rounding_text(r.gradients.rounding)}, {"update", rounding_text(r.update.rounding)}};
    }
    if (l.recipe.name == "fp8")
      lane["fp8"] = {{"scaling", l.recipe.delayed_scaling ? "delayed" : "none"}, {"history", l.fp8_history}, {"margin", l.fp8_margin},
                     {"accumulation", l.recipe.fp8_accumulation == Fp8Accumulation::promoted ? "promoted" : "fast"}};
    j["lanes"].push_back(lane);
  }
  j["record"] = {{"every", e.record.every}, {"accuracy_every", e.record.accuracy_every},
                 {"divergence_threshold", e.record.divergence_threshold}};
  return j;
}

Experiment select_lanes(const Experiment& e, const std::vector<std::string>& names) {
  Experiment out = e;
  out.lanes.clear();
  out.reference = -1;
  for (const auto& n : names) {
    const auto it = std::find_if(e.lanes.begin(), e.lanes.end(), [&](const LaneSpec& s) { return s.lane.name == n; });
    if (it == e.lanes.end()) {
      std::vector<std::string> all;
      for (const auto& s : e.lanes) all.push_back(s.lane.name);
      const std::string guess = closest_match(n, all);
      std::string list;
      for (const auto& a : all) list += (list.empty() ? "" : ", ") + a;
      throw ConfigError("--lanes: no lane '" + n + "'" + (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
                        "; the experiment has: " + list);
    }
    if (it->reference) out.reference = static_cast<int>(out.lanes.size());
    out.lanes.push_back(*it);
  }
  return out;
}

Prepared prepare(const Experiment& e) {
  Prepared p;
  try {
    const DataConfig& d = e.data;
    if (d.source == "spiral") p.data = make_spiral(d.classes, d.points_per_class, d.noise, e.seed);
    if (d.source == "circles") p.data = make_circles(d.points, d.noise, d.factor, e.seed);
    if (d.source == "xor") p.data = make_xor(d.points, d.noise, e.seed);
    if (d.source == "blobs") p.data = make_blobs(d.classes, d.points_per_class, d.features, d.spread, e.seed);
    if (d.source == "sine") p.data = make_sine(d.points, d.noise, d.amplitude, e.seed);
    if (d.source == "images") p.data = make_images(d.classes, d.points_per_class, d.channels, d.height, d.width, d.noise, e.seed);
    if (d.source == "tokens") p.data = make_token_task(d.task, d.vocab_size, d.length, d.sequences, e.seed);
    if (d.source == "text") p.data = load_text_dataset(d.path, d.length, d.sequences);
    if (d.source == "npz") p.data = load_npz_dataset(d.path, d.x, d.y, d.batch_index);
    if (d.source == "csv") p.data = load_csv_dataset(d.path, d.label, d.targets, d.inputs);
    if (d.scale != 1.0)
      for (float& v : p.data.x.data) v = static_cast<float>(v * d.scale);
  } catch (const DataError& err) {
    throw ConfigError(std::string("data: ") + err.what());
  } catch (const NpyError& err) {
    throw ConfigError(std::string("data: ") + err.what());
  }
  const Dataset& data = p.data;
  const ModelConfig& m = e.model;
  check_model_fits_data(m, data);
  if (e.batch_size > data.size())
    throw ConfigError("batch_size: " + std::to_string(e.batch_size) + " is larger than the dataset (" +
                      std::to_string(data.size()) + " rows)");
  if (data.batch_index.rows > 0) {
    if (data.batch_index.cols != e.batch_size)
      throw ConfigError("batch_size: " + std::to_string(e.batch_size) + ", but the data's batch_index holds batches of " +
                        std::to_string(data.batch_index.cols));
    if (data.batch_index.rows < e.steps)
      throw ConfigError("steps: " + std::to_string(e.steps) + ", but the data's batch_index fixes only " +
                        std::to_string(data.batch_index.rows) + " batches");
  }
  try {
    if (e.init.kind == InitConfig::Kind::seeded) p.init = default_initial_weights(m, e.seed);
    if (e.init.kind == InitConfig::Kind::npz) p.init = load_npz_weights(e.init.path, e.init.prefix, m);
    if (e.init.kind == InitConfig::Kind::safetensors) p.init = load_safetensors_weights(e.init.path, e.init.prefix, m);
  } catch (const DataError& err) {
    throw ConfigError(std::string("model.init: ") + err.what());
  } catch (const NpyError& err) {
    throw ConfigError(std::string("model.init: ") + err.what());
  }
  return p;
}

}  // namespace mpscope::sim
