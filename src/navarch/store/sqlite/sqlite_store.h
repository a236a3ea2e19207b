// The embedded default Store: one SQLite file in WAL mode.
//
// Writes go through one writer thread that does group commit
// (group_commit.h): every queued job in one transaction, a SAVEPOINT per job,
// callbacks in submission order after the commit. Bulk jobs (a heartbeat
// flush, a Prune) and a group of one run without a savepoint, which matters
// here: SQLite copies every page a savepoint's job changes to a sub-journal
// (a temporary file) first, for a heartbeat flush of 100,000 nodes several
// times the bytes the flush itself writes.
//
// Reads use a second connection, serialized by a mutex; WAL lets them run
// while the writer commits, and each read sees only committed data.
//
// Liveness (each node's last heartbeat and latest metrics) has a narrow table
// of its own (schema v2, node_liveness): the once-a-second heartbeat flush
// rewrites those small rows and never the node records, and every read of a
// node merges the two.
//
// A node's WriteBatch::node_extras are appended to its serialized record as
// they are, as a second `node` field that the parse on read merges into the
// first: the blob is the whole node, and a commit parses nothing.
//
// Versions are checked against the database inside the write transaction,
// never against a cache, so another process writing the same file is
// detected as a conflict rather than overwritten.
#ifndef NAVARCH_STORE_SQLITE_SQLITE_STORE_H_
#define NAVARCH_STORE_SQLITE_SQLITE_STORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/store/group_commit.h"
#include "navarch/store/sqlite/sqlite_schema.h"
#include "navarch/store/sqlite/sqlite_util.h"
#include "navarch/store/store.h"

namespace navarch {

struct SqliteOptions {
  // The database file. Parent directories are created. SQLite keeps two more
  // files beside it while open: <path>-wal and <path>-shm.
  std::string path;

  enum class Sync {
    // fsync the WAL at every commit: an acknowledged write survives a power
    // loss or kernel crash, not only a crash of the process. The default.
    kFull,
    // No fsync at commit: survives kill -9 of the process (the data is in the
    // OS page cache), but the last commits may be lost on power loss.
    kNormal,
  };
  Sync sync = Sync::kFull;

  // How long a write waits for a lock held by another process before failing
  // with UNAVAILABLE.
  absl::Duration busy_timeout = absl::Seconds(5);
  // Jobs (Commit / UpdateHeartbeats / Prune calls) per transaction at most;
  // bounds the latency one transaction adds to the jobs in it.
  int max_group = 256;
  // Jobs waiting for the writer at most; beyond it Commit fails fast with
  // UNAVAILABLE instead of queueing without bound.
  int max_queue = 16384;

  // The schema history to migrate to; null: the built-in one. Tests use a
  // longer or shorter history to play a newer or older binary.
  const std::vector<sqlite::Migration>* migrations = nullptr;
};

class SqliteStore final : public Store, private WriteTransaction {
 public:
  // Opens (creating if needed) and migrates the database, then starts the
  // writer. FAILED_PRECONDITION for a database newer than this binary or not
  // a Navarch one; UNAVAILABLE when the file cannot be opened or is locked.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const SqliteOptions& options);

  ~SqliteStore() override;  // Close()s.

  void Commit(WriteBatch batch,
              std::function<void(absl::Status)> done) override;
  absl::Status UpdateHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override;
  absl::StatusOr<StoreSnapshot> Load() override;
  absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string& node_id) override;
  absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string& command_id) override;
  absl::StatusOr<EventPage> ListEvents(const EventQuery& query) override;
  using Store::Prune;
  absl::StatusOr<int64_t> Prune(const PruneRequest& request) override;
  absl::Status Ping() override;
  void Close() override;
  std::string Name() const override { return "sqlite"; }

  // Counters for tests and metrics. Thread-safe.
  using Stats = GroupCommitWriter::Stats;
  Stats stats() const { return writer_->stats(); }

  int schema_version() const { return schema_version_; }
  const std::string& path() const { return options_.path; }

 private:
  struct WriterStatements;
  struct ReaderStatements;

  static absl::StatusOr<std::unique_ptr<WriterStatements>> PrepareWriter(
      sqlite3* db);
  static absl::StatusOr<std::unique_ptr<ReaderStatements>> PrepareReader(
      sqlite3* db);

  SqliteStore(SqliteOptions options, int schema_version,
              sqlite::Connection writer, sqlite::Connection reader,
              std::unique_ptr<WriterStatements> ws,
              std::unique_ptr<ReaderStatements> rs);

  // WriteTransaction, on the writer thread.
  absl::Status BeginTransaction() override;
  absl::Status CommitTransaction() override;
  void RollbackTransaction() override;
  absl::Status Savepoint() override;
  absl::Status RollbackToSavepoint() override;
  absl::Status ReleaseSavepoint() override;
  bool InTransaction() override;
  absl::Status ApplyBatch(WriteBatch& batch) override;
  absl::Status ApplyHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override;
  absl::StatusOr<int64_t> ApplyPrune(const PruneRequest& request) override;

  // Reader side; read_mu_ held.
  absl::StatusOr<sqlite::Statement*> EventQueryStatement(const std::string& sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_);

  const SqliteOptions options_;
  const int schema_version_;

  // Writer side: the connection and statements belong to the writer thread
  // once it runs.
  sqlite::Connection writer_db_;
  std::unique_ptr<WriterStatements> ws_;

  std::unique_ptr<GroupCommitWriter> writer_;
  absl::Mutex close_mu_;  // serializes Close
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;

  absl::Mutex read_mu_;
  std::unique_ptr<ReaderStatements> rs_ ABSL_GUARDED_BY(read_mu_);
  // ListEvents statements, by SQL text: the filters make a few shapes.
  std::map<std::string, sqlite::Statement> event_queries_
      ABSL_GUARDED_BY(read_mu_);
  sqlite::Connection reader_db_ ABSL_GUARDED_BY(read_mu_);
};

}  // namespace navarch

#endif  // NAVARCH_STORE_SQLITE_SQLITE_STORE_H_
