// The fleet core's index of nodes: entries (a hot NodeRecord plus packed
// parts, node_wire.h), an ordered view by id (paging, summaries), a hash view
// for the per-call lookups, the live set the heartbeat monitor walks, and the
// list of nodes whose heartbeat is not in the store yet.
//
// Not thread-safe: FleetService guards it with its lock. Insert, Erase and
// Load are the only ways in and out, so the views always agree; every install
// of a record goes through Stage or Sync, so the live set follows status.
#ifndef NAVARCH_FLEET_NODE_INDEX_H_
#define NAVARCH_FLEET_NODE_INDEX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/fleet/node_wire.h"
#include "navarch/store/store.h"

namespace navarch::fleet_internal {

struct NodeEntry {
  // Without gpus, metadata and last_metrics (those are in `parts`).
  NodeRecord record;
  NodeParts parts;
  // The last sign of life for the heartbeat monitor: max(last heartbeat,
  // registration, control-plane start). Written through NodeIndex::Touch (a
  // live node's copy in the live set is what the monitor reads).
  absl::Time alive_at;
  // Index in the live set while the node's status is live, else -1.
  int32_t live_slot = -1;
  bool heartbeat_dirty = false;
  // Vouched for (FleetService::VouchLiveness): the live set holds
  // InfiniteFuture for it (never silent).
  bool vouched = false;
};

// ACTIVE, CORDONED and DRAINING: the statuses the heartbeat monitor watches.
bool IsLive(NodeStatus s);

class NodeIndex {
 public:
  using Map = std::map<std::string, NodeEntry>;

  NodeIndex() = default;
  NodeIndex(const NodeIndex&) = delete;
  NodeIndex& operator=(const NodeIndex&) = delete;

  // Fills an empty index from the store's records. Liveness restarts at
  // `now` (or a later heartbeat): the control plane may have been down.
  void Load(std::vector<NodeRecord> records, absl::Time now);

  NodeEntry* Find(absl::string_view id) {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
  }
  // The entry for `id`, new (empty, not live) if there was none.
  NodeEntry& Insert(const std::string& id);
  void Erase(const std::string& id);

  // Installs `hot` (a new version of the entry's hot part) and adds it to
  // `batch` with the entry's packed parts as its node_extras (the store
  // merges them; nothing is parsed here). Every node of a batch comes
  // through here, so there is one extras entry per record.
  void Stage(NodeEntry& entry, NodeRecord hot, WriteBatch& batch);
  // Installs `record` (a whole node read back from the store) as it is.
  void Replace(NodeEntry& entry, NodeRecord record);
  // Sets the node's last sign of life (inline: every heartbeat).
  void Touch(NodeEntry& entry, absl::Time alive_at) {
    entry.alive_at = alive_at;
    if (entry.live_slot >= 0) {
      live_[entry.live_slot].alive_at =
          entry.vouched ? absl::InfiniteFuture() : alive_at;
    }
  }
  void SetVouched(NodeEntry& entry, bool vouched);
  // Notes that the entry's heartbeat changed since the last flush.
  void MarkDirty(NodeEntry& entry, const std::string& id) {
    if (entry.heartbeat_dirty) return;
    entry.heartbeat_dirty = true;
    dirty_.push_back(id);
  }
  // The ids marked dirty since the last call (entries may be gone).
  std::vector<std::string> TakeDirty() { return std::move(dirty_); }

  // Live nodes whose last sign of life is more than `timeout` before `now`,
  // in id order. Walks the dense live set, not the index.
  std::vector<NodeEntry*> Silent(absl::Time now, absl::Duration timeout);

  // The ordered view.
  Map::const_iterator begin() const { return nodes_.begin(); }
  Map::const_iterator end() const { return nodes_.end(); }
  // The first entry after `id` (which need not exist).
  Map::const_iterator after(const std::string& id) const {
    return nodes_.upper_bound(id);
  }
  size_t size() const { return nodes_.size(); }
  size_t live_count() const { return live_.size(); }

 private:
  // The heartbeat monitor's view of a live node, kept in one dense vector so
  // that a check walks a few MB, not the whole index (100,000 nodes: ~0.2 ms
  // instead of a walk of the map).
  struct LiveSlot {
    absl::Time alive_at;  // InfiniteFuture while vouched for
    NodeEntry* entry;
  };

  // Puts `entry` into the live set or takes it out, as its status says.
  void SyncLive(NodeEntry& entry);
  void RemoveLive(NodeEntry& entry);

  Map nodes_;
  // The same entries by id: a hash instead of string compares down a tree of
  // 100,000 ids. Keys view nodes_' own keys (map nodes never move).
  absl::flat_hash_map<absl::string_view, NodeEntry*> by_id_;
  // Live nodes, in no particular order.
  std::vector<LiveSlot> live_;
  // Nodes whose heartbeat_dirty flag went up since the last flush, so a
  // flush visits only nodes that beat, not the whole fleet.
  std::vector<std::string> dirty_;
};

}  // namespace navarch::fleet_internal

#endif  // NAVARCH_FLEET_NODE_INDEX_H_
