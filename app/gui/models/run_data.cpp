#include "app/gui/models/run_data.hpp"

#include <algorithm>

namespace mpscope::gui {

const analysis::TensorRow* LaneData::tensor(std::int64_t tensor_id) const {
  for (const auto& t : tensors)
    if (t.id == tensor_id) return &t;
  return nullptr;
}

std::optional<std::int64_t> LaneData::recorded_step_at(std::int64_t step) const {
  auto it = tensor_stats.upper_bound(step);
  if (it == tensor_stats.begin()) return std::nullopt;
  return std::prev(it)->first;
}

int LaneData::layers() const {
  int n = 0;
  for (const auto& t : tensors) n = std::max(n, t.layer);
  return n;
}

std::int64_t RunData::last_step() const {
  std::int64_t last = -1;
  for (const auto& l : lanes) last = std::max(last, l.last_step());
  return last;
}

int RunData::reference_lane() const {
  for (std::size_t i = 0; i < lanes.size(); ++i)
    if (lanes[i].info.is_reference) return static_cast<int>(i);
  return -1;
}

RunFollower::RunFollower(const std::filesystem::path& path) : reader_(std::make_unique<analysis::RunReader>(path)) {
  data_.path = path;
}

RunFollower::~RunFollower() = default;

bool RunFollower::poll() {
  bool changed = false;
  const analysis::RunSummary summary = reader_->summary();
  if (summary.status != data_.summary.status || summary.steps_done != data_.summary.steps_done) changed = true;
  data_.summary = summary;

  const std::vector<analysis::LaneRow> lanes = reader_->lanes();
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    if (i >= data_.lanes.size()) {
      LaneData l;
      l.tensors = reader_->tensors(lanes[i].id);
      data_.lanes.push_back(std::move(l));
      cursors_.emplace_back();
      changed = true;
    }
    LaneData& l = data_.lanes[i];
    if (l.info.verdict != lanes[i].verdict || l.info.first_nonfinite != lanes[i].first_nonfinite) changed = true;
    l.info = lanes[i];
    Cursor& c = cursors_[i];
    // Each table has its own cursor: a commit between two queries cannot make a row be skipped.
    for (auto& row : reader_->steps(l.info.id, c.steps)) {
      c.steps = row.step;
      l.steps.push_back(std::move(row));
      changed = true;
    }
    for (auto& row : reader_->lane_tensor_stats(l.info.id, c.tensor_stats)) {
      c.tensor_stats = row.step;
      l.tensor_stats[row.step].push_back(std::move(row));
      changed = true;
    }
    for (auto& row : reader_->layer_stats(l.info.id, c.layer_stats)) {
      c.layer_stats = row.step;
      l.layer_stats[row.step].push_back(std::move(row));
      changed = true;
    }
    std::vector<analysis::EventRow> events = reader_->events(l.info.id);
    if (events.size() != l.events.size()) {
      l.events = std::move(events);
      changed = true;
    }
  }
  return changed;
}

}  // namespace mpscope::gui
