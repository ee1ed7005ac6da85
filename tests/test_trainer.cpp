// The lockstep trainer: results do not depend on the number of threads; a lane that reaches NaN stops and is
// marked diverged with the tensor where inf/NaN appeared first, while the others finish; the run file holds it all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "analysis/run_store.hpp"
#include "sim/trainer.hpp"

using namespace mpscope;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

json experiment() {
  return json::parse(R"({
    "name": "t", "seed": 4, "steps": 40, "batch_size": 32,
    "data": {"source": "spiral", "classes": 3, "points_per_class": 60, "noise": 0.2},
    "model": {"type": "mlp", "layers": [2, 16, 16, 3], "activation": "gelu", "layer_norm": true},
    "optimizer": {"type": "sgd", "lr": 0.2, "momentum": 0.9},
    "lanes": [{"name": "fp32", "recipe": "fp32", "reference": true},
              {"name": "fp16", "recipe": "fp16-amp", "mma": "h100", "loss_scale": {"type": "dynamic"}},
              {"name": "bf16", "recipe": "bf16-amp"},
              {"name": "pure-sr", "recipe": "fp16-pure", "rounding": {"update": "stochastic", "activations": "stochastic"}},
              {"name": "fp8", "recipe": "fp8"}],
    "record": {"every": 3}})");
}

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("mpscope_trainer_" + std::to_string(::getpid()));
  fs::create_directories(d);
  fs::remove(d / name);
  return d / name;
}

TEST(Trainer, ResultsDoNotDependOnTheThreadCount) {
  const sim::Experiment e = sim::parse_experiment(experiment(), ".");
  const sim::Prepared p = sim::prepare(e);
  std::vector<std::vector<analysis::StepRow>> runs;
  for (int threads : {1, 3, 5}) {
    const fs::path file = scratch("threads" + std::to_string(threads) + ".mpscope");
    {
      analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
      sim::TrainOptions o;
      o.threads = threads;
      const sim::TrainResult r = sim::train(e, p, &w, o);
      EXPECT_EQ(r.steps_done, 40);
    }
    runs.push_back(analysis::RunReader(file).steps());
  }
  ASSERT_EQ(runs[0].size(), 5u * 40u);
  for (std::size_t k = 1; k < runs.size(); ++k)
    for (std::size_t i = 0; i < runs[0].size(); ++i) {
      ASSERT_EQ(runs[k][i].loss, runs[0][i].loss) << "row " << i;  // bit for bit
      ASSERT_EQ(runs[k][i].loss_scale, runs[0][i].loss_scale);
      ASSERT_EQ(runs[k][i].weight_distance, runs[0][i].weight_distance);
    }
}

// The GUI's Pause and Step: a gate that holds before given steps. While held, a reader sees every step so far
// (the trainer commits before it waits); the run's numbers are those of a run that never paused.
class HoldAt : public sim::StepGate {
 public:
  HoldAt(std::vector<std::int64_t> steps, fs::path file) : steps_(std::move(steps)), file_(std::move(file)) {}
  bool hold(std::int64_t next_step) override {
    return std::find(steps_.begin(), steps_.end(), next_step) != steps_.end();
  }
  void wait(std::int64_t next_step) override {
    analysis::RunReader reader(file_);  // another connection, as the GUI's
    seen.push_back(reader.steps().size());
    held.push_back(next_step);
  }
  std::vector<std::size_t> seen;
  std::vector<std::int64_t> held;

 private:
  std::vector<std::int64_t> steps_;
  fs::path file_;
};

TEST(Trainer, AGateHoldsBeforeStepsWithEveryEarlierStepCommitted) {
  json j = experiment();
  j["lanes"] = json::array({j["lanes"][0], j["lanes"][1]});
  const sim::Experiment e = sim::parse_experiment(j, ".");
  const sim::Prepared p = sim::prepare(e);
  const fs::path plain = scratch("plain.mpscope"), gated = scratch("gated.mpscope");
  {
    analysis::RunWriter w(plain, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
    sim::train(e, p, &w, {});
  }
  HoldAt gate({0, 7, 8, 30}, gated);
  {
    analysis::RunWriter w(gated, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
    sim::TrainOptions o;
    o.gate = &gate;
    o.commit_every_steps = 1000;  // no batch commit before step 30: only the gate's commits make steps visible
    o.commit_every_seconds = 1e9;
    sim::train(e, p, &w, o);
  }
  EXPECT_EQ(gate.held, (std::vector<std::int64_t>{0, 7, 8, 30}));
  EXPECT_EQ(gate.seen, (std::vector<std::size_t>{0, 2 * 7, 2 * 8, 2 * 30}));
  const auto a = analysis::RunReader(plain).steps(), b = analysis::RunReader(gated).steps();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i].loss, b[i].loss) << "row " << i;
}

TEST(Trainer, ADivergedLaneStopsTheOthersFinish) {
  json j = experiment();
  j["data"]["scale"] = 100000;  // inputs beyond fp16's range
  j["lanes"] = json::parse(R"([{"name": "fp32", "recipe": "fp32", "reference": true},
                               {"name": "fp16", "recipe": "fp16-amp"},
                               {"name": "fp16-scaled", "recipe": "fp16-amp", "loss_scale": {"type": "dynamic"}},
                               {"name": "bf16", "recipe": "bf16-amp"}])");
  const sim::Experiment e = sim::parse_experiment(j, ".");
  const fs::path file = scratch("diverged.mpscope");
  {
    analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
    const sim::TrainResult r = sim::train(e, sim::prepare(e), &w, {});
    ASSERT_EQ(r.lanes.size(), 4u);
    EXPECT_EQ(r.lanes[1].verdict, "diverged");
    EXPECT_EQ(r.lanes[1].diverged_step, 0);
    EXPECT_EQ(r.lanes[1].first_nonfinite, "input");  // the first tensor holding inf: the input's cast to fp16
    EXPECT_EQ(r.lanes[2].steps_run, 40);             // the scaled lane skips, and goes on
    EXPECT_EQ(r.lanes[2].skipped_steps, 40);
    EXPECT_EQ(r.lanes[3].steps_run, 40);
    EXPECT_NE(r.lanes[3].verdict, "diverged");
    EXPECT_EQ(r.lanes[0].verdict, "ok");
  }
  const analysis::RunReader run(file);
  const auto lanes = run.lanes();
  EXPECT_EQ(lanes[1].verdict, "diverged");
  EXPECT_EQ(lanes[1].first_nonfinite, "input");
  EXPECT_EQ(run.last_step(lanes[1].id), 0);
  EXPECT_EQ(run.last_step(lanes[2].id), 39);
  int diverged = 0, skips = 0, backoffs = 0;
  for (const auto& ev : run.events()) {
    diverged += ev.kind == "diverged";
    skips += ev.kind == "skip" && ev.lane_id == lanes[2].id;
    backoffs += ev.kind == "scale_backoff";
  }
  EXPECT_EQ(diverged, 1);
  EXPECT_EQ(skips, 40);
  EXPECT_GT(backoffs, 0);
  const auto steps = run.steps(lanes[2].id);
  EXPECT_LT(steps.back().loss_scale, steps.front().loss_scale);  // the scale backed off step after step
}

TEST(Trainer, RecordsWhatDesignSaysAtRecordSteps) {
  const sim::Experiment e = sim::parse_experiment(experiment(), ".");
  const fs::path file = scratch("recorded.mpscope");
  {
    analysis::RunWriter w(file, analysis::RunHeader{"{}", "{}", "", "test", e.steps});
    sim::train(e, sim::prepare(e), &w, {});
  }
  const analysis::RunReader run(file);
  const auto lanes = run.lanes();
  for (const auto& lane : lanes) {
    const auto steps = run.steps(lane.id);
    ASSERT_EQ(steps.size(), 40u);
    for (const auto& s : steps) {
      const bool recorded = s.step % 3 == 0 || s.step == 39;
      EXPECT_EQ(s.accuracy.has_value(), recorded);
      EXPECT_EQ(s.loss_delta.has_value(), !lane.is_reference);
      EXPECT_GT(s.grad_norm, 0);
    }
    const auto stats = run.lane_tensor_stats(lane.id);
    const auto tensors = run.tensors(lane.id);
    EXPECT_EQ(stats.size(), tensors.size() * 14);  // steps 0, 3, ..., 39
    const auto layers = run.layer_stats(lane.id);
    EXPECT_EQ(layers.size(), 3u * 14u);
    int cosines = 0;
    for (const auto& l : layers) {
      EXPECT_TRUE(l.lost_updates.has_value());
      if (lane.is_reference) {
        EXPECT_FALSE(l.grad_cosine.has_value());
      }
      if (!l.grad_cosine) continue;  // (NaN, e.g. when a step's gradients overflowed, is stored as NULL)
      ++cosines;
      EXPECT_LE(std::fabs(*l.grad_cosine), 1.0 + 1e-12);
      // At step 0 every lane has the same weights: fp16 and bf16 compute nearly fp32's gradients (later the
      // trajectories part and so do the gradients).
      if (l.step == 0 && (lane.name == "fp16" || lane.name == "bf16")) {
        EXPECT_GT(*l.grad_cosine, 0.99) << lane.name;
      }
    }
    if (!lane.is_reference) {
      EXPECT_GT(cosines, 30);
    }
  }
}

}  // namespace
