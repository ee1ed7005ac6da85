// Run files (*.mpscope): one SQLite database per run, schema in docs/run-format.md. The writer commits in batches
// in WAL mode, so a killed run leaves every committed step readable, and a reader (the GUI, `mpscope info`) can
// follow a run while another process writes it. Rows are gathered in batches on the calling thread (the statistics
// encoded at once into the batch's blob buffer) and written by a background thread, so that training does not wait
// for SQLite; batches are reused, so steady recording allocates nothing. The per-tensor statistics of one lane and
// step are one row (a compact blob).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "analysis/histogram.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mpscope::analysis {

inline constexpr int run_schema_version = 1;

struct RunStoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LaneRow {
  std::int64_t id = 0;
  std::string name, recipe, backend, mma;
  bool is_reference = false;
  std::string config_json;  // the lane's resolved configuration
  // Findings, filled in as the run goes:
  std::string verdict;                        // ok | degraded | diverged ("" while running)
  std::optional<std::int64_t> diverged_step;  // NaN in the weights: the lane stopped here
  std::optional<std::int64_t> first_divergence_step;  // loss first off the reference by more than the threshold
  std::string first_nonfinite;                // first tensor holding inf/NaN ("" if none)
  std::optional<std::int64_t> first_nonfinite_step;
};

struct StepRow {
  std::int64_t lane_id = 0, step = 0;
  double loss = 0, loss_scale = 1;
  bool found_inf = false, skipped = false;
  double lr = 0, grad_norm = 0;
  std::optional<double> accuracy;         // every record.every steps (classification)
  std::optional<double> loss_delta;       // |loss - reference loss| (not for the reference lane)
  std::optional<double> weight_distance;  // ||W - W_ref|| / ||W_ref|| over all layers
};

struct TensorRow {
  std::int64_t id = 0, lane_id = 0;
  int layer = 0;
  std::string name;    // e.g. "layer1.weight_grad"
  std::string kind;    // weight, bias, weight_grad, bias_grad, activation, activation_grad
  std::string format;  // the format the lane keeps it in
  std::int64_t elements = 0;
};

struct TensorStatRow {
  std::int64_t tensor_id = 0, step = 0;  // (step: filled in by the reader)
  Log2Histogram histogram;
  // Where the lane rounds this tensor to a narrower format (summed over its rounding points):
  std::optional<std::int64_t> rounded, underflow, subnormal, overflow;
};

struct LayerStatRow {
  std::int64_t lane_id = 0, step = 0;
  int layer = 0;
  std::optional<double> weight_distance;  // ||W - W_ref|| / ||W_ref|| of this layer (weight and bias)
  std::optional<double> grad_cosine;      // cosine(g, g_ref) of this layer's unscaled gradient
  std::optional<double> lost_updates;     // share of weights whose nonzero update left them unchanged
};

struct EventRow {
  std::int64_t lane_id = 0, step = 0;
  std::string kind;  // overflow, skip, scale_backoff, scale_growth, divergence, nonfinite, diverged
  std::string tensor;
  std::optional<double> value;
  std::string message;
};

struct RunHeader {
  std::string experiment_json;  // as given
  std::string resolved_json;    // with every default filled in
  std::string experiment_path;
  std::string mpscope_version;
  std::int64_t steps_planned = 0;
};

class RunWriter {
 public:
  // Creates the file (it must not exist: the caller decides about --force). Throws RunStoreError.
  RunWriter(const std::filesystem::path& path, const RunHeader& header);
  ~RunWriter();  // commits what is pending; a run not finish()ed is marked "interrupted"
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;

  std::int64_t add_lane(const LaneRow& lane);
  void update_lane(const LaneRow& lane);
  std::int64_t add_tensor(const TensorRow& tensor);
  void add_step(const StepRow& row);
  // Every recorded tensor of one lane at one step.
  void add_tensor_stats(std::int64_t lane_id, std::int64_t step, const std::vector<TensorStatRow>& rows);
  void add_layer_stats(const LayerStatRow& row);
  void add_event(const EventRow& row);
  void set_meta(const std::string& key, const std::string& value);

  void commit();  // ends the current batch: everything so far becomes visible and survives a crash
  void commit_and_wait();  // the same, and returns once the writer thread has committed it (a reader sees it now)
  // Final status ("finished", "failed"); waits for every pending write, checkpoints the WAL into the file.
  void finish(const std::string& status, const std::string& error = "");

 private:
  struct Statements;
  struct Batch;
  struct Queue;
  void then(std::function<void()> op);  // runs on the writer thread after the rows gathered so far, in order
  void row_added();                     // hands a large batch over before its commit
  void hand_over();                     // the current batch to the writer thread (waits while too many are queued)
  void wait_idle();                     // until everything handed over is written; rethrows a failure
  void write(Batch& batch);             // (writer thread)
  sqlite3* db_ = nullptr;
  std::unique_ptr<Statements> st_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Batch> current_;  // being gathered by the calling thread
  bool finished_ = false;
};

struct RunSummary {
  int schema_version = 0;
  std::string status, created, finished, mpscope_version, experiment_json, resolved_json, experiment_path, error;
  std::int64_t steps_planned = 0, steps_done = 0;
};

// Read-only access; works on a run that another process is still writing.
class RunReader {
 public:
  explicit RunReader(const std::filesystem::path& path);  // throws RunStoreError (not a run file, newer schema)
  ~RunReader();
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  RunSummary summary() const;
  std::vector<LaneRow> lanes() const;
  std::vector<StepRow> steps(std::optional<std::int64_t> lane_id = {}, std::int64_t after_step = -1) const;
  std::vector<TensorRow> tensors(std::optional<std::int64_t> lane_id = {}) const;
  std::vector<TensorStatRow> tensor_stats(std::int64_t tensor_id, std::int64_t after_step = -1) const;
  std::vector<TensorStatRow> tensor_stats_at(std::int64_t lane_id, std::int64_t step) const;
  // Every recorded tensor of a lane, for the steps after after_step, in step order.
  std::vector<TensorStatRow> lane_tensor_stats(std::int64_t lane_id, std::int64_t after_step = -1) const;
  std::vector<LayerStatRow> layer_stats(std::int64_t lane_id, std::int64_t after_step = -1) const;
  std::vector<EventRow> events(std::optional<std::int64_t> lane_id = {}) const;
  std::int64_t last_step(std::int64_t lane_id) const;  // -1 when none

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace mpscope::analysis
