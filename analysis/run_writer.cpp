// RunWriter: rows gathered in batches on the training thread, written by a background thread.
#include <pthread.h>
#include <sched.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "analysis/run_store.hpp"
#include "analysis/run_store_sql.hpp"

namespace mpscope::analysis {

using detail::exec;
using detail::Statement;

namespace {
// The writer thread runs only on cores that nothing else wants (Linux SCHED_IDLE). Training threads wait for each
// other at the end of every step, so a writer that took a core from one of them would stall them all; idle cores
// are there in every step's gaps. Where it falls behind (a busy machine), the training thread writes the queued
// batches itself when the queue is full or a commit must be seen (Queue), so nothing waits on a starved writer for
// more than the one batch it may be in the middle of.
void run_when_idle() {
#if defined(SCHED_IDLE)
  sched_param none{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);  // (a hint: where refused, it runs as before)
#endif
}
}  // namespace

// Rows gathered between hand-overs. Written in this order: steps, layer statistics, tensor statistics, events, then
// the other operations (meta, lane updates, COMMIT) in the order they were asked for. A COMMIT always ends a batch,
// so no row crosses one. Cleared and reused after writing (the vectors keep their capacity).
struct RunWriter::Batch {
  struct Stats {
    std::int64_t lane_id, step;
    std::size_t begin, size;  // in blobs
  };
  std::vector<StepRow> steps;
  std::vector<LayerStatRow> layer_stats;
  std::vector<Stats> tensor_stats;
  std::vector<std::uint8_t> blobs;  // the tensor statistics' blobs, back to back
  std::vector<EventRow> events;
  std::vector<std::function<void()>> then;

  bool empty() const { return steps.empty() && layer_stats.empty() && tensor_stats.empty() && events.empty() && then.empty(); }
  // Large enough to hand over before its commit (a run committing rarely would otherwise gather it all here).
  bool large() const { return steps.size() + layer_stats.size() + tensor_stats.size() >= 4096 || blobs.size() >= (std::size_t{4} << 20); }
  void clear() {
    steps.clear();
    layer_stats.clear();
    tensor_stats.clear();
    blobs.clear();
    events.clear();
    then.clear();
  }
};

// Batches handed to the writer thread, and written ones kept for reuse. Bounded, so that a slow disk slows
// training down rather than memory up. Batches are written in order, one at a time (`database` guards the
// connection), mostly by the writer thread; a training thread that would have to wait for it (the queue full, or a
// commit it must see written) writes queued batches itself, at its own priority.
struct RunWriter::Queue {
  std::mutex mutex, database;
  std::condition_variable changed;
  std::deque<std::unique_ptr<Batch>> full;
  std::vector<std::unique_ptr<Batch>> spare;
  int writing = 0;
  bool closing = false;
  std::exception_ptr error;
  std::thread thread;
  std::function<void(Batch&)> write;  // RunWriter::write
  static constexpr std::size_t limit = 64;

  // Writes the oldest queued batch (`lock` holds `mutex`, and `full` is not empty; held again on return).
  void write_next(std::unique_lock<std::mutex>& lock) {
    std::unique_ptr<Batch> batch = std::move(full.front());
    full.pop_front();
    ++writing;
    const bool failed = error != nullptr;
    std::unique_lock in_order(database);  // taken before `mutex` is let go: batches are written in queue order
    lock.unlock();
    std::exception_ptr failure;
    try {
      if (!failed) write(*batch);
    } catch (...) {
      failure = std::current_exception();
    }
    in_order.unlock();
    batch->clear();
    lock.lock();
    if (failure && !error) error = failure;
    spare.push_back(std::move(batch));
    --writing;
    changed.notify_all();
  }
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
  exec(db_, ("PRAGMA application_id=" + std::to_string(detail::application_id) + "; PRAGMA user_version=" +
             std::to_string(run_schema_version) + ";")
                .c_str());
  exec(db_, "BEGIN");
  exec(db_, detail::schema_sql);
  st_ = std::make_unique<Statements>(db_);
  const std::pair<const char*, std::string> meta[] = {
      {"schema_version", std::to_string(run_schema_version)}, {"mpscope_version", header.mpscope_version},
      {"created", detail::now_utc()}, {"experiment", header.experiment_json}, {"resolved", header.resolved_json},
      {"experiment_path", header.experiment_path}, {"steps_planned", std::to_string(header.steps_planned)},
      {"steps_done", "0"}, {"status", "running"}};
  for (const auto& [key, value] : meta) st_->meta.bind(1, std::string(key)).bind(2, value).run();
  exec(db_, "COMMIT");
  exec(db_, "BEGIN");
  current_ = std::make_unique<Batch>();
  queue_ = std::make_unique<Queue>();
  queue_->write = [this](Batch& b) { write(b); };
  queue_->thread = std::thread([this, q = queue_.get()] {
    run_when_idle();
    std::unique_lock lock(q->mutex);
    for (;;) {
      q->changed.wait(lock, [q] { return q->closing || !q->full.empty(); });
      if (q->full.empty()) return;  // closing and drained
      q->write_next(lock);
    }
  });
}

void RunWriter::write(Batch& b) {
  for (const StepRow& r : b.steps)
    st_->step.bind(1, r.lane_id).bind(2, r.step).bind(3, r.loss).bind(4, r.loss_scale).bind(5, r.found_inf)
        .bind(6, r.skipped).bind(7, r.lr).bind(8, r.grad_norm).bind(9, r.accuracy).bind(10, r.loss_delta)
        .bind(11, r.weight_distance).run();
  for (const LayerStatRow& r : b.layer_stats)
    st_->layer_stat.bind(1, r.lane_id).bind(2, r.step).bind(3, r.layer).bind(4, r.weight_distance)
        .bind(5, r.grad_cosine).bind(6, r.lost_updates).run();
  for (const Batch::Stats& s : b.tensor_stats)
    st_->tensor_stat.bind(1, s.lane_id).bind(2, s.step)
        .bind(3, std::span<const std::uint8_t>(b.blobs.data() + s.begin, s.size)).run();
  for (const EventRow& r : b.events)
    st_->event.bind(1, r.lane_id).bind(2, r.step).bind(3, r.kind).bind(4, r.tensor).bind(5, r.value).bind(6, r.message).run();
  for (auto& op : b.then) op();
}

void RunWriter::then(std::function<void()> op) { current_->then.push_back(std::move(op)); }

void RunWriter::row_added() {
  if (current_->large()) hand_over();
}

void RunWriter::hand_over() {
  if (current_->empty()) return;
  std::unique_lock lock(queue_->mutex);
  while (queue_->full.size() >= Queue::limit && !queue_->error) queue_->write_next(lock);
  if (queue_->error) std::rethrow_exception(queue_->error);
  queue_->full.push_back(std::move(current_));
  if (!queue_->spare.empty()) {
    current_ = std::move(queue_->spare.back());
    queue_->spare.pop_back();
  }
  lock.unlock();
  queue_->changed.notify_all();
  if (!current_) current_ = std::make_unique<Batch>();
}

void RunWriter::wait_idle() {
  hand_over();
  std::unique_lock lock(queue_->mutex);
  while (!queue_->full.empty()) queue_->write_next(lock);
  queue_->changed.wait(lock, [this] { return queue_->writing == 0; });
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
  then([this, l, &id] {
    st_->lane.bind(1, l.name).bind(2, l.recipe).bind(3, l.backend).bind(4, l.mma).bind(5, l.is_reference).bind(6, l.config_json).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  wait_idle();
  return id;
}

std::int64_t RunWriter::add_tensor(const TensorRow& t) {
  std::int64_t id = 0;
  then([this, t, &id] {
    st_->tensor.bind(1, t.lane_id).bind(2, t.layer).bind(3, t.name).bind(4, t.kind).bind(5, t.format).bind(6, t.elements).run();
    id = sqlite3_last_insert_rowid(db_);
  });
  wait_idle();
  return id;
}

void RunWriter::update_lane(const LaneRow& l) {
  then([this, l] {
    st_->lane_update.bind(1, l.verdict).bind(2, l.diverged_step).bind(3, l.first_divergence_step)
        .bind(4, l.first_nonfinite).bind(5, l.first_nonfinite_step).bind(6, l.id).run();
  });
}

void RunWriter::add_step(const StepRow& r) {
  current_->steps.push_back(r);
  row_added();
}

void RunWriter::add_tensor_stats(std::int64_t lane_id, std::int64_t step, const std::vector<TensorStatRow>& rows) {
  std::vector<std::uint8_t>& blobs = current_->blobs;
  const std::size_t begin = blobs.size();
  detail::encode_stats(rows, blobs);
  current_->tensor_stats.push_back({lane_id, step, begin, blobs.size() - begin});
  row_added();
}

void RunWriter::add_layer_stats(const LayerStatRow& r) {
  current_->layer_stats.push_back(r);
  row_added();
}

void RunWriter::add_event(const EventRow& r) {
  current_->events.push_back(r);
  row_added();
}

void RunWriter::set_meta(const std::string& key, const std::string& value) {
  then([this, key, value] { st_->meta.bind(1, key).bind(2, value).run(); });
}

void RunWriter::commit() {
  then([this] {
    exec(db_, "COMMIT");
    exec(db_, "BEGIN");
  });
  hand_over();
}

void RunWriter::commit_and_wait() {
  commit();
  wait_idle();
}

void RunWriter::finish(const std::string& status, const std::string& error) {
  if (finished_) return;
  finished_ = true;
  set_meta("status", status);
  set_meta("finished", detail::now_utc());
  if (!error.empty()) set_meta("error", error);
  then([this] {
    exec(db_, "COMMIT");
    // Fold the WAL into the database so that the finished file stands alone; a reader keeping it open would block
    // the switch back, which is harmless (the file is still complete, with its -wal beside it).
    sqlite3_exec(db_, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;", nullptr, nullptr, nullptr);
  });
  wait_idle();
}

}  // namespace mpscope::analysis
