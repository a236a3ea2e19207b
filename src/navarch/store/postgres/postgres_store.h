// The Store on PostgreSQL, for several control planes sharing one database
// (docs/deployment.md).
//
// Writes go through group commit (group_commit.h) on one connection: the
// jobs queued while the previous transaction committed share the next one,
// a SAVEPOINT each, so concurrent writers share one round trip and one WAL
// flush, and nothing is acknowledged before the server has committed it
// (synchronous_commit as the server has it; its default is durable).
//
// No backend may assume it is the only writer (store.h), and here it never
// is: versions are checked by the write itself (UPDATE ... WHERE version =
// next - 1; INSERT ... ON CONFLICT DO NOTHING for a new record), so of two
// replicas writing one record at once, the second waits for the first's row
// lock, then finds the version moved and fails with ABORTED. Event ids come
// from a counter row each writing transaction holds until it commits: they
// are handed out in commit order across replicas.
//
// Liveness (last heartbeat, metrics) has a narrow table, as in SQLite; a
// heartbeat flush is one UPDATE of every node in it, its data sent as
// arrays.
//
// Reads use a second connection, serialized by a mutex. Both connections
// reconnect on their own after the server restarts or the network drops;
// until then reads and writes fail with UNAVAILABLE and Ping says so.
#ifndef NAVARCH_STORE_POSTGRES_POSTGRES_STORE_H_
#define NAVARCH_STORE_POSTGRES_POSTGRES_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/store/group_commit.h"
#include "navarch/store/postgres/pg_schema.h"
#include "navarch/store/postgres/pg_util.h"
#include "navarch/store/store.h"

namespace navarch {

struct PostgresOptions {
  // A libpq connection string ("host=db1 port=5432 dbname=navarch") or URL
  // ("postgres://navarch@db1/navarch?sslmode=verify-full"). No password:
  // PGPASSWORD or a password file (pg_util.h CheckDsn).
  std::string dsn;
  absl::Duration connect_timeout = absl::Seconds(5);
  int max_group = 256;    // jobs per transaction at most
  int max_queue = 16384;  // jobs waiting at most; then UNAVAILABLE
  // The schema history; null: the built-in one. Tests play other binaries.
  const std::vector<pg::Migration>* migrations = nullptr;
};

class PostgresStore final : public Store, private WriteTransaction {
 public:
  // Connects, migrates (under an advisory lock) and starts the writer.
  // INVALID_ARGUMENT for a bad DSN or one holding a password,
  // UNAVAILABLE when the server cannot be reached, FAILED_PRECONDITION for a
  // database newer than this binary or not a Navarch one.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      const PostgresOptions& options);

  ~PostgresStore() override;  // Close()s.

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
  std::string Name() const override { return "postgres"; }

  // From now on every write transaction first checks that the leader lease
  // (leader_lease.h) is still held by `holder` at `epoch`, holding the lease
  // row's lock until it commits; when it is not, the transaction writes
  // nothing and its jobs fail with FAILED_PRECONDITION ("fenced"), and so
  // does Ping. Epoch 0 turns the check off. Thread-safe.
  void SetFence(const std::string& holder, int64_t epoch);

  using Stats = GroupCommitWriter::Stats;
  Stats stats() const { return writer_->stats(); }
  int schema_version() const { return schema_version_; }

 private:
  PostgresStore(PostgresOptions options, int schema_version);

  // WriteTransaction, on the writer thread.
  absl::Status BeginTransaction() override;
  absl::Status CommitTransaction() override;
  void RollbackTransaction() override;
  absl::Status Savepoint() override;
  absl::Status RollbackToSavepoint() override;
  absl::Status ReleaseSavepoint() override;
  bool InTransaction() override;

  absl::Status ApplyBatch(WriteBatch& batch) override;
  absl::Status WriteNode(const NodeRecord& r, const std::string& extras);
  absl::Status WriteInstance(const InstanceRecord& r);
  absl::Status WriteCommand(const CommandRecord& r);
  absl::Status WriteEvents(std::vector<Event>& events);
  // A write that changed no row: the version check failed. ABORTED with
  // the stored version in the message.
  absl::Status Conflict(absl::string_view what, const char* statement,
                        const std::string& id, int64_t next);
  absl::Status ApplyHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override;
  absl::StatusOr<int64_t> ApplyPrune(const PruneRequest& request) override;

  // Reader side.
  absl::StatusOr<StoreSnapshot> LoadLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_);
  absl::Status ReaderReady() ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_);

  const PostgresOptions options_;
  const int schema_version_;

  pg::Session write_session_;  // the writer thread's, once it runs
  std::unique_ptr<GroupCommitWriter> writer_;

  absl::Status CheckFence();  // writer thread, in the open transaction

  absl::Mutex fence_mu_;
  std::string fence_holder_ ABSL_GUARDED_BY(fence_mu_);
  int64_t fence_epoch_ ABSL_GUARDED_BY(fence_mu_) = 0;

  absl::Mutex close_mu_;  // serializes Close
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;

  absl::Mutex read_mu_;
  pg::Session read_session_ ABSL_GUARDED_BY(read_mu_);
  bool read_closed_ ABSL_GUARDED_BY(read_mu_) = false;
};

}  // namespace navarch

#endif  // NAVARCH_STORE_POSTGRES_POSTGRES_STORE_H_
