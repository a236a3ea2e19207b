#include "navarch/store/sqlite/sqlite_schema.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/store/sqlite/sqlite_util.h"

namespace navarch::sqlite {

namespace {

// Every table keeps the serialized record (protobuf) as the source of truth
// and copies out only the columns queries filter or sort on, so a new record
// field never needs a migration. Times are Unix nanoseconds (sqlite_util.h).
// Step 2 moves the nodes table's last_heartbeat_ns and metrics columns to
// node_liveness; step 1 stays as released (append only).
constexpr char kInitialSchema[] = R"sql(
CREATE TABLE nodes (
  node_id           TEXT PRIMARY KEY NOT NULL,
  version           INTEGER NOT NULL,
  pool              TEXT NOT NULL,
  status            INTEGER NOT NULL,
  health_status     INTEGER NOT NULL,
  -- Written by heartbeat flushes without touching the record; the newest of
  -- this and the record's own last_heartbeat is what readers see.
  last_heartbeat_ns INTEGER NOT NULL,
  -- NodeMetrics from the latest heartbeat flush; NULL: the record's own.
  metrics           BLOB,
  record            BLOB NOT NULL
);
CREATE INDEX nodes_by_pool ON nodes (pool);

CREATE TABLE instances (
  instance_id       TEXT PRIMARY KEY NOT NULL,
  version           INTEGER NOT NULL,
  state             INTEGER NOT NULL,
  pool              TEXT NOT NULL,
  node_id           TEXT NOT NULL,
  terminated_at_ns  INTEGER NOT NULL,
  record            BLOB NOT NULL
);
CREATE INDEX instances_by_state ON instances (state, terminated_at_ns);

CREATE TABLE commands (
  command_id        TEXT PRIMARY KEY NOT NULL,
  node_id           TEXT NOT NULL,
  state             INTEGER NOT NULL,
  issued_at_ns      INTEGER NOT NULL,
  updated_at_ns     INTEGER NOT NULL,
  version           INTEGER NOT NULL,
  record            BLOB NOT NULL
);
-- Load reads the open commands in issue order.
CREATE INDEX commands_by_state ON commands (state, issued_at_ns, command_id);
CREATE INDEX commands_by_node ON commands (node_id);

-- AUTOINCREMENT: an id is never reused, even after Prune deletes the newest
-- events, so a client's paging cursor never skips or repeats an event.
CREATE TABLE events (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ns           INTEGER NOT NULL,
  kind              TEXT NOT NULL,
  node_id           TEXT NOT NULL,
  pool              TEXT NOT NULL,
  record            BLOB NOT NULL
);
CREATE INDEX events_by_node ON events (node_id, id);
CREATE INDEX events_by_pool ON events (pool, id);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE INDEX events_by_time ON events (time_ns);
)sql";

// Liveness in a narrow table of its own. A heartbeat flush (every node, once
// a second) used to UPDATE the wide nodes row: the ~1.6 KB record rode along,
// two rows to a page, so a flush of 100,000 nodes wrote ~200 MB of pages to
// the WAL. A liveness row is the id, a time and the metrics (~300 bytes), and
// the record is not in it. WITHOUT ROWID: the rows are small and always found
// by node_id, so the primary key b-tree is the table (one b-tree per write).
//
// Every node has exactly one liveness row: the migration copies them, a node
// Commit upserts it, a deleted node takes its row with it (the trigger).
//
// The columns of the same names in `nodes` are dropped: nothing may read a
// stale copy, and a binary older than this step refuses the database anyway
// (its schema version is newer). DROP COLUMN needs SQLite 3.35 (Debian 12
// ships 3.40); it rewrites the nodes table once, in this step's transaction.
constexpr char kNodeLiveness[] = R"sql(
CREATE TABLE node_liveness (
  node_id           TEXT PRIMARY KEY NOT NULL,
  -- The newest heartbeat, from a flush or from the record a Commit wrote;
  -- the newest of this and the record's own last_heartbeat is what readers
  -- see.
  last_heartbeat_ns INTEGER NOT NULL,
  -- NodeMetrics from the latest heartbeat flush; NULL: the record's own.
  metrics           BLOB
) WITHOUT ROWID;

INSERT INTO node_liveness (node_id, last_heartbeat_ns, metrics)
  SELECT node_id, last_heartbeat_ns, metrics FROM nodes;

CREATE TRIGGER nodes_delete_liveness AFTER DELETE ON nodes
BEGIN
  DELETE FROM node_liveness WHERE node_id = old.node_id;
END;

ALTER TABLE nodes DROP COLUMN metrics;
ALTER TABLE nodes DROP COLUMN last_heartbeat_ns;
)sql";

constexpr char kCreateHistory[] = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version     INTEGER PRIMARY KEY NOT NULL,
  name        TEXT NOT NULL,
  applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
)sql";

absl::StatusOr<int64_t> QueryInt(sqlite3* db, absl::string_view sql) {
  NAVARCH_ASSIGN_OR_RETURN(Statement s,
                           Statement::Prepare(db, sql, /*persistent=*/false));
  NAVARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row)
    return absl::InternalError(absl::StrCat("sqlite: no row from ", sql));
  return s.ColumnInt(0);
}

// One step in one transaction. Returns true when there was nothing left to do.
absl::StatusOr<bool> MigrateOneStep(sqlite3* db,
                                    const std::vector<Migration>& migrations) {
  // Another process opening the same file waits here (busy timeout) rather
  // than applying the same step twice.
  NAVARCH_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  auto run = [&]() -> absl::StatusOr<bool> {
    NAVARCH_ASSIGN_OR_RETURN(
        int64_t ours,
        QueryInt(db,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                 "AND name = 'schema_migrations'"));
    if (ours == 0) {
      NAVARCH_ASSIGN_OR_RETURN(int64_t objects,
                               QueryInt(db,
                                        "SELECT count(*) FROM sqlite_master "
                                        "WHERE name NOT LIKE 'sqlite_%'"));
      if (objects > 0) {
        return absl::FailedPreconditionError(
            "the file is an SQLite database but not a Navarch one (it has "
            "tables and no "
            "schema_migrations table); refusing to touch it");
      }
      NAVARCH_RETURN_IF_ERROR(Exec(db, kCreateHistory));
    }
    NAVARCH_ASSIGN_OR_RETURN(int64_t current,
                             QueryInt(db,
                                      "SELECT coalesce(max(version), 0) "
                                      "FROM schema_migrations"));
    NAVARCH_ASSIGN_OR_RETURN(const Migration* next,
                             NextMigration(migrations, current));
    if (next == nullptr) return true;
    const Migration& step = *next;
    NAVARCH_RETURN_IF_ERROR(Annotate(
        Exec(db, step.sql),
        absl::StrCat("schema migration ", step.version, " (", step.name, ")")));
    NAVARCH_ASSIGN_OR_RETURN(
        Statement record,
        Statement::Prepare(
            db, "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
            /*persistent=*/false));
    NAVARCH_RETURN_IF_ERROR(
        record.BindInt(1, step.version).BindText(2, step.name).Run());
    return false;
  };
  absl::StatusOr<bool> done = run();
  if (!done.ok()) {
    if (!sqlite3_get_autocommit(db)) Exec(db, "ROLLBACK").IgnoreError();
    return done.status();
  }
  NAVARCH_RETURN_IF_ERROR(Exec(db, "COMMIT"));
  return *done;
}

}  // namespace

const std::vector<Migration>& BuiltinMigrations() {
  static const auto* migrations = new std::vector<Migration>{
      {1, "initial schema: nodes, instances, commands, events", kInitialSchema},
      {2, "node liveness (last heartbeat, metrics) in a narrow table",
       kNodeLiveness},
  };
  return *migrations;
}

absl::StatusOr<int> Migrate(sqlite3* db,
                            const std::vector<Migration>& migrations) {
  NAVARCH_RETURN_IF_ERROR(CheckMigrationHistory(migrations));
  for (;;) {
    NAVARCH_ASSIGN_OR_RETURN(bool done, MigrateOneStep(db, migrations));
    if (done) break;
  }
  return SchemaVersion(db);
}

absl::StatusOr<int> SchemaVersion(sqlite3* db) {
  NAVARCH_ASSIGN_OR_RETURN(
      int64_t has,
      QueryInt(db,
               "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
               "AND name = 'schema_migrations'"));
  if (has == 0) return 0;
  NAVARCH_ASSIGN_OR_RETURN(
      int64_t v,
      QueryInt(db, "SELECT coalesce(max(version), 0) FROM schema_migrations"));
  return static_cast<int>(v);
}

}  // namespace navarch::sqlite
