#include "analysis/run_store_sql.hpp"

#include <chrono>
#include <ctime>

#include "analysis/varint.hpp"

namespace mpscope::analysis::detail {

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

namespace {
std::uint64_t get_varint(const std::vector<std::uint8_t>& blob, std::size_t& at) {
  return read_varint<RunStoreError>(blob, at, "tensor statistics blob");
}
}  // namespace

// One lane-step's tensor statistics: version 1, count, then per tensor: tensor id, a flag (1: rounding counts
// follow), [rounded, underflow, subnormal, overflow], histogram length, histogram (Log2Histogram::encode).
void encode_stats(const std::vector<TensorStatRow>& rows, std::vector<std::uint8_t>& out) {
  out.push_back(1);
  append_varint(out, rows.size());
  for (const auto& r : rows) {
    append_varint(out, static_cast<std::uint64_t>(r.tensor_id));
    const bool counted = r.rounded.has_value();
    out.push_back(counted ? 1 : 0);
    if (counted)
      for (const auto& v : {r.rounded, r.underflow, r.subnormal, r.overflow}) append_varint(out, static_cast<std::uint64_t>(v.value_or(0)));
    thread_local std::vector<std::uint8_t> histogram;  // (reused: no allocation per tensor)
    histogram.clear();
    r.histogram.encode_to(histogram);
    append_varint(out, histogram.size());
    out.insert(out.end(), histogram.begin(), histogram.end());
  }
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


}  // namespace mpscope::analysis::detail
