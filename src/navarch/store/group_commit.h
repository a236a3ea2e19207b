// Group commit, shared by the durable Store backends (SQLite, PostgreSQL).
//
// One writer thread takes every queued job (up to `max_group`), runs them in
// one transaction with a savepoint per job, commits, and only then calls each
// `done`, in submission order. A job that fails (a version conflict) is
// rolled back to its savepoint alone; the others commit. Concurrent writers
// thus share one commit (one fsync, one round trip to a server), and nothing
// is acknowledged before it is durable. Bulk jobs (a heartbeat flush, a
// Prune) run in a transaction of their own, without a savepoint, and a group
// of one job needs none either: if it fails, the transaction goes and takes
// nothing else with it.
//
// The backend supplies the transaction primitives and applies one job
// (WriteTransaction); this class owns the queue, the grouping, the ordering
// of callbacks and the health that Store::Ping reports.
#ifndef NAVARCH_STORE_GROUP_COMMIT_H_
#define NAVARCH_STORE_GROUP_COMMIT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/store/store.h"

namespace navarch {

// One Commit, UpdateHeartbeats or Prune call.
struct StoreJob {
  enum class Kind { kBatch, kHeartbeats, kPrune };
  Kind kind = Kind::kBatch;
  WriteBatch batch;
  std::vector<HeartbeatUpdate> heartbeats;
  PruneRequest prune;
  int64_t* pruned = nullptr;  // Prune's result, owned by the waiting caller
  absl::Status status;
  std::function<void(absl::Status)> done;
};

// A backend's write connection, used on the writer thread only.
class WriteTransaction {
 public:
  virtual ~WriteTransaction() = default;
  virtual absl::Status BeginTransaction() = 0;
  virtual absl::Status CommitTransaction() = 0;
  // Best effort; the transaction is gone afterwards either way.
  virtual void RollbackTransaction() = 0;
  virtual absl::Status Savepoint() = 0;
  virtual absl::Status RollbackToSavepoint() = 0;
  virtual absl::Status ReleaseSavepoint() = 0;
  // Whether the transaction Begin opened is still open: a storage error may
  // end it behind the caller's back (SQLite on I/O errors, a lost server
  // connection), and then every job in it is lost.
  virtual bool InTransaction() = 0;
  // Apply one job inside the open transaction. The batch was validated
  // (ValidateBatch); the heartbeats are in node id order (stable).
  virtual absl::Status ApplyBatch(WriteBatch& batch) = 0;
  virtual absl::Status ApplyHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) = 0;
  virtual absl::StatusOr<int64_t> ApplyPrune(const PruneRequest& request) = 0;
};

class GroupCommitWriter {
 public:
  struct Options {
    std::string name;  // error prefix: "sqlite", "postgres"
    int max_group = 256;
    int max_queue = 16384;
  };
  struct Stats {
    int64_t transactions = 0;  // write transactions committed
    int64_t jobs = 0;          // jobs that ran in them (aborted ones included)
    int64_t largest_group = 0;
  };

  // Starts the writer thread. `txn` must outlive this object.
  GroupCommitWriter(Options options, WriteTransaction* txn);
  ~GroupCommitWriter();  // Close()s.

  // Store::Commit: validates the batch, then queues it (or fails it at once:
  // invalid, closed, queue full).
  void SubmitBatch(WriteBatch batch, std::function<void(absl::Status)> done);
  // Store::UpdateHeartbeats: the updates in node id order (stable, so two
  // updates of one node keep the caller's order), sorted on the caller's
  // thread, and waits for the outcome. The order is the tables' (the flush
  // walks each page once) and one lock order for every writer of a shared
  // database (two flushes never deadlock).
  absl::Status SubmitHeartbeats(const std::vector<HeartbeatUpdate>& updates);
  // Store::Prune, waiting for the outcome.
  absl::StatusOr<int64_t> SubmitPrune(const PruneRequest& request);

  // UNAVAILABLE once closed, or the last transaction's storage failure; OK
  // once one commits again.
  absl::Status Health() const;
  // Waits for every queued job, then stops the writer; later jobs fail with
  // UNAVAILABLE. Idempotent.
  void Close();
  Stats stats() const;

 private:
  // Queues a job, or fails it at once (closed, queue full).
  void Submit(std::unique_ptr<StoreJob> job);
  // Submits and waits for the outcome.
  absl::Status SubmitAndWait(std::unique_ptr<StoreJob> job);
  absl::Status Apply(StoreJob& job);
  void WriterLoop();
  std::vector<std::unique_ptr<StoreJob>> NextGroup();
  // Runs `group` in one transaction; sets each job's status. Returns the
  // transaction's outcome.
  absl::Status RunGroup(std::vector<std::unique_ptr<StoreJob>>& group);
  absl::Status RunAlone(StoreJob& job);
  absl::Status RunWithSavepoints(std::vector<std::unique_ptr<StoreJob>>& group);
  absl::Status Closed() const;

  const Options options_;
  WriteTransaction* const txn_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<StoreJob>> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex close_mu_;  // serializes Close
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;
  std::thread writer_;
};

}  // namespace navarch

#endif  // NAVARCH_STORE_GROUP_COMMIT_H_
