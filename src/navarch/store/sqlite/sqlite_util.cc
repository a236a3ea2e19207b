#include "navarch/store/sqlite/sqlite_util.h"

#include <sqlite3.h>

#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace navarch::sqlite {

namespace {

// What an operator should do about the errors they can fix, in words.
// Read-only and cannot-open name the file's permissions; corruption points
// at the restore steps (docs/storage.md, "Backups").
absl::string_view Advice(int rc) {
  switch (rc & 0xff) {
    case SQLITE_READONLY:
      return "the database file or its folder is read-only for this user: "
             "make the data folder writable (server.data_dir)";
    case SQLITE_CANTOPEN:
      return "cannot open the database file: check that the data folder "
             "(server.data_dir) exists and this user may read and write it";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "the database file is damaged or is not a database: stop the "
             "control plane and restore the last backup (docs/storage.md, "
             "\"Backups\")";
    case SQLITE_FULL:
      return "the disk is full";
    default:
      return "";
  }
}

}  // namespace

std::string DescribeStatement(absl::string_view sql) {
  sql = absl::StripAsciiWhitespace(sql);
  if (sql.size() <= 60 && sql.find('\n') == absl::string_view::npos) {
    return absl::StrCat("`", sql, "`");
  }
  // Long statements (migrations, schema) are named by their first words,
  // whole words only, and marked as such: never a statement cut mid-way.
  std::vector<absl::string_view> words =
      absl::StrSplit(sql, absl::ByAnyChar(" \n\t("), absl::SkipEmpty());
  if (words.size() > 3) words.resize(3);
  return absl::StrCat("the statement beginning `", absl::StrJoin(words, " "),
                      "` (", sql.size(), " bytes)");
}

absl::Status ErrorStatus(sqlite3* db, int rc, absl::string_view context) {
  // The connection's message is more specific, but only if it describes rc.
  std::string detail = sqlite3_errstr(rc);
  if (db != nullptr && sqlite3_extended_errcode(db) == rc)
    detail = sqlite3_errmsg(db);
  absl::string_view advice = Advice(rc);
  std::string message =
      advice.empty()
          ? absl::StrCat("sqlite: ", context, ": ", detail, " (code ", rc, ")")
          : absl::StrCat("sqlite: ", context, ": ", advice,
                         " (SQLite: ", detail, ", code ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_INTERRUPT:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

void ConnectionCloser::operator()(sqlite3* db) const {
  // v2 defers the close until statements still open are finalized, so the
  // order in which owners are destroyed does not matter.
  sqlite3_close_v2(db);
}

absl::StatusOr<Connection> OpenConnection(const std::string& path, int flags,
                                          absl::Duration busy_timeout) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  Connection db(raw);  // sqlite3_open_v2 allocates a handle even on failure
  if (rc != SQLITE_OK) return ErrorStatus(raw, rc, absl::StrCat("open ", path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(
      raw, static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)));
  return db;
}

absl::Status Exec(sqlite3* db, absl::string_view sql) {
  std::string text(sql);
  // sqlite3_errmsg carries the same text as exec's own message.
  int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return absl::OkStatus();
  return ErrorStatus(db, rc, absl::StrCat("running ", DescribeStatement(sql)));
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_status_(std::move(other.bind_status_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

absl::StatusOr<Statement> Statement::Prepare(sqlite3* db, absl::string_view sql,
                                             bool persistent) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt,
                              nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return ErrorStatus(db, rc,
                       absl::StrCat("preparing ", DescribeStatement(sql)));
  }
  return Statement(db, stmt);
}

void Statement::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = ErrorStatus(db_, rc, absl::StrCat("bind parameter ", index));
  }
}

Statement& Statement::BindInt(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

Statement& Statement::BindText(int index, absl::string_view value) {
  // A non-null pointer even for "" so SQLite stores an empty text, not NULL.
  NoteBind(sqlite3_bind_text64(stmt_, index, value.empty() ? "" : value.data(),
                               value.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
           index);
  return *this;
}

Statement& Statement::BindBlob(int index, absl::string_view value) {
  NoteBind(sqlite3_bind_blob64(stmt_, index, value.empty() ? "" : value.data(),
                               value.size(), SQLITE_TRANSIENT),
           index);
  return *this;
}

Statement& Statement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return ErrorStatus(
      db_, rc,
      absl::StrCat("step ",
                   absl::string_view(sqlite3_sql(stmt_)).substr(0, 80)));
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

void Statement::Reset() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = absl::OkStatus();
}

int64_t Statement::ColumnInt(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

absl::string_view Statement::ColumnBlob(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);
  if (data == nullptr || size <= 0) return {};
  return absl::string_view(static_cast<const char*>(data),
                           static_cast<size_t>(size));
}

}  // namespace navarch::sqlite
