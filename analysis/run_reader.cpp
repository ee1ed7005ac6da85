// RunReader: read access to run files, also while another process writes them.
#include <limits>

#include "analysis/run_store.hpp"
#include "analysis/run_store_sql.hpp"

namespace mpscope::analysis {

RunReader::RunReader(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw RunStoreError(path.string() + ": no such file");
  // Read-write where the file allows it, but query_only: when the last connection to a WAL-mode file closes, SQLite
  // checkpoints it and removes the -wal and -shm files, which a read-only connection cannot (a reader following a
  // run holds it open while the writer finishes, so the writer cannot tidy up itself).
  int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_close(db_);
    db_ = nullptr;
    rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  }
  if (rc != SQLITE_OK) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw RunStoreError(path.string() + ": cannot open (" + sqlite3_errstr(rc) + ")");
  }
  sqlite3_exec(db_, "PRAGMA query_only=1", nullptr, nullptr, nullptr);
  sqlite3_busy_timeout(db_, 2000);
  try {
    detail::Statement app(db_, "PRAGMA application_id");
    if (!app.next() || app.integer(0) != detail::application_id) throw RunStoreError(path.string() + ": not an mpscope run file");
    detail::Statement version(db_, "PRAGMA user_version");
    version.next();
    if (version.integer(0) > run_schema_version)
      throw RunStoreError(path.string() + ": written by a newer mpscope (run schema " +
                          std::to_string(version.integer(0)) + ", this one reads up to " +
                          std::to_string(run_schema_version) + ")");
  } catch (const RunStoreError& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    const std::string what = e.what();
    if (what.find("not an mpscope") != std::string::npos || what.find("newer") != std::string::npos) throw;
    throw RunStoreError(path.string() + ": not an mpscope run file (" + what + ")");
  }
}

RunReader::~RunReader() { sqlite3_close(db_); }

RunSummary RunReader::summary() const {
  RunSummary s;
  detail::Statement q(db_, "SELECT key, value FROM meta");
  while (q.next()) {
    const std::string k = q.text(0), v = q.text(1);
    if (k == "schema_version") s.schema_version = std::stoi(v);
    if (k == "status") s.status = v;
    if (k == "created") s.created = v;
    if (k == "finished") s.finished = v;
    if (k == "mpscope_version") s.mpscope_version = v;
    if (k == "experiment") s.experiment_json = v;
    if (k == "resolved") s.resolved_json = v;
    if (k == "experiment_path") s.experiment_path = v;
    if (k == "error") s.error = v;
    if (k == "steps_planned") s.steps_planned = std::stoll(v);
    if (k == "steps_done") s.steps_done = std::stoll(v);
  }
  return s;
}

std::vector<LaneRow> RunReader::lanes() const {
  std::vector<LaneRow> out;
  detail::Statement q(db_, "SELECT id, name, recipe, backend, mma, is_reference, config, verdict, diverged_step, "
                   "first_divergence_step, first_nonfinite, first_nonfinite_step FROM lanes ORDER BY id");
  while (q.next()) {
    LaneRow l;
    l.id = q.integer(0);
    l.name = q.text(1);
    l.recipe = q.text(2);
    l.backend = q.text(3);
    l.mma = q.text(4);
    l.is_reference = q.integer(5) != 0;
    l.config_json = q.text(6);
    l.verdict = q.text(7);
    l.diverged_step = q.opt_integer(8);
    l.first_divergence_step = q.opt_integer(9);
    l.first_nonfinite = q.text(10);
    l.first_nonfinite_step = q.opt_integer(11);
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<StepRow> RunReader::steps(std::optional<std::int64_t> lane_id, std::int64_t after_step) const {
  std::vector<StepRow> out;
  detail::Statement q(db_, lane_id ? "SELECT * FROM steps WHERE lane_id=? AND step>? ORDER BY step"
                           : "SELECT * FROM steps WHERE step>? ORDER BY lane_id, step");
  if (lane_id) {
    q.bind(1, *lane_id).bind(2, after_step);
  } else {
    q.bind(1, after_step);
  }
  while (q.next()) {
    StepRow r;
    r.lane_id = q.integer(0);
    r.step = q.integer(1);
    r.loss = q.null(2) ? std::numeric_limits<double>::quiet_NaN() : q.real(2);
    r.loss_scale = q.real(3);
    r.found_inf = q.integer(4) != 0;
    r.skipped = q.integer(5) != 0;
    r.lr = q.real(6);
    r.grad_norm = q.null(7) ? std::numeric_limits<double>::quiet_NaN() : q.real(7);
    r.accuracy = q.opt_real(8);
    r.loss_delta = q.opt_real(9);
    r.weight_distance = q.opt_real(10);
    out.push_back(r);
  }
  return out;
}

std::vector<TensorRow> RunReader::tensors(std::optional<std::int64_t> lane_id) const {
  std::vector<TensorRow> out;
  detail::Statement q(db_, lane_id ? "SELECT * FROM tensors WHERE lane_id=? ORDER BY id" : "SELECT * FROM tensors ORDER BY id");
  if (lane_id) q.bind(1, *lane_id);
  while (q.next()) {
    TensorRow t;
    t.id = q.integer(0);
    t.lane_id = q.integer(1);
    t.layer = static_cast<int>(q.integer(2));
    t.name = q.text(3);
    t.kind = q.text(4);
    t.format = q.text(5);
    t.elements = q.integer(6);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<TensorStatRow> RunReader::lane_tensor_stats(std::int64_t lane_id, std::int64_t after_step) const {
  std::vector<TensorStatRow> out;
  detail::Statement q(db_, "SELECT step, stats FROM tensor_stats WHERE lane_id=? AND step>? ORDER BY step");
  q.bind(1, lane_id).bind(2, after_step);
  while (q.next()) {
    auto rows = detail::decode_stats(q.blob(1), q.integer(0));
    out.insert(out.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
  }
  return out;
}

std::vector<TensorStatRow> RunReader::tensor_stats(std::int64_t tensor_id, std::int64_t after_step) const {
  detail::Statement lane(db_, "SELECT lane_id FROM tensors WHERE id=?");
  lane.bind(1, tensor_id);
  if (!lane.next()) return {};
  std::vector<TensorStatRow> out;
  for (auto& r : lane_tensor_stats(lane.integer(0), after_step))
    if (r.tensor_id == tensor_id) out.push_back(std::move(r));
  return out;
}

std::vector<TensorStatRow> RunReader::tensor_stats_at(std::int64_t lane_id, std::int64_t step) const {
  detail::Statement q(db_, "SELECT stats FROM tensor_stats WHERE lane_id=? AND step=?");
  q.bind(1, lane_id).bind(2, step);
  if (!q.next()) return {};
  return detail::decode_stats(q.blob(0), step);
}

std::vector<LayerStatRow> RunReader::layer_stats(std::int64_t lane_id, std::int64_t after_step) const {
  std::vector<LayerStatRow> out;
  detail::Statement q(db_, "SELECT * FROM layer_stats WHERE lane_id=? AND step>? ORDER BY step, layer");
  q.bind(1, lane_id).bind(2, after_step);
  while (q.next()) {
    LayerStatRow r;
    r.lane_id = q.integer(0);
    r.step = q.integer(1);
    r.layer = static_cast<int>(q.integer(2));
    r.weight_distance = q.opt_real(3);
    r.grad_cosine = q.opt_real(4);
    r.lost_updates = q.opt_real(5);
    out.push_back(r);
  }
  return out;
}

std::vector<EventRow> RunReader::events(std::optional<std::int64_t> lane_id) const {
  std::vector<EventRow> out;
  detail::Statement q(db_, lane_id ? "SELECT lane_id, step, kind, tensor, value, message FROM events WHERE lane_id=? ORDER BY id"
                           : "SELECT lane_id, step, kind, tensor, value, message FROM events ORDER BY id");
  if (lane_id) q.bind(1, *lane_id);
  while (q.next()) {
    EventRow e;
    e.lane_id = q.integer(0);
    e.step = q.integer(1);
    e.kind = q.text(2);
    e.tensor = q.text(3);
    e.value = q.opt_real(4);
    e.message = q.text(5);
    out.push_back(std::move(e));
  }
  return out;
}

std::int64_t RunReader::last_step(std::int64_t lane_id) const {
  detail::Statement q(db_, "SELECT MAX(step) FROM steps WHERE lane_id=?");
  q.bind(1, lane_id);
  q.next();
  return q.null(0) ? -1 : q.integer(0);
}

}  // namespace mpscope::analysis
