// In-process store for tests and the simulator: same contract as the durable
// backends, nothing survives the process. Commit calls `done` inline.
#ifndef NAVARCH_STORE_MEMORY_MEMORY_STORE_H_
#define NAVARCH_STORE_MEMORY_MEMORY_STORE_H_

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "navarch/store/store.h"

namespace navarch {

struct MemoryStoreOptions {
  // false: committed events get their ids and are not kept (ListEvents
  // finds none, Prune deletes none). For the simulator, which observes
  // events as they are committed (FleetOptions::on_events_committed) and
  // never reads the log back; a 2-hour run of 10,000 nodes commits
  // hundreds of thousands.
  bool keep_events = true;
};

class MemoryStore final : public Store {
 public:
  MemoryStore() = default;
  explicit MemoryStore(MemoryStoreOptions options) : options_(options) {}

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
  std::string Name() const override { return "memory"; }

 private:
  absl::Status CommitLocked(WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A node as committed: the record and its WriteBatch::node_extras, kept
  // apart and merged only by reads, so that a commit moves both in and
  // neither parses nor builds anything (the simulator commits far more often
  // than it reads the store).
  struct StoredNode {
    NodeRecord record;
    std::string extras;  // NodeInfo wire format; never sets last_heartbeat
    int64_t version() const { return record.version(); }
  };
  // The whole node.
  static absl::StatusOr<NodeRecord> Full(const StoredNode& node);

  // {}: clang rejects the defaulted constructor of a class with a const
  // member that it would leave default-initialized.
  const MemoryStoreOptions options_{};
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, StoredNode> nodes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, InstanceRecord> instances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, CommandRecord> commands_ ABSL_GUARDED_BY(mu_);
  // A deque: appending never moves the log (a simulation appends millions).
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  int64_t last_event_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace navarch

#endif  // NAVARCH_STORE_MEMORY_MEMORY_STORE_H_
