#include "navarch/store/postgres/pg_schema.h"

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch::pg {

namespace {

// As in SQLite's schema: the serialized record (protobuf) is the source of
// truth and only the columns queries filter or sort on are copied out, so a
// new record field never needs a migration. Times are Unix nanoseconds
// (record_util.h). Ids and kinds sort bytewise (COLLATE "C"), as SQLite's
// do, whatever the database's locale: Load returns nodes by id, and an event
// kind prefix ("node.*") is an index range.
//
// Liveness has a narrow table of its own, rewritten by every heartbeat
// flush; fillfactor leaves room on each page so those updates stay HOT (no
// index change, no new page).
//
// Event ids come from event_counter, a one-row table a writing transaction
// updates (and so locks) until it commits: ids are handed out in commit
// order across every replica, so a reader paging by id never skips an event
// committed late with a smaller id, and they are never reused after Prune.
constexpr char kInitialSchema[] = R"sql(
CREATE TABLE nodes (
  node_id           text COLLATE "C" PRIMARY KEY,
  version           bigint NOT NULL,
  pool              text NOT NULL,
  status            bigint NOT NULL,
  health_status     bigint NOT NULL,
  record            bytea NOT NULL
);
CREATE INDEX nodes_by_pool ON nodes (pool);

CREATE TABLE node_liveness (
  node_id           text COLLATE "C" PRIMARY KEY,
  last_heartbeat_ns bigint NOT NULL,
  metrics           bytea
) WITH (fillfactor = 50);

CREATE TABLE instances (
  instance_id       text COLLATE "C" PRIMARY KEY,
  version           bigint NOT NULL,
  state             bigint NOT NULL,
  pool              text NOT NULL,
  node_id           text NOT NULL,
  terminated_at_ns  bigint NOT NULL,
  record            bytea NOT NULL
);
CREATE INDEX instances_by_state ON instances (state, terminated_at_ns);

CREATE TABLE commands (
  command_id        text COLLATE "C" PRIMARY KEY,
  node_id           text NOT NULL,
  state             bigint NOT NULL,
  issued_at_ns      bigint NOT NULL,
  updated_at_ns     bigint NOT NULL,
  version           bigint NOT NULL,
  record            bytea NOT NULL
);
CREATE INDEX commands_by_state ON commands (state, issued_at_ns, command_id);
CREATE INDEX commands_by_node ON commands (node_id);

CREATE TABLE events (
  id                bigint PRIMARY KEY,
  time_ns           bigint NOT NULL,
  kind              text COLLATE "C" NOT NULL,
  node_id           text NOT NULL,
  pool              text NOT NULL,
  record            bytea NOT NULL
);
CREATE INDEX events_by_node ON events (node_id, id);
CREATE INDEX events_by_pool ON events (pool, id);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_time ON events (time_ns);

CREATE TABLE event_counter (
  singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_id           bigint NOT NULL
);
INSERT INTO event_counter (last_id) VALUES (0);
)sql";

// Leadership of the replicas sharing the database (leader_lease.h): one
// row, its epoch only grows. Expiry is judged by the server's clock alone
// (clock_timestamp()), so replicas' clocks never have to agree.
constexpr char kLeaderLease[] = R"sql(
CREATE TABLE leader_lease (
  singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  holder            text NOT NULL DEFAULT '',
  epoch             bigint NOT NULL DEFAULT 0,
  expires_at        timestamptz NOT NULL DEFAULT 'epoch',
  acquired_at       timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO leader_lease DEFAULT VALUES;
)sql";

// The replicas sharing the database, as each last announced itself (every
// lease round): what `navarch cluster status` lists, and where followers
// find the leader to forward calls to. last_seen is the server's clock.
constexpr char kReplicas[] = R"sql(
CREATE TABLE replicas (
  replica_id        text PRIMARY KEY,
  grpc_address      text NOT NULL,
  http_address      text NOT NULL,
  version           text NOT NULL,
  started_at        timestamptz NOT NULL,
  last_seen         timestamptz NOT NULL
);
)sql";

constexpr char kCreateHistory[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     bigint PRIMARY KEY,
  name        text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)
)sql";

absl::StatusOr<int64_t> QueryInt(Session& s, const std::string& sql) {
  NAVARCH_ASSIGN_OR_RETURN(Result r, s.Query(sql, Params()));
  if (r.rows() != 1) {
    return absl::InternalError(absl::StrCat("postgres: no row from ", sql));
  }
  return r.Int(0, 0);
}

// A schema holding tables but no schema_migrations is someone else's.
absl::Status EnsureHistory(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(
      int64_t ours,
      QueryInt(s,
               "SELECT count(*) FROM pg_tables WHERE schemaname = "
               "current_schema() AND tablename = 'schema_migrations'"));
  if (ours > 0) return absl::OkStatus();
  NAVARCH_ASSIGN_OR_RETURN(
      int64_t tables,
      QueryInt(s,
               "SELECT count(*) FROM pg_tables WHERE schemaname = "
               "current_schema()"));
  if (tables > 0) {
    return absl::FailedPreconditionError(
        "postgres: the database schema has tables and no schema_migrations "
        "table: it is not a Navarch database; refusing to touch it (give "
        "Navarch a database or schema of its own)");
  }
  return s.Exec(kCreateHistory);
}

// One step in one transaction. Returns true when there was nothing to do.
absl::StatusOr<bool> MigrateOneStep(Session& s,
                                    const std::vector<Migration>& migrations) {
  NAVARCH_RETURN_IF_ERROR(EnsureHistory(s));
  NAVARCH_ASSIGN_OR_RETURN(
      int64_t current, QueryInt(s,
                                "SELECT coalesce(max(version), 0)::int8 FROM "
                                "schema_migrations"));
  NAVARCH_ASSIGN_OR_RETURN(const Migration* next,
                           NextMigration(migrations, current));
  if (next == nullptr) return true;
  const Migration& step = *next;
  NAVARCH_RETURN_IF_ERROR(s.Exec("BEGIN"));
  absl::Status applied = Annotate(
      s.Exec(step.sql.c_str()),
      absl::StrCat("schema migration ", step.version, " (", step.name, ")"));
  if (applied.ok()) {
    applied = s.Query(
                   "INSERT INTO schema_migrations (version, name) "
                   "VALUES ($1::int8, $2::text)",
                   Params().Int(step.version).Text(step.name))
                  .status();
  }
  if (applied.ok()) applied = s.Exec("COMMIT");
  if (!applied.ok()) {
    if (s.InTransaction()) s.Exec("ROLLBACK").IgnoreError();
    return applied;
  }
  return false;
}

}  // namespace

const std::vector<Migration>& BuiltinMigrations() {
  static const auto* migrations = new std::vector<Migration>{
      {1, "initial schema: nodes, liveness, instances, commands, events",
       kInitialSchema},
      {2, "leader lease with a fencing epoch", kLeaderLease},
      {3, "replicas and their addresses", kReplicas},
  };
  return *migrations;
}

absl::StatusOr<int> Migrate(Session& session,
                            const std::vector<Migration>& migrations) {
  NAVARCH_RETURN_IF_ERROR(CheckMigrationHistory(migrations));
  // Session-level: held across the steps' transactions. Another control
  // plane starting now waits here, then finds nothing left to do.
  NAVARCH_RETURN_IF_ERROR(session
                              .Query("SELECT pg_advisory_lock($1::int8)",
                                     Params().Int(kMigrationLockKey))
                              .status());
  absl::StatusOr<int64_t> version;
  for (;;) {
    absl::StatusOr<bool> done = MigrateOneStep(session, migrations);
    if (!done.ok()) {
      version = done.status();
      break;
    }
    if (*done) {
      version = QueryInt(session,
                         "SELECT coalesce(max(version), 0)::int8 FROM "
                         "schema_migrations");
      break;
    }
  }
  session
      .Query("SELECT pg_advisory_unlock($1::int8)",
             Params().Int(kMigrationLockKey))
      .status()
      .IgnoreError();
  if (!version.ok()) return version.status();
  return static_cast<int>(*version);
}

}  // namespace navarch::pg
