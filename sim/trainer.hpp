// The lockstep trainer: every lane from the same initial weights, on the same batch at every step, lanes on
// separate threads (results do not depend on the thread count: lanes share nothing); after each step it measures
// each lane against the reference lane and records everything into the run file.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "analysis/run_store.hpp"
#include "sim/experiment.hpp"

namespace mpscope::sim {

// Pause and single steps (the GUI): before each step the trainer asks hold(step); when it says yes, the trainer
// commits what it has recorded and waits for the commit (a reader then sees every step so far), then calls
// wait(step), which blocks until the run may go on or stop is set. Both are called on the thread that runs train().
class StepGate {
 public:
  virtual ~StepGate() = default;
  virtual bool hold(std::int64_t next_step) = 0;
  virtual void wait(std::int64_t next_step) = 0;
};

struct TrainOptions {
  int threads = 0;  // 0: one per lane, at most the hardware's; never more than one per lane
  // After every step: steps done, steps planned.
  std::function<void(std::int64_t, std::int64_t)> progress;
  const std::atomic<bool>* stop = nullptr;  // when it turns true: finish the step, record, stop
  StepGate* gate = nullptr;                 // may be null: no pausing
  std::int64_t commit_every_steps = 50;     // run-file batches: whichever comes first
  double commit_every_seconds = 1.0;
  // Builds each lane; the default makes CPU lanes (sim::make_lane). The app passes one that also makes GPU lanes.
  std::function<std::unique_ptr<Lane>(const LaneSpec&, const ModelConfig&, const InitialWeights&)> make_lane;
  // With no writer given: opens the run file once every lane is built (so a lane that cannot be built, a GPU out
  // of memory say, leaves no file behind). May be empty.
  std::function<analysis::RunWriter*()> open_writer;
};

struct LaneSummary {
  std::string name, recipe, backend;
  bool reference = false;
  std::int64_t steps_run = 0;
  double final_loss = 0;
  std::optional<double> accuracy;         // at the last recorded step
  std::int64_t skipped_steps = 0;
  std::optional<double> gradient_underflow_share;  // underflowed / rounded, over gradient tensors (recorded steps)
  std::optional<double> max_loss_delta;           // largest |loss - reference loss| (inf once the loss is NaN)
  std::optional<double> final_weight_distance;    // ||W - W_ref|| / ||W_ref|| at the end
  std::string verdict;  // ok, degraded, diverged
  std::optional<std::int64_t> diverged_step, first_divergence_step;
  std::string first_nonfinite;
  std::optional<std::int64_t> first_nonfinite_step;
};

struct TrainResult {
  std::vector<LaneSummary> lanes;
  std::int64_t steps_done = 0;
  bool interrupted = false;
};

// Runs the experiment; `writer` may be null (then options.open_writer, if any, makes one after the lanes exist).
TrainResult train(const Experiment& e, const Prepared& p, analysis::RunWriter* writer, const TrainOptions& options);

}  // namespace mpscope::sim
