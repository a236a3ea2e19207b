// The fleet core's book of commands: the unfinished commands of every node
// in issue order, the live command streams (watchers), and the state changes
// of delivery, finish and cancellation.
//
// Not thread-safe: FleetService guards it with its lock. It changes only
// records in memory; FleetService adds the changed ones to its batches and
// runs the watchers' callbacks once the lock is released.
#ifndef NAVARCH_FLEET_COMMAND_BOOK_H_
#define NAVARCH_FLEET_COMMAND_BOOK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "navarch/internal/records.pb.h"

namespace navarch::fleet_internal {

using ::navarch::internal::CommandRecord;

struct Watcher {
  uint64_t handle = 0;
  std::function<void(const NodeCommand&)> deliver;
  std::function<void()> closed;
};

class CommandBook {
 public:
  CommandBook() = default;
  CommandBook(const CommandBook&) = delete;
  CommandBook& operator=(const CommandBook&) = delete;

  // Adds an unfinished command, last in its node's issue order. With
  // `open_for_node` false (a command loaded for a node the index does not
  // have) it is known by id but in no node's list.
  void Add(CommandRecord c, bool open_for_node = true);
  CommandRecord* Find(const std::string& command_id);
  // The node's unfinished command ids, in issue order.
  const std::vector<std::string>& Open(const std::string& node_id) const;
  // The command is finished (succeeded or failed): it leaves the book.
  void Finish(const std::string& command_id);
  // The node is gone: each of its unfinished commands becomes CANCELLED with
  // `message`, leaves the book and is returned (for the batch) in issue
  // order.
  std::vector<CommandRecord> CancelAll(const std::string& node_id,
                                       absl::Time now,
                                       const std::string& message);
  // PENDING -> DELIVERED: bumps the version.
  static void MarkDelivered(CommandRecord& c, absl::Time now);

  // Makes `w` the node's command stream; returns its handle. The stream it
  // replaces, if any, is returned in `replaced` (its `closed` is due).
  uint64_t Watch(const std::string& node_id,
                 std::function<void(const NodeCommand&)> deliver,
                 std::function<void()> closed, Watcher* replaced);
  // Ends the node's stream if `handle` is still the current one.
  void Unwatch(const std::string& node_id, uint64_t handle);
  const Watcher* FindWatcher(const std::string& node_id) const;
  // Ends the node's stream and returns it (its `closed` is due); an empty
  // Watcher when there was none.
  Watcher TakeWatcher(const std::string& node_id);
  // Ends every stream and returns them.
  std::vector<Watcher> TakeAllWatchers();

 private:
  absl::flat_hash_map<std::string, CommandRecord> commands_;
  // Node id -> its unfinished command ids in issue order (only nodes that
  // have some).
  absl::flat_hash_map<std::string, std::vector<std::string>> open_;
  absl::flat_hash_map<std::string, Watcher> watchers_;
  uint64_t next_watch_handle_ = 1;
};

}  // namespace navarch::fleet_internal

#endif  // NAVARCH_FLEET_COMMAND_BOOK_H_
