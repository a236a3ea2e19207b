#include "navarch/store/memory/memory_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "navarch/store/record_util.h"

namespace navarch {

namespace {

template <typename Map, typename Record, typename KeyFn>
absl::Status CheckVersions(const Map& stored,
                           const std::vector<Record>& records, KeyFn key,
                           absl::string_view what) {
  // A batch may update a record twice; batches are small, so the ones seen
  // are looked up by a walk, not kept in a map of copied ids.
  std::vector<std::pair<absl::string_view, int64_t>> seen;
  for (const Record& r : records) {
    const std::string& k = key(r);
    int64_t current = 0;
    auto s = std::find_if(seen.rbegin(), seen.rend(),
                          [&](const auto& e) { return e.first == k; });
    if (s != seen.rend()) {
      current = s->second;
    } else if (auto it = stored.find(k); it != stored.end()) {
      current = it->second.version();
    }
    NAVARCH_RETURN_IF_ERROR(CheckVersion(what, k, current, r.version()));
    seen.emplace_back(k, r.version());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MemoryStore::CommitLocked(WriteBatch& batch) {
  if (closed_) return absl::UnavailableError("store is closed");
  NAVARCH_RETURN_IF_ERROR(ValidateBatch(batch));
  NAVARCH_RETURN_IF_ERROR(CheckVersions(
      nodes_, batch.nodes,
      [](const NodeRecord& r) -> const std::string& {
        return r.node().node_id();
      },
      "node"));
  NAVARCH_RETURN_IF_ERROR(CheckVersions(
      instances_, batch.instances,
      [](const InstanceRecord& r) -> const std::string& {
        return r.instance().instance_id();
      },
      "instance"));
  NAVARCH_RETURN_IF_ERROR(CheckVersions(
      commands_, batch.commands,
      [](const CommandRecord& r) -> const std::string& {
        return r.command().command_id();
      },
      "command"));
  for (size_t i = 0; i < batch.nodes.size(); ++i) {
    NodeRecord& n = batch.nodes[i];
    StoredNode& slot = nodes_[n.node().node_id()];
    // Heartbeats are written separately and never go backwards. Only a newer
    // stored one is kept, so a record without a heartbeat reads back as such.
    // (Extras never carry last_heartbeat: the record's is the node's.)
    google::protobuf::Timestamp stored = slot.record.node().last_heartbeat();
    bool keep =
        FromTimestamp(stored) > FromTimestamp(n.node().last_heartbeat());
    slot.record = std::move(n);
    if (keep) *slot.record.mutable_node()->mutable_last_heartbeat() = stored;
    // Written whole: extras replace the stored ones (none: the record is
    // complete).
    if (batch.node_extras.empty()) {
      std::string().swap(slot.extras);
    } else {
      slot.extras = std::move(batch.node_extras[i]);
    }
  }
  for (auto& i : batch.instances)
    instances_[i.instance().instance_id()] = std::move(i);
  for (auto& c : batch.commands)
    commands_[c.command().command_id()] = std::move(c);
  for (auto& e : batch.events) {
    e.set_id(++last_event_id_);
    if (options_.keep_events) events_.push_back(std::move(e));
  }
  return absl::OkStatus();
}

void MemoryStore::Commit(WriteBatch batch,
                         std::function<void(absl::Status)> done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    status = CommitLocked(batch);
  }
  if (done) done(std::move(status));
}

absl::Status MemoryStore::UpdateHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("store is closed");
  for (const auto& u : updates) {
    auto it = nodes_.find(u.node_id);
    if (it == nodes_.end()) continue;
    StoredNode& n = it->second;
    // New metrics go into the record; any in the extras are now stale.
    if (ApplyHeartbeat(u, n.record) && !n.extras.empty())
      n.extras = WithoutNodeField(n.extras, NodeInfo::kLastMetricsFieldNumber);
  }
  return absl::OkStatus();
}

absl::StatusOr<NodeRecord> MemoryStore::Full(const StoredNode& node) {
  NodeRecord r = node.record;
  NAVARCH_RETURN_IF_ERROR(MergeNodeExtras(node.extras, r));
  return r;
}

absl::StatusOr<StoreSnapshot> MemoryStore::Load() {
  absl::MutexLock lock(&mu_);
  StoreSnapshot snap;
  // By id (nodes_ is a hash map: commits find nodes without a walk).
  std::vector<const std::pair<const std::string, StoredNode>*> by_id;
  by_id.reserve(nodes_.size());
  for (const auto& entry : nodes_) by_id.push_back(&entry);
  std::sort(by_id.begin(), by_id.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  snap.nodes.reserve(by_id.size());
  for (const auto* entry : by_id) {
    NAVARCH_ASSIGN_OR_RETURN(snap.nodes.emplace_back(), Full(entry->second));
  }
  for (const auto& [id, i] : instances_) snap.instances.push_back(i);
  for (const auto& [id, c] : commands_) {
    if (IsOpen(c.state())) snap.open_commands.push_back(c);
  }
  SortCommands(snap.open_commands);
  snap.last_event_id = last_event_id_;
  return snap;
}

absl::StatusOr<std::optional<NodeRecord>> MemoryStore::GetNode(
    const std::string& node_id) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return std::optional<NodeRecord>();
  NAVARCH_ASSIGN_OR_RETURN(NodeRecord r, Full(it->second));
  return std::optional<NodeRecord>(std::move(r));
}

absl::StatusOr<std::optional<CommandRecord>> MemoryStore::GetCommand(
    const std::string& command_id) {
  absl::MutexLock lock(&mu_);
  auto it = commands_.find(command_id);
  if (it == commands_.end()) return std::optional<CommandRecord>();
  return std::optional<CommandRecord>(it->second);
}

absl::StatusOr<EventPage> MemoryStore::ListEvents(const EventQuery& query) {
  NAVARCH_RETURN_IF_ERROR(ValidateQuery(query));
  absl::MutexLock lock(&mu_);
  EventPage page;
  auto it =
      std::upper_bound(events_.begin(), events_.end(), query.after_id,
                       [](int64_t id, const Event& e) { return id < e.id(); });
  for (; it != events_.end(); ++it) {
    if (!EventMatches(query, *it)) continue;
    if (static_cast<int>(page.events.size()) == query.limit) {
      page.more = true;
      break;
    }
    page.events.push_back(*it);
  }
  return page;
}

absl::StatusOr<int64_t> MemoryStore::Prune(const PruneRequest& request) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("store is closed");
  int64_t removed = 0;
  auto old_events =
      std::remove_if(events_.begin(), events_.end(), [&](const Event& e) {
        return FromTimestamp(e.time()) < request.events_before;
      });
  removed += events_.end() - old_events;
  events_.erase(old_events, events_.end());
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (IsPrunableInstance(it->second, request.instances_before)) {
      it = instances_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  for (auto it = commands_.begin(); it != commands_.end();) {
    if (!IsOpen(it->second.state()) &&
        FromTimestamp(it->second.updated_at()) < request.commands_before) {
      it = commands_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

absl::Status MemoryStore::Ping() {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("store is closed");
  return absl::OkStatus();
}

void MemoryStore::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

}  // namespace navarch
