// A thin layer over libpq for the PostgreSQL store: a session that
// reconnects and re-prepares its statements, binary parameters (arrays
// included, so a heartbeat flush of every node is one statement), binary
// results, and errors as absl::Status by SQLSTATE.
#ifndef NAVARCH_STORE_POSTGRES_PG_UTIL_H_
#define NAVARCH_STORE_POSTGRES_PG_UTIL_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace navarch::pg {

// OK when `dsn` parses as a libpq connection string or URL and carries no
// password: passwords come from libpq's own conventions (PGPASSWORD,
// PGPASSFILE / ~/.pgpass), never from a config file in clear.
absl::Status CheckDsn(const std::string& dsn);

// "host:port/dbname" (from libpq's view of `dsn` and its environment), for
// messages; never the password.
std::string DescribeDsn(const std::string& dsn);

// Parameters of one statement, all in binary format. The types are fixed by
// casts in the SQL ($1::int8), so each value must be of its cast's type.
class Params {
 public:
  Params& Text(absl::string_view v);   // text
  Params& Int(int64_t v);              // int8
  Params& Bytes(absl::string_view v);  // bytea
  Params& Null();
  // One-dimensional arrays: text[], int8[], bytea[] (nullopt: NULL).
  Params& TextArray(const std::vector<absl::string_view>& v);
  Params& IntArray(const std::vector<int64_t>& v);
  Params& BytesArray(const std::vector<std::optional<absl::string_view>>& v);

  // The arrays PQexec* take: pointers into this object, valid while it
  // lives unchanged.
  struct Bound {
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;  // all binary
    int size() const { return static_cast<int>(values.size()); }
  };
  Bound Bind() const;

 private:
  Params& Add(std::string bytes);
  std::vector<std::optional<std::string>> values_;
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};

// A statement's result, its columns in binary format.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  int rows() const { return PQntuples(r_.get()); }
  int columns() const { return PQnfields(r_.get()); }
  bool IsNull(int row, int col) const {
    return PQgetisnull(r_.get(), row, col) != 0;
  }
  absl::string_view Bytes(int row, int col) const;  // text or bytea
  int64_t Int(int row, int col) const;              // int8
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t Affected() const;

 private:
  std::unique_ptr<PGresult, ResultDeleter> r_;
};

struct Statement {
  std::string name;
  std::string sql;
};

// One connection, used by one thread at a time. When the server goes away
// (restart, network), the next Ensure() reconnects and prepares the
// statements again; statements fail with UNAVAILABLE meanwhile.
class Session {
 public:
  Session(std::string dsn, std::vector<Statement> statements,
          absl::Duration connect_timeout);
  ~Session();

  // Connected (reconnecting if needed) with every statement prepared.
  absl::Status Ensure();
  // A prepared statement by name.
  absl::StatusOr<Result> Run(const std::string& name, const Params& params);
  // Any statement, with parameters ($1...); prepared on each call.
  absl::StatusOr<Result> Query(const std::string& sql, const Params& params);
  // A statement without parameters or rows (BEGIN, SET ...).
  absl::Status Exec(const char* sql);
  // Whether a transaction is open (including one failed and not yet rolled
  // back).
  bool InTransaction() const;
  // Drops the connection (Close, tests).
  void Disconnect();
  PGconn* conn() { return conn_; }

 private:
  absl::Status Connect();
  // UNAVAILABLE unless connected (a statement never reconnects: Ensure
  // does, between transactions).
  absl::Status Connected() const;
  absl::StatusOr<Result> Check(PGresult* r, absl::string_view what);

  const std::string dsn_;
  const std::vector<Statement> statements_;
  const absl::Duration connect_timeout_;
  PGconn* conn_ = nullptr;
};

// A failed result (or none) as a status: UNAVAILABLE for connection loss,
// a server shutting down, lock timeouts and lack of resources; ABORTED for
// serialization failures and deadlocks (another writer won); INTERNAL else.
absl::Status ErrorStatus(PGconn* conn, const PGresult* r,
                         absl::string_view what);

}  // namespace navarch::pg

#endif  // NAVARCH_STORE_POSTGRES_PG_UTIL_H_
