#include "analysis/run_store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <ctime>

namespace mpscope::analysis {

namespace {

constexpr int application_id = 0x6D707363;  // "mpsc"

const char* const schema_sql = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE lanes (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, recipe TEXT NOT NULL, backend TEXT NOT NULL, mma TEXT NOT NULL,
  is_reference INTEGER NOT NULL, config TEXT NOT NULL, verdict TEXT NOT NULL DEFAULT '',
  diverged_step INTEGER, first_divergence_step INTEGER, first_nonfinite TEXT NOT NULL DEFAULT '',
  first_nonfinite_step INTEGER);
CREATE TABLE steps (
  lane_id INTEGER NOT NULL, step INTEGER NOT NULL, loss REAL, loss_scale REAL NOT NULL, found_inf INTEGER NOT NULL,
  skipped INTEGER NOT NULL, lr REAL NOT NULL, grad_norm REAL, accuracy REAL, loss_delta REAL, weight_distance REAL,
  PRIMARY KEY (lane_id, step)) WITHOUT ROWID;
CREATE TABLE tensors (
  id INTEGER PRIMARY KEY, lane_id INTEGER NOT NULL, layer INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
  format TEXT NOT NULL, elements INTEGER NOT NULL, UNIQUE (lane_id, name));
CREATE TABLE tensor_stats (
  lane_id INTEGER NOT NULL, step INTEGER NOT NULL, stats BLOB NOT NULL, PRIMARY KEY (lane_id, step)) WITHOUT ROWID;
CREATE TABLE layer_stats (
  lane_id INTEGER NOT NULL, step INTEGER NOT NULL, layer INTEGER NOT NULL, weight_distance REAL, grad_cosine REAL,
  lost_updates REAL, PRIMARY KEY (lane_id, step, layer)) WITHOUT ROWID;
CREATE TABLE events (
  id INTEGER PRIMARY KEY, lane_id INTEGER NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, tensor TEXT NOT NULL,
  value REAL, message TEXT NOT NULL);
CREATE INDEX events_by_lane ON events (lane_id, step);
)sql";

std::string now_utc() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw RunStoreError(std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    throw RunStoreError(std::string("run file: ") + message);
  }
}

// A prepared statement with positional binding helpers.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { check(db, sqlite3_prepare_v2(db, sql, -1, &st_, nullptr), sql); }
  ~Statement() { sqlite3_finalize(st_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, std::int64_t v) { return done(sqlite3_bind_int64(st_, i, v)); }
  Statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Statement& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v)); }
  Statement& bind(int i, double v) { return done(sqlite3_bind_double(st_, i, v)); }
  Statement& bind(int i, const std::string& v) {
    return done(sqlite3_bind_text(st_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Statement& bind(int i, const std::vector<std::uint8_t>& v) {
    return done(sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  template <typename T>
  Statement& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : done(sqlite3_bind_null(st_, i));
  }
  void run() {
    check(db_, sqlite3_step(st_), "run file write");
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  bool next() {
    const int rc = sqlite3_step(st_);
    check(db_, rc, "run file read");
    return rc == SQLITE_ROW;
  }
  std::int64_t integer(int c) const { return sqlite3_column_int64(st_, c); }
  double real(int c) const { return sqlite3_column_double(st_, c); }
  bool null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::optional<std::int64_t> opt_integer(int c) const { return null(c) ? std::nullopt : std::optional(integer(c)); }
  std::optional<double> opt_real(int c) const { return null(c) ? std::nullopt : std::optional(real(c)); }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(st_, c))) : "";
  }
  std::vector<std::uint8_t> blob(int c) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(st_, c));
    return p ? std::vector<std::uint8_t>(p, p + sqlite3_column_bytes(st_, c)) : std::vector<std::uint8_t>{};
  }

 private:
  Statement& done(int rc) {
    check(db_, rc, "run file bind");
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

std::uint64_t get_varint(const std::vector<std::uint8_t>& blob, std::size_t& at) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= blob.size()) throw RunStoreError("tensor statistics blob is truncated");
    const std::uint8_t byte = blob[at++];
    v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  throw RunStoreError("tensor statistics blob has an overlong number");
}

// One lane-step's tensor statistics: version 1, count, then per tensor: tensor id, a flag (1: rounding counts
// follow), [rounded, underflow, subnormal, overflow], histogram length, histogram (Log2Histogram::encode).
std::vector<std::uint8_t> encode_stats(const std::vector<TensorStatRow>& rows) {
  std::vector<std::uint8_t> out;
  out.push_back(1);
  put_varint(out, rows.size());
  for (const auto& r : rows) {
    put_varint(out, static_cast<std::uint64_t>(r.tensor_id));
    const bool counted = r.rounded.has_value();
    out.push_back(counted ? 1 : 0);
    if (counted)
      for (const auto& v : {r.rounded, r.underflow, r.subnormal, r.overflow}) put_varint(out, static_cast<std::uint64_t>(v.value_or(0)));
    const std::vector<std::uint8_t> h = r.histogram.encode();
    put_varint(out, h.size());
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

std::vector<TensorStatRow> decode_stats(const std::vector<std::uint8_t>& blob, std::int64_t step) {
  if (blob.empty() || blob[0] != 1) throw RunStoreError("tensor statistics blob: unknown version");
  std::size_t at = 1;
  const std::uint64_t n = get_varint(blob, at);
  std::vector<TensorStatRow> rows;
  for (std::uint64_t i = 0; i < n; ++i) {
    TensorStatRow r;
    r.step = step;
    r.tensor_id = static_cast<std::int64_t>(get_varint(blob, at));
    if (at >= blob.size()) throw RunStoreError("tensor statistics blob is truncated");
    if (blob[at++] == 1) {
      r.rounded = static_cast<std::int64_t>(get_varint(blob, at));
      r.underflow = static_cast<std::int64_t>(get_varint(blob, at));
      r.subnormal = static_cast<std::int64_t>(get_varint(blob, at));
      r.overflow = static_cast<std::int64_t>(get_varint(blob, at));
    }
    const std::uint64_t len = get_varint(blob, at);
    if (at + len > blob.size()) throw RunStoreError("tensor statistics blob is truncated");
    r.histogram = Log2Histogram::decode(std::span<const std::uint8_t>(blob.data() + at, len));
    at += len;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

// The writer thread's work list; a bounded queue, so that a slow disk slows training down rather than memory up.
struct RunWriter::Queue {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::function<void()>> ops;
  bool busy = false, closing = false;
  std::exception_ptr error;
  std::thread thread;
  static constexpr std::size_t limit = 20000;
};

struct RunWriter::Statements {
  explicit Statements(sqlite3* db)
      : lane(db, "INSERT INTO lanes (name, recipe, backend, mma, is_reference, config) VALUES (?,?,?,?,?,?)"),
        lane_update(db, "UPDATE lanes SET verdict=?, diverged_step=?, first_divergence_step=?, first_nonfinite=?, "
                        "first_nonfinite_step=? WHERE id=?"),
        tensor(db, "INSERT INTO tensors (lane_id, layer, name, kind, format, elements) VALUES (?,?,?,?,?,?)"),
        step(db, "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?)"),
        tensor_stat(db, "INSERT INTO tensor_stats VALUES (?,?,?)"),
        layer_stat(db, "INSERT INTO layer_stats VALUES (?,?,?,?,?,?)"),
        event(db, "INSERT INTO events (lane_id, step, kind, tensor, value, message) VALUES (?,?,?,?,?,?)"),
        meta(db, "INSERT OR REPLACE INTO meta VALUES (?,?)") {}
  Statement lane, lane_update, tensor, step, tensor_stat, layer_stat, event, meta;
};

RunWriter::RunWriter(const std::filesystem::path& path, const RunHeader& header) {
  if (std::filesystem::exists(path)) throw RunStoreError(path.string() + " already exists");
  const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw RunStoreError(path.string() + ": cannot create run file (" + message + ")");
  }
  // A reader that opens the file in the moment between its creation and WAL mode (the GUI following a run as it
  // starts) holds a shared lock for a moment: wait it out rather than fail with "database is locked".
  sqlite3_busy_timeout(db_, 10000);
  exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  sqlite3_busy_timeout(db_, 0);  // in WAL mode readers never block the writer; the final switch back waits for none
  exec(db_, ("PRAGMA application_id=" + std::to_string(application_id) + "; PRAGMA user_version=" +
             std::to_string(run_schema_version) + ";")
                .c_str());
  exec(db_, "BEGIN");
  exec(db_, schema_sql);
  st_ = std::make_unique<Statements>(db_);
  set_meta("schema_version", std::to_string(run_schema_version));
  set_meta("mpscope_version", header.mpscope_version);
  set_meta("created", now_utc());
  set_meta("experiment", header.experiment_json);
  set_meta("resolved", header.resolved_json);
  set_meta("experiment_path", header.experiment_path);
  set_meta("steps_planned", std::to_string(header.steps_planned));
  set_meta("steps_done", "0");
  set_meta("status", "running");
  exec(db_, "COMMIT");
  exec(db_, "BEGIN");
  queue_ = std::make_unique<Queue>();
  queue_->thread = std::thread([q = queue_.get()] {
    std::unique_lock lock(q->mutex);
    for (;;) {
      q->changed.wait(lock, [q] { return q->closing || !q->ops.empty(); });
      if (q->ops.empty()) return;  // closing and drained
      auto op = std::move(q->ops.front());
      q->ops.pop_front();
      q->busy = true;
      lock.unlock();
      try {
        if (!q->error) op();
      } catch (...) {
        lock.lock();
        if (!q->error) q->error = std::current_exception();
        lock.unlock();
      }
      lock.lock();
      q->busy = false;
      q->changed.notify_all();
    }
  });
}

void RunWriter::post(std::function<void()> op) {
  pending_.push_back(std::move(op));
  if (pending_.size() >= 256) flush();
}

void RunWriter::flush() {
  if (pending_.empty()) return;
  std::unique_lock lock(queue_->mutex);
  queue_->changed.wait(lock, [this] { return queue_->ops.size() < Queue::limit; });
  if (queue_->error) std::rethrow_exception(queue_->error);
  for (auto& op : pending_) queue_->ops.push_back(std::move(op));
  pending_.clear();
  queue_->changed.notify_all();
}

void RunWriter::wait_idle() {
  flush();
  std::unique_lock lock(queue_->mutex);
  queue_->changed.wait(lock, [this] { return queue_->ops.empty() && !queue_->busy; });
  if (queue_->error) std::rethrow_exception(queue_->error);
}

RunWriter::~RunWriter() {
  if (db_ == nullptr) return;
  try {
    if (!finished_) finish("interrupted");
  } catch (...) {
  }
  if (queue_ && queue_->thread.joinable()) {
    {
      std::lock_guard lock(queue_->mutex);
      queue_->closing = true;
    }
    queue_->changed.notify_all();
    queue_->thread.join();
  }
  st_.reset();
  sqlite3_close(db_);
}

// Ids are needed at once: these wait for the writer thread.
std::int64_t RunWriter::add_lane(const LaneRow& l) {
  std::int64_t id = 0;
  post([this, l, &id] {
    st_->lane.bind(1, l.name).bind(2, l.recipe).bind(3, l.backend).bind(4, l.mma).bind(5, l.is_reference).bind(6, l.config_json).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  wait_idle();
  return id;
}

std::int64_t RunWriter::add_tensor(const TensorRow& t) {
  std::int64_t id = 0;
  post([this, t, &id] {
    st_->tensor.bind(1, t.lane_id).bind(2, t.layer).bind(3, t.name).bind(4, t.kind).bind(5, t.format).bind(6, t.elements).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  wait_idle();
  return id;
}

void RunWriter::update_lane(const LaneRow& l) {
  post([this, l] {
    st_->lane_update.bind(1, l.verdict).bind(2, l.diverged_step).bind(3, l.first_divergence_step)
        .bind(4, l.first_nonfinite).bind(5, l.first_nonfinite_step).bind(6, l.id).run();
  });
}

void RunWriter::add_step(const StepRow& r) {
  post([this, r] {
    st_->step.bind(1, r.lane_id).bind(2, r.step).bind(3, r.loss).bind(4, r.loss_scale).bind(5, r.found_inf)
        .bind(6, r.skipped).bind(7, r.lr).bind(8, r.grad_norm).bind(9, r.accuracy).bind(10, r.loss_delta)
        .bind(11, r.weight_distance).run();
  });
}

void RunWriter::add_tensor_stats(std::int64_t lane_id, std::int64_t step, std::vector<TensorStatRow> rows) {
  post([this, lane_id, step, rows = std::move(rows)] {
    st_->tensor_stat.bind(1, lane_id).bind(2, step).bind(3, encode_stats(rows)).run();
  });
}

void RunWriter::add_layer_stats(const LayerStatRow& r) {
  post([this, r] {
    st_->layer_stat.bind(1, r.lane_id).bind(2, r.step).bind(3, r.layer).bind(4, r.weight_distance)
        .bind(5, r.grad_cosine).bind(6, r.lost_updates).run();
  });
}

void RunWriter::add_event(const EventRow& r) {
  post([this, r] {
    st_->event.bind(1, r.lane_id).bind(2, r.step).bind(3, r.kind).bind(4, r.tensor).bind(5, r.value).bind(6, r.message).run();
  });
}

void RunWriter::set_meta(const std::string& key, const std::string& value) {
  if (!queue_) {  // (during construction)
    st_->meta.bind(1, key).bind(2, value).run();
    return;
  }
  post([this, key, value] { st_->meta.bind(1, key).bind(2, value).run(); });
}

void RunWriter::commit() {
  post([this] {
    exec(db_, "COMMIT");
    exec(db_, "BEGIN");
  });
  flush();
}

void RunWriter::commit_and_wait() {
  commit();
  wait_idle();
}

void RunWriter::finish(const std::string& status, const std::string& error) {
  if (finished_) return;
  finished_ = true;
  set_meta("status", status);
  set_meta("finished", now_utc());
  if (!error.empty()) set_meta("error", error);
  post([this] {
    exec(db_, "COMMIT");
    // Fold the WAL into the database so that the finished file stands alone; a reader keeping it open would block
    // the switch back, which is harmless (the file is still complete, with its -wal beside it).
    sqlite3_exec(db_, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;", nullptr, nullptr, nullptr);
  });
  wait_idle();
}

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
    Statement app(db_, "PRAGMA application_id");
    if (!app.next() || app.integer(0) != application_id) throw RunStoreError(path.string() + ": not an mpscope run file");
    Statement version(db_, "PRAGMA user_version");
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
  Statement q(db_, "SELECT key, value FROM meta");
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
  Statement q(db_, "SELECT id, name, recipe, backend, mma, is_reference, config, verdict, diverged_step, "
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
  Statement q(db_, lane_id ? "SELECT * FROM steps WHERE lane_id=? AND step>? ORDER BY step"
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
  Statement q(db_, lane_id ? "SELECT * FROM tensors WHERE lane_id=? ORDER BY id" : "SELECT * FROM tensors ORDER BY id");
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
  Statement q(db_, "SELECT step, stats FROM tensor_stats WHERE lane_id=? AND step>? ORDER BY step");
  q.bind(1, lane_id).bind(2, after_step);
  while (q.next()) {
    auto rows = decode_stats(q.blob(1), q.integer(0));
    out.insert(out.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
  }
  return out;
}

std::vector<TensorStatRow> RunReader::tensor_stats(std::int64_t tensor_id, std::int64_t after_step) const {
  Statement lane(db_, "SELECT lane_id FROM tensors WHERE id=?");
  lane.bind(1, tensor_id);
  if (!lane.next()) return {};
  std::vector<TensorStatRow> out;
  for (auto& r : lane_tensor_stats(lane.integer(0), after_step))
    if (r.tensor_id == tensor_id) out.push_back(std::move(r));
  return out;
}

std::vector<TensorStatRow> RunReader::tensor_stats_at(std::int64_t lane_id, std::int64_t step) const {
  Statement q(db_, "SELECT stats FROM tensor_stats WHERE lane_id=? AND step=?");
  q.bind(1, lane_id).bind(2, step);
  if (!q.next()) return {};
  return decode_stats(q.blob(0), step);
}

std::vector<LayerStatRow> RunReader::layer_stats(std::int64_t lane_id, std::int64_t after_step) const {
  std::vector<LayerStatRow> out;
  Statement q(db_, "SELECT * FROM layer_stats WHERE lane_id=? AND step>? ORDER BY step, layer");
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
  Statement q(db_, lane_id ? "SELECT lane_id, step, kind, tensor, value, message FROM events WHERE lane_id=? ORDER BY id"
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
  Statement q(db_, "SELECT MAX(step) FROM steps WHERE lane_id=?");
  q.bind(1, lane_id);
  q.next();
  return q.null(0) ? -1 : q.integer(0);
}

}  // namespace mpscope::analysis
