#include "navarch/store/postgres/pg_util.h"

#include <endian.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch::pg {

namespace {

constexpr uint32_t kTextOid = 25;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kByteaOid = 17;

void PutU32(std::string& out, uint32_t v) {
  uint32_t be = htobe32(v);
  out.append(reinterpret_cast<const char*>(&be), 4);
}

void PutU64(std::string& out, uint64_t v) {
  uint64_t be = htobe64(v);
  out.append(reinterpret_cast<const char*>(&be), 8);
}

// PostgreSQL's binary array format (array_send): dimensions, a has-nulls
// flag, the element type, then each element as a length and its bytes.
std::string ArrayHeader(uint32_t oid, size_t n, bool has_null) {
  std::string out;
  PutU32(out, n == 0 ? 0 : 1);  // dimensions
  PutU32(out, has_null ? 1 : 0);
  PutU32(out, oid);
  if (n > 0) {
    PutU32(out, static_cast<uint32_t>(n));  // length of the dimension
    PutU32(out, 1);                         // its lower bound
  }
  return out;
}

struct ConninfoDeleter {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};

absl::StatusOr<std::unique_ptr<PQconninfoOption, ConninfoDeleter>> ParseDsn(
    const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    std::string why = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    return absl::InvalidArgumentError(
        absl::StrCat("postgres: storage.dsn does not parse: ",
                     absl::StripAsciiWhitespace(why)));
  }
  return std::unique_ptr<PQconninfoOption, ConninfoDeleter>(options);
}

}  // namespace

absl::Status CheckDsn(const std::string& dsn) {
  NAVARCH_ASSIGN_OR_RETURN(auto options, ParseDsn(dsn));
  for (PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr &&
        o->val[0] != '\0') {
      return absl::InvalidArgumentError(
          "postgres: storage.dsn holds a password; give it through "
          "PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass) instead, "
          "so it is never in the config file in clear");
    }
  }
  return absl::OkStatus();
}

std::string DescribeDsn(const std::string& dsn) {
  auto options = ParseDsn(dsn);
  if (!options.ok()) return "postgres";
  std::string host, port, db;
  for (PQconninfoOption* o = options->get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::strcmp(o->keyword, "host") == 0) host = o->val;
    if (std::strcmp(o->keyword, "port") == 0) port = o->val;
    if (std::strcmp(o->keyword, "dbname") == 0) db = o->val;
  }
  auto env = [](const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr && v[0] != '\0' ? v : fallback);
  };
  if (host.empty()) host = env("PGHOST", "localhost");
  if (port.empty()) port = env("PGPORT", "5432");
  if (db.empty()) db = env("PGDATABASE", "(default database)");
  return absl::StrCat(host, ":", port, "/", db);
}

// --- Params ---

Params& Params::Add(std::string bytes) {
  values_.emplace_back(std::move(bytes));
  return *this;
}

Params& Params::Text(absl::string_view v) { return Add(std::string(v)); }

Params& Params::Int(int64_t v) {
  std::string out;
  PutU64(out, static_cast<uint64_t>(v));
  return Add(std::move(out));
}

Params& Params::Bytes(absl::string_view v) { return Add(std::string(v)); }

Params& Params::Null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

Params& Params::TextArray(const std::vector<absl::string_view>& v) {
  std::string out = ArrayHeader(kTextOid, v.size(), false);
  for (absl::string_view e : v) {
    PutU32(out, static_cast<uint32_t>(e.size()));
    out.append(e.data(), e.size());
  }
  return Add(std::move(out));
}

Params& Params::IntArray(const std::vector<int64_t>& v) {
  std::string out = ArrayHeader(kInt8Oid, v.size(), false);
  for (int64_t e : v) {
    PutU32(out, 8);
    PutU64(out, static_cast<uint64_t>(e));
  }
  return Add(std::move(out));
}

Params& Params::BytesArray(
    const std::vector<std::optional<absl::string_view>>& v) {
  bool has_null = false;
  for (const auto& e : v) has_null = has_null || !e.has_value();
  std::string out = ArrayHeader(kByteaOid, v.size(), has_null);
  for (const auto& e : v) {
    if (!e) {
      PutU32(out, 0xffffffffu);  // -1: NULL
      continue;
    }
    PutU32(out, static_cast<uint32_t>(e->size()));
    out.append(e->data(), e->size());
  }
  return Add(std::move(out));
}

Params::Bound Params::Bind() const {
  Bound b;
  for (const auto& v : values_) {
    b.values.push_back(v ? v->data() : nullptr);
    b.lengths.push_back(v ? static_cast<int>(v->size()) : 0);
    b.formats.push_back(1);
  }
  return b;
}

// --- Result ---

absl::string_view Result::Bytes(int row, int col) const {
  return absl::string_view(PQgetvalue(r_.get(), row, col),
                           PQgetlength(r_.get(), row, col));
}

int64_t Result::Int(int row, int col) const {
  if (PQgetlength(r_.get(), row, col) != 8) return 0;
  uint64_t be;
  std::memcpy(&be, PQgetvalue(r_.get(), row, col), 8);
  return static_cast<int64_t>(be64toh(be));
}

int64_t Result::Affected() const {
  const char* n = PQcmdTuples(r_.get());
  return (n == nullptr || n[0] == '\0') ? 0 : std::strtoll(n, nullptr, 10);
}

// --- Errors ---

absl::Status ErrorStatus(PGconn* conn, const PGresult* r,
                         absl::string_view what) {
  const char* state =
      r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message(primary != nullptr ? primary
                      : conn != nullptr  ? PQerrorMessage(conn)
                                         : "no connection");
  message = absl::StrCat("postgres: ", what, ": ",
                         absl::StripAsciiWhitespace(message));
  std::string code = state != nullptr ? state : "";
  if (!code.empty()) absl::StrAppend(&message, " (SQLSTATE ", code, ")");
  bool lost = conn == nullptr || PQstatus(conn) != CONNECTION_OK;
  if (lost || code.empty() || absl::StartsWith(code, "08") ||
      absl::StartsWith(code, "53") || absl::StartsWith(code, "57P") ||
      code == "55P03" || code == "25006") {
    return absl::UnavailableError(message);
  }
  if (code == "40001" || code == "40P01") return absl::AbortedError(message);
  return absl::InternalError(message);
}

// --- Session ---

Session::Session(std::string dsn, std::vector<Statement> statements,
                 absl::Duration connect_timeout)
    : dsn_(std::move(dsn)),
      statements_(std::move(statements)),
      connect_timeout_(connect_timeout) {}

Session::~Session() { Disconnect(); }

void Session::Disconnect() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

absl::Status Session::Connect() {
  Disconnect();
  std::string timeout = absl::StrCat(
      std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout_)));
  // The DSN comes last, so what it says wins over these defaults.
  const char* keys[] = {"connect_timeout", "application_name", "dbname",
                        nullptr};
  const char* values[] = {timeout.c_str(), "navarch", dsn_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    absl::Status s = absl::UnavailableError(absl::StrCat(
        "postgres: cannot connect to ", DescribeDsn(dsn_), ": ",
        absl::StripAsciiWhitespace(conn_ != nullptr ? PQerrorMessage(conn_)
                                                    : "out of memory")));
    Disconnect();
    return s;
  }
  // A write waiting on another replica's row lock gives up rather than
  // stall the writer without bound.
  NAVARCH_RETURN_IF_ERROR(Exec("SET lock_timeout = '5s'"));
  for (const Statement& st : statements_) {
    NAVARCH_RETURN_IF_ERROR(
        Check(PQprepare(conn_, st.name.c_str(), st.sql.c_str(), 0, nullptr),
              absl::StrCat("prepare ", st.name))
            .status());
  }
  return absl::OkStatus();
}

absl::Status Session::Ensure() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
    return absl::OkStatus();
  }
  absl::Status s = Connect();
  if (!s.ok()) Disconnect();
  return s;
}

absl::StatusOr<Result> Session::Check(PGresult* r, absl::string_view what) {
  ExecStatusType status = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    return Result(r);
  }
  absl::Status s = ErrorStatus(conn_, r, what);
  PQclear(r);
  return s;
}

absl::Status Session::Connected() const {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("postgres: no connection to ", DescribeDsn(dsn_)));
}

absl::StatusOr<Result> Session::Run(const std::string& name,
                                    const Params& params) {
  NAVARCH_RETURN_IF_ERROR(Connected());
  const Params::Bound b = params.Bind();
  return Check(PQexecPrepared(conn_, name.c_str(), b.size(), b.values.data(),
                              b.lengths.data(), b.formats.data(),
                              /*resultFormat=*/1),
               name);
}

absl::StatusOr<Result> Session::Query(const std::string& sql,
                                      const Params& params) {
  NAVARCH_RETURN_IF_ERROR(Connected());
  const Params::Bound b = params.Bind();
  return Check(PQexecParams(conn_, sql.c_str(), b.size(), nullptr,
                            b.values.data(), b.lengths.data(), b.formats.data(),
                            /*resultFormat=*/1),
               "query");
}

absl::Status Session::Exec(const char* sql) {
  NAVARCH_RETURN_IF_ERROR(Connected());
  return Check(PQexec(conn_, sql), sql).status();
}

bool Session::InTransaction() const {
  if (conn_ == nullptr) return false;
  PGTransactionStatusType t = PQtransactionStatus(conn_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

}  // namespace navarch::pg
