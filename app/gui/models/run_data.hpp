// What the views show: one run's lanes, per-step scalars, events, per-tensor statistics and per-layer statistics,
// read from a run file and grown incrementally while another thread or process writes it (the trainer commits in
// batches; every poll reads only the rows after what it has). Qt-free, so that it is tested without a display.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/run_store.hpp"

namespace mpscope::gui {

struct LaneData {
  analysis::LaneRow info;
  std::vector<analysis::TensorRow> tensors;             // the lane's recorded tensors, in catalogue order
  std::vector<analysis::StepRow> steps;                 // every step so far, in order
  std::vector<analysis::EventRow> events;               // in the order they happened
  std::map<std::int64_t, std::vector<analysis::TensorStatRow>> tensor_stats;  // recorded step -> its tensors
  std::map<std::int64_t, std::vector<analysis::LayerStatRow>> layer_stats;    // recorded step -> its layers

  std::int64_t last_step() const { return steps.empty() ? -1 : steps.back().step; }
  const analysis::TensorRow* tensor(std::int64_t tensor_id) const;
  // The recorded step at or before `step` (the latest one before it: statistics exist only every record.every).
  std::optional<std::int64_t> recorded_step_at(std::int64_t step) const;
  int layers() const;  // Linear layers (1..layers())
};

struct RunData {
  std::filesystem::path path;
  analysis::RunSummary summary;
  std::vector<LaneData> lanes;

  std::int64_t last_step() const;  // the furthest step of any lane (-1: none yet)
  bool running() const { return summary.status == "running"; }
  int reference_lane() const;  // index into lanes, -1 without one
};

// Follows a run file: the first poll reads everything, later ones only what was committed since.
class RunFollower {
 public:
  explicit RunFollower(const std::filesystem::path& path);  // throws analysis::RunStoreError
  ~RunFollower();
  // Reads what is new; true when anything changed (rows or status).
  bool poll();
  const RunData& data() const { return data_; }

 private:
  std::unique_ptr<analysis::RunReader> reader_;
  RunData data_;
  struct Cursor {
    std::int64_t steps = -1, tensor_stats = -1, layer_stats = -1;
  };
  std::vector<Cursor> cursors_;
};

}  // namespace mpscope::gui
