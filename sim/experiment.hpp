// Experiment files (docs/design.md "Experiment files"; every key in docs/experiments.md): parsed, validated with errors
// that name the key path, resolved (defaults filled in), and prepared (data and initial weights loaded, shapes
// checked) before any run file exists.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sim/dataset.hpp"
#include "sim/json_reader.hpp"
#include "sim/lane.hpp"

namespace mpscope::sim {

// The most steps a run may plan: far beyond any run of this tool, and a bound that keeps a typo (1e12) from
// starting a run that would never end.
constexpr std::int64_t max_steps = 1'000'000'000;

struct DataConfig {
  std::string source = "spiral";  // spiral, circles, xor, blobs, sine, images, tokens, text, npz, csv
  std::int64_t classes = 3, points_per_class = 300, points = 600, features = 2;
  std::int64_t channels = 1, height = 16, width = 16;  // images
  double noise = 0.2, factor = 0.5, spread = 1.0, amplitude = 1.0;
  double scale = 1.0;  // synthetic sets: every input feature multiplied by it (un-normalized data)
  std::string task = "markov";                // tokens: markov, copy, reverse, modular_add
  std::int64_t vocab_size = 16;               // tokens
  std::int64_t length = 32;                   // tokens, text: tokens per sample (T)
  std::int64_t sequences = 1024;              // tokens: samples; text: 0 = every window
  std::filesystem::path path;                 // text, npz, csv: resolved against the experiment's folder
  std::string x = "X", y = "Y", batch_index;  // npz keys ("" batch_index: shuffle)
  std::string label;                          // csv: the class column
  std::vector<std::string> targets, inputs;   // csv: regression columns; input columns (default: the rest)
};

struct InitConfig {
  enum class Kind { seeded, npz, safetensors };
  Kind kind = Kind::seeded;
  std::filesystem::path path;
  std::string prefix;
};

struct LaneSpec {
  LaneConfig lane;
  bool reference = false;
  std::string backend = "cpu";  // cpu (emulated) or gpu (real CUDA arithmetic)
  std::string gemm = "fast";    // gpu lanes: fast (cuBLAS) or exact (mpscope's kernels, bit-identical to the CPU)
};

struct RecordConfig {
  std::int64_t every = 1;               // per-tensor statistics every N steps (and the last step)
  std::int64_t accuracy_every = 1;      // accuracy on the whole dataset every N steps (and the last); default: every
  double divergence_threshold = 0.1;    // relative loss difference from the reference (smoothed) that counts
};

struct Experiment {
  std::string name;
  std::uint64_t seed = 1;
  std::int64_t steps = 100, batch_size = 64;
  DataConfig data;
  ModelConfig model;
  InitConfig init;
  OptimizerConfig optimizer;
  std::vector<LaneSpec> lanes;
  int reference = -1;  // index into lanes (-1: no reference lane in this run)
  RecordConfig record;
  nlohmann::json given;                // the file as written
  std::filesystem::path file;          // "" when parsed from memory
  std::filesystem::path base_dir;      // relative paths are resolved against it
};

// Throws ConfigError naming the key path.
Experiment parse_experiment(const nlohmann::json& j, const std::filesystem::path& base_dir);
Experiment load_experiment(const std::filesystem::path& file);  // also reports JSON syntax errors with line/column
nlohmann::json resolved_json(const Experiment& e);  // every key, defaults included

// Keeps the named lanes (in the given order). Throws ConfigError for unknown names.
Experiment select_lanes(const Experiment& e, const std::vector<std::string>& names);

struct Prepared {
  Dataset data;
  InitialWeights init;
};
// Loads the data and the initial weights and checks every shape against the model; throws ConfigError.
Prepared prepare(const Experiment& e);

}  // namespace mpscope::sim
