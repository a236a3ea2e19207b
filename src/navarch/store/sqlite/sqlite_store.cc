#include "navarch/store/sqlite/sqlite_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/store/event_sql.h"
#include "navarch/store/record_util.h"

namespace navarch {

using sqlite::NanosToTime;
using sqlite::ScopedReset;
using sqlite::Statement;
using sqlite::TimeToNanos;

struct SqliteStore::WriterStatements {
  Statement begin, commit, rollback, savepoint, rollback_to_savepoint,
      release_savepoint;
  Statement node_version, node_upsert, liveness_upsert;
  Statement instance_version, instance_upsert;
  Statement command_version, command_upsert;
  Statement event_insert;
  Statement heartbeat;
  Statement prune_events, prune_instances, prune_commands;
};

struct SqliteStore::ReaderStatements {
  Statement begin, commit, rollback;
  Statement nodes, node;
  Statement instances;
  Statement open_commands, command;
  Statement last_event_id;
  Statement ping;
};

namespace {

// A node row: the record, with its liveness (schema v2: a table of its own)
// beside it. LEFT JOIN: a node without a liveness row (there should be none)
// still reads, as its record alone.
constexpr char kNodeSelect[] =
    "SELECT n.record, l.last_heartbeat_ns, l.metrics FROM nodes AS n "
    "LEFT JOIN node_liveness AS l ON l.node_id = n.node_id";

int64_t Nanos(const google::protobuf::Timestamp& ts) {
  return TimeToNanos(FromTimestamp(ts));
}

template <typename Message>
absl::Status Serialize(const Message& m, std::string& out) {
  out.clear();
  if (!m.SerializeToString(&out)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize ", m.GetTypeName()));
  }
  return absl::OkStatus();
}

template <typename Message>
absl::StatusOr<Message> Parse(absl::string_view blob, absl::string_view what) {
  Message m;
  if (!m.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::InternalError(
        absl::StrCat("sqlite: corrupt ", what, " record"));
  }
  return m;
}

// A node row (kNodeSelect): the record, with the liveness columns merged in.
absl::StatusOr<NodeRecord> ReadNode(const Statement& s) {
  NAVARCH_ASSIGN_OR_RETURN(NodeRecord r,
                           Parse<NodeRecord>(s.ColumnBlob(0), "node"));
  if (s.ColumnIsNull(1)) return r;  // no liveness row: the record alone
  std::optional<absl::string_view> metrics;
  if (!s.ColumnIsNull(2)) metrics = s.ColumnBlob(2);
  NAVARCH_RETURN_IF_ERROR(Annotate(
      MergeLiveness(NanosToTime(s.ColumnInt(1)), metrics, r), "sqlite"));
  return r;
}

absl::StatusOr<Event> ReadEvent(const Statement& s) {
  NAVARCH_ASSIGN_OR_RETURN(Event e, Parse<Event>(s.ColumnBlob(1), "event"));
  e.set_id(s.ColumnInt(0));
  return e;
}

// The stored version of a record (0: absent).
absl::StatusOr<int64_t> StoredVersion(Statement& s, const std::string& id) {
  ScopedReset reset(s);
  NAVARCH_ASSIGN_OR_RETURN(bool row, s.BindText(1, id).Step());
  return row ? s.ColumnInt(0) : 0;
}

absl::Status RunOnce(Statement& s) {
  ScopedReset reset(s);
  return s.Run();
}

absl::StatusOr<Statement> Prep(sqlite3* db, absl::string_view sql) {
  return Statement::Prepare(db, sql);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore::WriterStatements>>
SqliteStore::PrepareWriter(sqlite3* db) {
  auto ws = std::make_unique<SqliteStore::WriterStatements>();
  // IMMEDIATE takes the write lock up front: a transaction that started as a
  // reader could not be upgraded if another process wrote in between.
  NAVARCH_ASSIGN_OR_RETURN(ws->begin, Prep(db, "BEGIN IMMEDIATE"));
  NAVARCH_ASSIGN_OR_RETURN(ws->commit, Prep(db, "COMMIT"));
  NAVARCH_ASSIGN_OR_RETURN(ws->rollback, Prep(db, "ROLLBACK"));
  NAVARCH_ASSIGN_OR_RETURN(ws->savepoint, Prep(db, "SAVEPOINT job"));
  NAVARCH_ASSIGN_OR_RETURN(ws->rollback_to_savepoint,
                           Prep(db, "ROLLBACK TO job"));
  NAVARCH_ASSIGN_OR_RETURN(ws->release_savepoint, Prep(db, "RELEASE job"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->node_version,
      Prep(db, "SELECT version FROM nodes WHERE node_id = ?"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->node_upsert,
      Prep(db,
           "INSERT INTO nodes (node_id, version, pool, status, health_status, "
           "record) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
           "ON CONFLICT (node_id) DO UPDATE SET version = excluded.version, "
           "pool = excluded.pool, status = excluded.status, "
           "health_status = excluded.health_status, "
           "record = excluded.record"));
  // Run with every node upsert: a node always has its liveness row.
  NAVARCH_ASSIGN_OR_RETURN(
      ws->liveness_upsert,
      Prep(db,
           "INSERT INTO node_liveness (node_id, last_heartbeat_ns, metrics) "
           "VALUES (?1, ?2, NULL) ON CONFLICT (node_id) DO UPDATE SET "
           // Heartbeat flushes may have moved past the writer's copy.
           "last_heartbeat_ns = max(node_liveness.last_heartbeat_ns, "
           "excluded.last_heartbeat_ns), "
           // The record is written whole: its metrics are now the latest.
           "metrics = NULL"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->instance_version,
      Prep(db, "SELECT version FROM instances WHERE instance_id = ?"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->instance_upsert,
      Prep(
          db,
          "INSERT INTO instances (instance_id, version, state, pool, node_id, "
          "terminated_at_ns, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
          "ON CONFLICT (instance_id) DO UPDATE SET version = excluded.version, "
          "state = excluded.state, pool = excluded.pool, node_id = "
          "excluded.node_id, "
          "terminated_at_ns = excluded.terminated_at_ns, record = "
          "excluded.record"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->command_version,
      Prep(db, "SELECT version FROM commands WHERE command_id = ?"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->command_upsert,
      Prep(
          db,
          "INSERT INTO commands (command_id, node_id, state, issued_at_ns, "
          "updated_at_ns, "
          "version, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
          "ON CONFLICT (command_id) DO UPDATE SET node_id = excluded.node_id, "
          "state = excluded.state, issued_at_ns = excluded.issued_at_ns, "
          "updated_at_ns = excluded.updated_at_ns, version = excluded.version, "
          "record = excluded.record"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->event_insert,
      Prep(db,
           "INSERT INTO events (time_ns, kind, node_id, pool, record) "
           "VALUES (?, ?, ?, ?, ?)"));
  // A heartbeat flush writes the narrow liveness row only, never the node's
  // record. The SELECT skips unknown nodes (the contract); a known node's
  // row exists (Commit writes it), so this is an UPDATE in all but name, and
  // an INSERT only if the row were missing. SET expressions all see the old
  // row, so the CASE compares against the heartbeat as it was before this
  // update: metrics only from a heartbeat not older than the stored one.
  NAVARCH_ASSIGN_OR_RETURN(
      ws->heartbeat,
      Prep(db,
           "INSERT INTO node_liveness (node_id, last_heartbeat_ns, metrics) "
           "SELECT node_id, ?1, ?2 FROM nodes WHERE node_id = ?3 "
           "ON CONFLICT (node_id) DO UPDATE SET "
           "metrics = CASE WHEN ?2 IS NOT NULL AND "
           "?1 >= node_liveness.last_heartbeat_ns "
           "THEN ?2 ELSE node_liveness.metrics END, "
           "last_heartbeat_ns = max(node_liveness.last_heartbeat_ns, ?1)"));
  NAVARCH_ASSIGN_OR_RETURN(ws->prune_events,
                           Prep(db, "DELETE FROM events WHERE time_ns < ?"));
  NAVARCH_ASSIGN_OR_RETURN(
      ws->prune_instances,
      Prep(db,
           "DELETE FROM instances WHERE state IN (?1, ?4) AND "
           "terminated_at_ns <> ?2 AND terminated_at_ns < ?3"));
  NAVARCH_ASSIGN_OR_RETURN(ws->prune_commands,
                           Prep(db,
                                "DELETE FROM commands WHERE state NOT IN (?1, "
                                "?2) AND updated_at_ns < ?3"));
  return ws;
}

absl::StatusOr<std::unique_ptr<SqliteStore::ReaderStatements>>
SqliteStore::PrepareReader(sqlite3* db) {
  auto rs = std::make_unique<SqliteStore::ReaderStatements>();
  NAVARCH_ASSIGN_OR_RETURN(rs->begin, Prep(db, "BEGIN"));
  NAVARCH_ASSIGN_OR_RETURN(rs->commit, Prep(db, "COMMIT"));
  NAVARCH_ASSIGN_OR_RETURN(rs->rollback, Prep(db, "ROLLBACK"));
  NAVARCH_ASSIGN_OR_RETURN(
      rs->nodes, Prep(db, absl::StrCat(kNodeSelect, " ORDER BY n.node_id")));
  NAVARCH_ASSIGN_OR_RETURN(
      rs->node, Prep(db, absl::StrCat(kNodeSelect, " WHERE n.node_id = ?")));
  NAVARCH_ASSIGN_OR_RETURN(
      rs->instances,
      Prep(db, "SELECT record FROM instances ORDER BY instance_id"));
  NAVARCH_ASSIGN_OR_RETURN(
      rs->open_commands,
      Prep(db, absl::StrCat("SELECT record FROM commands WHERE state IN (",
                            internal::COMMAND_STATE_PENDING, ", ",
                            internal::COMMAND_STATE_DELIVERED,
                            ") ORDER BY issued_at_ns, command_id")));
  NAVARCH_ASSIGN_OR_RETURN(
      rs->command,
      Prep(db, "SELECT record FROM commands WHERE command_id = ?"));
  // From the AUTOINCREMENT counter, not max(id): right even when Prune has
  // deleted the newest events.
  NAVARCH_ASSIGN_OR_RETURN(rs->last_event_id,
                           Prep(db,
                                "SELECT coalesce((SELECT seq FROM "
                                "sqlite_sequence WHERE name = 'events'), 0)"));
  NAVARCH_ASSIGN_OR_RETURN(rs->ping,
                           Prep(db, "SELECT count(*) FROM schema_migrations"));
  return rs;
}

namespace {

absl::Status CheckJournalMode(sqlite3* db) {
  NAVARCH_ASSIGN_OR_RETURN(
      Statement s, Statement::Prepare(db, "PRAGMA journal_mode = WAL", false));
  NAVARCH_ASSIGN_OR_RETURN(bool row, s.Step());
  std::string mode = row ? std::string(s.ColumnBlob(0)) : "";
  if (!absl::EqualsIgnoreCase(mode, "wal")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sqlite: cannot switch to WAL mode (journal mode is '", mode,
        "'); the file system may not support shared memory, e.g. a network "
        "file system"));
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite::Connection> OpenWriter(
    const SqliteOptions& options, const std::vector<sqlite::Migration>& history,
    int& version) {
  NAVARCH_ASSIGN_OR_RETURN(
      sqlite::Connection db,
      sqlite::OpenConnection(options.path,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             options.busy_timeout));
  // WAL: readers and the writer do not block each other, and a commit
  // appends to one file instead of rewriting pages in place.
  NAVARCH_RETURN_IF_ERROR(CheckJournalMode(db.get()));
  NAVARCH_RETURN_IF_ERROR(
      sqlite::Exec(db.get(), options.sync == SqliteOptions::Sync::kFull
                                 ? "PRAGMA synchronous = FULL"
                                 : "PRAGMA synchronous = NORMAL"));
  // After a checkpoint the WAL file is reused, not shrunk; cap what it keeps.
  NAVARCH_RETURN_IF_ERROR(
      sqlite::Exec(db.get(), "PRAGMA journal_size_limit = 67108864"));
  NAVARCH_ASSIGN_OR_RETURN(version, sqlite::Migrate(db.get(), history));
  return db;
}

}  // namespace

namespace {

// WAL mode writes beside the database (-wal, -shm): the folder and the file
// must both be writable. Said up front in words, where SQLite would say
// "unable to open database file (code 14)" at some later step.
absl::Status CheckWritable(const std::string& path) {
  std::filesystem::path file(path);
  std::filesystem::path folder =
      file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  auto read_only = [](const std::filesystem::path& p, absl::string_view what) {
    int err = errno;
    return absl::UnavailableError(absl::StrCat(
        "sqlite: the ", what, " ", p.string(), " is read-only for this user (",
        std::strerror(err),
        "): the control plane writes its database there; make it writable "
        "or choose another server.data_dir"));
  };
  if (::access(folder.c_str(), W_OK | X_OK) != 0 &&
      (errno == EACCES || errno == EROFS || errno == EPERM)) {
    return read_only(folder, "data folder");
  }
  if (::access(file.c_str(), F_OK) == 0 && ::access(file.c_str(), W_OK) != 0 &&
      (errno == EACCES || errno == EROFS || errno == EPERM)) {
    return read_only(file, "database file");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const SqliteOptions& options) {
  if (options.path.empty())
    return absl::InvalidArgumentError("sqlite: no database path");
  if (options.path == ":memory:" || absl::StartsWith(options.path, "file:")) {
    // The reader and the writer must share one file.
    return absl::InvalidArgumentError(
        "sqlite: the database path must name a file");
  }
  if (options.max_group < 1 || options.max_queue < 1) {
    return absl::InvalidArgumentError(
        "sqlite: max_group and max_queue must be >= 1");
  }
  std::filesystem::path parent =
      std::filesystem::path(options.path).parent_path();
  std::error_code exists_ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, exists_ec)) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("sqlite: cannot create directory ", parent.string(),
                       ": ", ec.message()));
    }
  }
  NAVARCH_RETURN_IF_ERROR(CheckWritable(options.path));
  const std::vector<sqlite::Migration>& history =
      options.migrations != nullptr ? *options.migrations
                                    : sqlite::BuiltinMigrations();
  int version = 0;
  auto writer = OpenWriter(options, history, version);
  if (!writer.ok()) return Annotate(writer.status(), options.path);
  auto reader = sqlite::OpenConnection(options.path, SQLITE_OPEN_READWRITE,
                                       options.busy_timeout);
  if (!reader.ok()) return Annotate(reader.status(), options.path);
  // The reader never writes; make a mistake there fail instead of racing
  // the writer's transactions.
  NAVARCH_RETURN_IF_ERROR(
      sqlite::Exec(reader->get(), "PRAGMA query_only = ON"));
  NAVARCH_ASSIGN_OR_RETURN(auto ws, PrepareWriter(writer->get()));
  NAVARCH_ASSIGN_OR_RETURN(auto rs, PrepareReader(reader->get()));
  return std::unique_ptr<SqliteStore>(
      new SqliteStore(options, version, *std::move(writer), *std::move(reader),
                      std::move(ws), std::move(rs)));
}

SqliteStore::SqliteStore(SqliteOptions options, int schema_version,
                         sqlite::Connection writer, sqlite::Connection reader,
                         std::unique_ptr<WriterStatements> ws,
                         std::unique_ptr<ReaderStatements> rs)
    : options_(std::move(options)),
      schema_version_(schema_version),
      writer_db_(std::move(writer)),
      ws_(std::move(ws)),
      rs_(std::move(rs)),
      reader_db_(std::move(reader)) {
  writer_ = std::make_unique<GroupCommitWriter>(
      GroupCommitWriter::Options{"sqlite", options_.max_group,
                                 options_.max_queue},
      static_cast<WriteTransaction*>(this));
}

SqliteStore::~SqliteStore() { Close(); }

// --- Writes ---

void SqliteStore::Commit(WriteBatch batch,
                         std::function<void(absl::Status)> done) {
  writer_->SubmitBatch(std::move(batch), std::move(done));
}

// The writer hands the updates over in node_id order, the order of
// node_liveness's b-tree: the flush then walks the table once, dirtying each
// page once. In arrival order it jumps about the table, and once the dirty
// pages outgrow the page cache SQLite spills them to the WAL
// mid-transaction and writes many of them again.
absl::Status SqliteStore::UpdateHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  return writer_->SubmitHeartbeats(updates);
}

absl::StatusOr<int64_t> SqliteStore::Prune(const PruneRequest& request) {
  return writer_->SubmitPrune(request);
}

absl::Status SqliteStore::BeginTransaction() { return RunOnce(ws_->begin); }

absl::Status SqliteStore::CommitTransaction() { return RunOnce(ws_->commit); }

void SqliteStore::RollbackTransaction() {
  RunOnce(ws_->rollback).IgnoreError();
}

absl::Status SqliteStore::Savepoint() { return RunOnce(ws_->savepoint); }

absl::Status SqliteStore::RollbackToSavepoint() {
  return RunOnce(ws_->rollback_to_savepoint);
}

absl::Status SqliteStore::ReleaseSavepoint() {
  return RunOnce(ws_->release_savepoint);
}

// Some errors (I/O, disk full) make SQLite roll back the whole transaction
// itself.
bool SqliteStore::InTransaction() {
  return !sqlite3_get_autocommit(writer_db_.get());
}

absl::Status SqliteStore::ApplyBatch(WriteBatch& batch) {
  WriterStatements& ws = *ws_;
  std::string blob;
  // Versions come from the database inside this transaction, never from a
  // cache: another writer of the same file is caught here.
  for (size_t i = 0; i < batch.nodes.size(); ++i) {
    const NodeRecord& r = batch.nodes[i];
    const NodeInfo& n = r.node();
    NAVARCH_ASSIGN_OR_RETURN(int64_t current,
                             StoredVersion(ws.node_version, n.node_id()));
    NAVARCH_RETURN_IF_ERROR(
        CheckVersion("node", n.node_id(), current, r.version()));
    NAVARCH_RETURN_IF_ERROR(Serialize(r, blob));
    // The extras go in as they are, a second `node` field that ReadNode's
    // parse merges into the first: the stored record is the whole node, and
    // nothing was parsed to build it. The columns come from the record
    // (extras never set them).
    if (!batch.node_extras.empty())
      AppendNodeExtras(batch.node_extras[i], blob);
    Statement& s = ws.node_upsert;
    ScopedReset reset(s);
    NAVARCH_RETURN_IF_ERROR(s.BindText(1, n.node_id())
                                .BindInt(2, r.version())
                                .BindText(3, n.pool())
                                .BindInt(4, n.status())
                                .BindInt(5, n.health_status())
                                .BindBlob(6, blob)
                                .Run());
    Statement& l = ws.liveness_upsert;
    ScopedReset reset_liveness(l);
    NAVARCH_RETURN_IF_ERROR(
        l.BindText(1, n.node_id()).BindInt(2, Nanos(n.last_heartbeat())).Run());
  }
  for (const InstanceRecord& r : batch.instances) {
    const InstanceInfo& i = r.instance();
    NAVARCH_ASSIGN_OR_RETURN(
        int64_t current, StoredVersion(ws.instance_version, i.instance_id()));
    NAVARCH_RETURN_IF_ERROR(
        CheckVersion("instance", i.instance_id(), current, r.version()));
    NAVARCH_RETURN_IF_ERROR(Serialize(r, blob));
    Statement& s = ws.instance_upsert;
    ScopedReset reset(s);
    NAVARCH_RETURN_IF_ERROR(s.BindText(1, i.instance_id())
                                .BindInt(2, r.version())
                                .BindInt(3, i.state())
                                .BindText(4, i.pool_name())
                                .BindText(5, i.node_id())
                                .BindInt(6, Nanos(i.terminated_at()))
                                .BindBlob(7, blob)
                                .Run());
  }
  for (const CommandRecord& r : batch.commands) {
    const NodeCommand& c = r.command();
    NAVARCH_ASSIGN_OR_RETURN(int64_t current,
                             StoredVersion(ws.command_version, c.command_id()));
    NAVARCH_RETURN_IF_ERROR(
        CheckVersion("command", c.command_id(), current, r.version()));
    NAVARCH_RETURN_IF_ERROR(Serialize(r, blob));
    Statement& s = ws.command_upsert;
    ScopedReset reset(s);
    NAVARCH_RETURN_IF_ERROR(s.BindText(1, c.command_id())
                                .BindText(2, r.node_id())
                                .BindInt(3, r.state())
                                .BindInt(4, Nanos(c.issued_at()))
                                .BindInt(5, Nanos(r.updated_at()))
                                .BindInt(6, r.version())
                                .BindBlob(7, blob)
                                .Run());
  }
  for (Event& e : batch.events) {
    e.clear_id();  // the row id is the event id
    NAVARCH_RETURN_IF_ERROR(Serialize(e, blob));
    Statement& s = ws.event_insert;
    ScopedReset reset(s);
    NAVARCH_RETURN_IF_ERROR(s.BindInt(1, Nanos(e.time()))
                                .BindText(2, e.kind())
                                .BindText(3, e.node_id())
                                .BindText(4, e.pool())
                                .BindBlob(5, blob)
                                .Run());
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::ApplyHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  Statement& s = ws_->heartbeat;
  std::string metrics;
  for (const HeartbeatUpdate& u : updates) {
    ScopedReset reset(s);
    s.BindInt(1, TimeToNanos(u.last_heartbeat)).BindText(3, u.node_id);
    if (u.metrics) {
      NAVARCH_RETURN_IF_ERROR(Serialize(*u.metrics, metrics));
      s.BindBlob(2, metrics);
    } else {
      s.BindNull(2);
    }
    // An unknown node is not in `nodes`: the SELECT yields nothing and the
    // update is skipped, as the contract says.
    NAVARCH_RETURN_IF_ERROR(s.Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteStore::ApplyPrune(const PruneRequest& request) {
  sqlite3* db = writer_db_.get();
  WriterStatements& ws = *ws_;
  int64_t removed = 0;
  {
    ScopedReset reset(ws.prune_events);
    NAVARCH_RETURN_IF_ERROR(
        ws.prune_events.BindInt(1, TimeToNanos(request.events_before)).Run());
    removed += sqlite3_changes64(db);
  }
  {
    ScopedReset reset(ws.prune_instances);
    NAVARCH_RETURN_IF_ERROR(
        ws.prune_instances.BindInt(1, INSTANCE_STATE_TERMINATED)
            .BindInt(2, TimeToNanos(absl::InfinitePast()))  // unset
            .BindInt(3, TimeToNanos(request.instances_before))
            .BindInt(4, INSTANCE_STATE_FAILED)
            .Run());
    removed += sqlite3_changes64(db);
  }
  {
    ScopedReset reset(ws.prune_commands);
    NAVARCH_RETURN_IF_ERROR(
        ws.prune_commands.BindInt(1, internal::COMMAND_STATE_PENDING)
            .BindInt(2, internal::COMMAND_STATE_DELIVERED)
            .BindInt(3, TimeToNanos(request.commands_before))
            .Run());
    removed += sqlite3_changes64(db);
  }
  return removed;
}

// --- Reads ---

namespace {

absl::Status Closed() {
  return absl::UnavailableError("sqlite: store is closed");
}

}  // namespace

absl::StatusOr<StoreSnapshot> SqliteStore::Load() {
  absl::MutexLock lock(&read_mu_);
  if (reader_db_ == nullptr) return Closed();
  ReaderStatements& rs = *rs_;
  // One read transaction: the tables come from one committed state.
  NAVARCH_RETURN_IF_ERROR(RunOnce(rs.begin));
  auto load = [&]() -> absl::StatusOr<StoreSnapshot> {
    StoreSnapshot snap;
    {
      ScopedReset reset(rs.nodes);
      for (;;) {
        NAVARCH_ASSIGN_OR_RETURN(bool row, rs.nodes.Step());
        if (!row) break;
        NAVARCH_ASSIGN_OR_RETURN(snap.nodes.emplace_back(), ReadNode(rs.nodes));
      }
    }
    {
      ScopedReset reset(rs.instances);
      for (;;) {
        NAVARCH_ASSIGN_OR_RETURN(bool row, rs.instances.Step());
        if (!row) break;
        NAVARCH_ASSIGN_OR_RETURN(
            snap.instances.emplace_back(),
            Parse<InstanceRecord>(rs.instances.ColumnBlob(0), "instance"));
      }
    }
    {
      ScopedReset reset(rs.open_commands);
      for (;;) {
        NAVARCH_ASSIGN_OR_RETURN(bool row, rs.open_commands.Step());
        if (!row) break;
        NAVARCH_ASSIGN_OR_RETURN(
            snap.open_commands.emplace_back(),
            Parse<CommandRecord>(rs.open_commands.ColumnBlob(0), "command"));
      }
    }
    {
      ScopedReset reset(rs.last_event_id);
      NAVARCH_ASSIGN_OR_RETURN(bool row, rs.last_event_id.Step());
      snap.last_event_id = row ? rs.last_event_id.ColumnInt(0) : 0;
    }
    return snap;
  };
  absl::StatusOr<StoreSnapshot> snap = load();
  if (!snap.ok()) {
    RunOnce(rs.rollback).IgnoreError();
    return snap.status();
  }
  NAVARCH_RETURN_IF_ERROR(RunOnce(rs.commit));
  return snap;
}

absl::StatusOr<std::optional<NodeRecord>> SqliteStore::GetNode(
    const std::string& node_id) {
  absl::MutexLock lock(&read_mu_);
  if (reader_db_ == nullptr) return Closed();
  Statement& s = rs_->node;
  ScopedReset reset(s);
  NAVARCH_ASSIGN_OR_RETURN(bool row, s.BindText(1, node_id).Step());
  if (!row) return std::optional<NodeRecord>();
  NAVARCH_ASSIGN_OR_RETURN(NodeRecord r, ReadNode(s));
  return std::optional<NodeRecord>(std::move(r));
}

absl::StatusOr<std::optional<CommandRecord>> SqliteStore::GetCommand(
    const std::string& command_id) {
  absl::MutexLock lock(&read_mu_);
  if (reader_db_ == nullptr) return Closed();
  Statement& s = rs_->command;
  ScopedReset reset(s);
  NAVARCH_ASSIGN_OR_RETURN(bool row, s.BindText(1, command_id).Step());
  if (!row) return std::optional<CommandRecord>();
  NAVARCH_ASSIGN_OR_RETURN(CommandRecord r,
                           Parse<CommandRecord>(s.ColumnBlob(0), "command"));
  return std::optional<CommandRecord>(std::move(r));
}

absl::StatusOr<Statement*> SqliteStore::EventQueryStatement(
    const std::string& sql) {
  auto it = event_queries_.find(sql);
  if (it != event_queries_.end()) return &it->second;
  // Each kind pattern adds to the SQL; bound the cache so odd queries
  // cannot grow it without limit.
  if (event_queries_.size() >= 64) event_queries_.clear();
  NAVARCH_ASSIGN_OR_RETURN(Statement s,
                           Statement::Prepare(reader_db_.get(), sql));
  return &event_queries_.emplace(sql, std::move(s)).first->second;
}

absl::StatusOr<EventPage> SqliteStore::ListEvents(const EventQuery& query) {
  NAVARCH_RETURN_IF_ERROR(ValidateQuery(query));
  EventSql q = BuildEventSql(query, [](int, bool) { return "?"; });
  absl::MutexLock lock(&read_mu_);
  if (reader_db_ == nullptr) return Closed();
  NAVARCH_ASSIGN_OR_RETURN(Statement * s, EventQueryStatement(q.sql));
  ScopedReset reset(*s);
  for (size_t i = 0; i < q.params.size(); ++i) {
    int index = static_cast<int>(i) + 1;
    if (const auto* v = std::get_if<int64_t>(&q.params[i])) {
      s->BindInt(index, *v);
    } else {
      s->BindText(index, std::get<std::string>(q.params[i]));
    }
  }
  EventPage page;
  for (;;) {
    NAVARCH_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    if (static_cast<int>(page.events.size()) == query.limit) {
      page.more = true;
      break;
    }
    NAVARCH_ASSIGN_OR_RETURN(page.events.emplace_back(), ReadEvent(*s));
  }
  return page;
}

absl::Status SqliteStore::Ping() {
  NAVARCH_RETURN_IF_ERROR(writer_->Health());
  absl::MutexLock lock(&read_mu_);
  if (reader_db_ == nullptr) return Closed();
  ScopedReset reset(rs_->ping);
  return rs_->ping.Run();
}

void SqliteStore::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (closed_) return;
  closed_ = true;
  // The writer drains the queue before it stops.
  writer_->Close();
  {
    absl::MutexLock lock(&read_mu_);
    event_queries_.clear();
    rs_.reset();
    reader_db_.reset();
  }
  // Closed last, the writer checkpoints the WAL into the main file.
  ws_.reset();
  writer_db_.reset();
}

}  // namespace navarch
