// Internal to the run store (run_writer.cpp, run_reader.cpp): the schema, SQLite helpers and the encoding of a
// lane-step's tensor statistics.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analysis/run_store.hpp"

namespace mpscope::analysis::detail {

inline constexpr int application_id = 0x6D707363;  // "mpsc"
extern const char* const schema_sql;

std::string now_utc();
void check(sqlite3* db, int rc, const char* what);  // throws RunStoreError unless rc is OK, DONE or ROW
void exec(sqlite3* db, const char* sql);

// One lane-step's tensor statistics as a blob (docs/run-format.md), appended to `out`.
void encode_stats(const std::vector<TensorStatRow>& rows, std::vector<std::uint8_t>& out);
std::vector<TensorStatRow> decode_stats(const std::vector<std::uint8_t>& blob, std::int64_t step);

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
  // (the bytes must stay put until run(): the writer binds its batch's blobs in place)
  Statement& bind(int i, std::span<const std::uint8_t> v) {
    return done(sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
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


}  // namespace mpscope::analysis::detail
