// Shared by the GUI tests: scratch files, small experiments, and a run file made by the trainer.
#pragma once

#include <QCoreApplication>
#include <QElapsedTimer>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "analysis/run_store.hpp"
#include "sim/trainer.hpp"

namespace mpscope::gui::testing {

inline std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("mpscope_gui_tests_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(dir / (name + suffix));
  return dir / name;
}

// A small spiral experiment: fp32 reference, fp16 without loss scaling (underflows), fp16 with dynamic scaling.
inline nlohmann::json small_experiment(int steps = 30) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "name": "small", "seed": 2, "batch_size": 64,
    "data": {"source": "spiral", "classes": 3, "points_per_class": 60, "noise": 0.2},
    "model": {"type": "mlp", "layers": [2, 16, 16, 3], "activation": "sigmoid"},
    "optimizer": {"type": "sgd", "lr": 0.5},
    "lanes": [{"name": "fp32", "recipe": "fp32", "reference": true},
              {"name": "fp16", "recipe": "fp16-amp"},
              {"name": "fp16-scaled", "recipe": "fp16-amp", "loss_scale": {"type": "dynamic", "growth_interval": 5}}],
    "record": {"every": 5}})");
  j["steps"] = steps;
  return j;
}

// A two-block, two-head GPT on the copy task: fp32 and fp16-amp, recorded every step.
inline nlohmann::json small_gpt_experiment(int steps) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "name": "gpt", "seed": 1, "batch_size": 4,
    "data": {"source": "tokens", "task": "copy", "vocab_size": 8, "length": 8, "sequences": 16},
    "model": {"type": "gpt", "vocab_size": 8, "block_size": 8, "n_embd": 16, "n_head": 2, "n_layer": 2},
    "optimizer": {"type": "adamw", "lr": 0.01},
    "lanes": [{"name": "fp32", "recipe": "fp32"}, {"name": "fp16-amp", "recipe": "fp16-amp", "loss_scale": {"type": "dynamic"}}],
    "record": {"every": 1}})");
  j["steps"] = steps;
  return j;
}

// A log2 histogram by hand: bins lo, lo+1, ... with these counts.
inline analysis::Log2Histogram histogram(int lo, std::vector<std::int64_t> counts, std::int64_t zeros = 0, std::int64_t infs = 0) {
  analysis::Log2Histogram h;
  h.lo = lo;
  h.counts = std::move(counts);
  h.zeros = zeros;
  h.infs = infs;
  return h;
}

// Trains `experiment` into a new run file.
inline std::filesystem::path make_run(const nlohmann::json& experiment, const std::string& name) {
  const auto file = scratch(name);
  const sim::Experiment e = sim::parse_experiment(experiment, ".");
  const sim::Prepared p = sim::prepare(e);
  analysis::RunWriter w(file, analysis::RunHeader{experiment.dump(), sim::resolved_json(e).dump(), "", "test", e.steps});
  sim::train(e, p, &w, {});
  return file;
}

// Runs the event loop until `done` or the timeout; false on timeout.
inline bool spin_until(const std::function<bool()>& done, int timeout_ms = 60000) {
  QElapsedTimer t;
  t.start();
  while (!done()) {
    if (t.elapsed() > timeout_ms) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
  }
  return true;
}

}  // namespace mpscope::gui::testing
