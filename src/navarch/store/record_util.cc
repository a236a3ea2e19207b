#include "navarch/store/record_util.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace navarch {

absl::Status CheckVersion(absl::string_view what, const std::string& id,
                          int64_t current, int64_t next) {
  if (next == current + 1) return absl::OkStatus();
  return absl::AbortedError(
      absl::StrCat(what, " ", id, ": version conflict (stored ", current,
                   ", write ", next, "); another writer changed it"));
}

absl::Status ValidateBatch(const WriteBatch& batch) {
  for (const auto& n : batch.nodes) {
    if (n.node().node_id().empty())
      return absl::InvalidArgumentError("node record without id");
    if (n.version() < 1)
      return absl::InvalidArgumentError("node record without version");
  }
  for (const auto& i : batch.instances) {
    if (i.instance().instance_id().empty()) {
      return absl::InvalidArgumentError("instance record without id");
    }
    if (i.version() < 1)
      return absl::InvalidArgumentError("instance record without version");
  }
  for (const auto& c : batch.commands) {
    if (c.command().command_id().empty()) {
      return absl::InvalidArgumentError("command record without id");
    }
    if (c.version() < 1)
      return absl::InvalidArgumentError("command record without version");
  }
  for (const auto& e : batch.events) {
    if (e.kind().empty())
      return absl::InvalidArgumentError("event without kind");
  }
  return absl::OkStatus();
}

absl::Status ValidateQuery(const EventQuery& query) {
  if (query.limit < 1)
    return absl::InvalidArgumentError("event query limit must be >= 1");
  if (query.after_id < 0)
    return absl::InvalidArgumentError("event cursor must be >= 0");
  return absl::OkStatus();
}

bool EventMatches(const EventQuery& query, const Event& event) {
  if (event.id() <= query.after_id) return false;
  if (!query.node_id.empty() && event.node_id() != query.node_id) return false;
  if (!query.pool.empty() && event.pool() != query.pool) return false;
  absl::Time t = FromTimestamp(event.time());
  if (t < query.since || t >= query.until) return false;
  if (query.kinds.empty()) return true;
  return std::any_of(
      query.kinds.begin(), query.kinds.end(),
      [&](const std::string& k) { return EventKindMatches(k, event.kind()); });
}

void SortCommands(std::vector<CommandRecord>& commands) {
  std::stable_sort(commands.begin(), commands.end(),
                   [](const CommandRecord& a, const CommandRecord& b) {
                     absl::Time ta = FromTimestamp(a.command().issued_at());
                     absl::Time tb = FromTimestamp(b.command().issued_at());
                     if (ta != tb) return ta < tb;
                     return a.command().command_id() < b.command().command_id();
                   });
}

bool IsPrunableInstance(const InstanceRecord& r, absl::Time before) {
  return (r.instance().state() == INSTANCE_STATE_TERMINATED ||
          r.instance().state() == INSTANCE_STATE_FAILED) &&
         IsSet(r.instance().terminated_at()) &&
         FromTimestamp(r.instance().terminated_at()) < before;
}

void ApplyHeartbeat(const HeartbeatUpdate& update, NodeRecord& record) {
  NodeInfo* node = record.mutable_node();
  // A delayed flush must not replace newer metrics with older ones.
  bool not_older =
      update.last_heartbeat >= FromTimestamp(node->last_heartbeat());
  if (update.metrics && not_older)
    *node->mutable_last_metrics() = *update.metrics;
  *node->mutable_last_heartbeat() =
      MaxTimestamp(node->last_heartbeat(), ToTimestamp(update.last_heartbeat));
}

}  // namespace navarch
