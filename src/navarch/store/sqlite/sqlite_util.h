// Thin RAII over the SQLite C API: connections, prepared statements, and the
// mapping of SQLite result codes to absl::Status. Not thread-safe: each
// connection is used by one thread at a time (the store's locks see to it).
#ifndef NAVARCH_STORE_SQLITE_SQLITE_UTIL_H_
#define NAVARCH_STORE_SQLITE_SQLITE_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/store/record_util.h"

struct sqlite3;
struct sqlite3_stmt;

namespace navarch::sqlite {

// The Status for SQLite result code `rc`: UNAVAILABLE for trouble that may
// pass (busy, locked, I/O, disk full, cannot open, read-only), INTERNAL for
// corruption and everything else. The message names `context`, says in
// words what to do where an operator can act (a read-only or unopenable
// data folder, a damaged file: restore from backup), and keeps SQLite's own
// text and code.
absl::Status ErrorStatus(sqlite3* db, int rc, absl::string_view context);

// A statement for an error message: a short one in full, a long one by its
// first words and its length (never cut mid-way, never the whole schema).
std::string DescribeStatement(absl::string_view sql);

struct ConnectionCloser {
  void operator()(sqlite3* db) const;
};
using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;

// Opens `path` with SQLITE_OPEN_* `flags` (NOMUTEX is added: callers
// serialize), extended result codes on, and a busy timeout.
absl::StatusOr<Connection> OpenConnection(const std::string& path, int flags,
                                          absl::Duration busy_timeout);

// Runs one or more statements that return no rows the caller needs.
absl::Status Exec(sqlite3* db, absl::string_view sql);

// A prepared statement. Bind errors are kept and reported by Step, so call
// sites stay linear. Reset() after use: a SELECT left mid-way holds its read
// snapshot open, and the connection would keep seeing old data.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // `persistent`: the statement lives as long as the connection.
  static absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view sql,
                                           bool persistent = true);

  // Parameters are 1-based, as in SQLite.
  Statement& BindInt(int index, int64_t value);
  Statement& BindText(int index, absl::string_view value);
  Statement& BindBlob(int index, absl::string_view value);
  Statement& BindNull(int index);

  // true: a row is ready; false: done.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  absl::Status Run();
  // Back to the start, bindings cleared.
  void Reset();

  int64_t ColumnInt(int col) const;
  bool ColumnIsNull(int col) const;
  // Valid until the next Step or Reset.
  absl::string_view ColumnBlob(int col) const;

  bool valid() const { return stmt_ != nullptr; }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void NoteBind(int rc, int index);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status bind_status_;
};

// Resets a statement when it goes out of scope, whatever path returns.
class ScopedReset {
 public:
  explicit ScopedReset(Statement& s) : s_(s) {}
  ~ScopedReset() { s_.Reset(); }
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;

 private:
  Statement& s_;
};

// Times as integer nanoseconds (record_util.h).
using ::navarch::NanosToTime;
using ::navarch::TimeToNanos;

}  // namespace navarch::sqlite

#endif  // NAVARCH_STORE_SQLITE_SQLITE_UTIL_H_
