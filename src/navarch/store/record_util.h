// Rules every Store backend applies the same way, so that they behave alike.
#ifndef NAVARCH_STORE_RECORD_UTIL_H_
#define NAVARCH_STORE_RECORD_UTIL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/store/store.h"

namespace navarch {

// Times as integer nanoseconds since the Unix epoch, so SQL can compare and
// index them. The infinities (and an unset Timestamp, which is
// InfinitePast) map to the int64 extremes, which keeps every order intact.
int64_t TimeToNanos(absl::Time t);
absl::Time NanosToTime(int64_t nanos);

// ABORTED unless `next` == `current` + 1 (`current` 0: absent).
absl::Status CheckVersion(absl::string_view what, const std::string& id,
                          int64_t current, int64_t next);

// Every record has an id and a positive version; node_extras is empty or
// one per node record, and each entry passes CheckNodeExtras.
absl::Status ValidateBatch(const WriteBatch& batch);

// WriteBatch::node_extras: OK when `extras` is a sequence of well-framed
// NodeInfo fields (tags, lengths; not the bytes inside each field) none of
// which is one a backend reads from the record itself (node_id, pool,
// status, health_status, last_heartbeat). INVALID_ARGUMENT otherwise.
absl::Status CheckNodeExtras(absl::string_view extras);

// The record with `extras` (checked) merged into its node: what
// WriteBatch::node_extras says is stored. INTERNAL when the bytes inside a
// field do not parse.
absl::Status MergeNodeExtras(absl::string_view extras, NodeRecord& record);

// Appends `extras` to `record_bytes` (a serialized NodeRecord) as a second
// occurrence of its `node` field, which a parser merges into the first:
// the bytes of the merged record, built without parsing anything. Nothing
// is appended for empty extras.
void AppendNodeExtras(absl::string_view extras, std::string& record_bytes);

// `extras` (checked) without any occurrence of NodeInfo field `field`.
std::string WithoutNodeField(absl::string_view extras, int field);

absl::Status ValidateQuery(const EventQuery& query);

bool EventMatches(const EventQuery& query, const Event& event);

inline bool IsOpen(internal::CommandState s) {
  return s == internal::COMMAND_STATE_PENDING ||
         s == internal::COMMAND_STATE_DELIVERED;
}

// A node read back from a backend that keeps liveness beside the record
// (SQL backends: node_liveness): the flushed heartbeat raises the record's
// own (never lowers it), and flushed metrics (serialized NodeMetrics;
// nullopt: none since the record was written) replace the record's.
// INTERNAL when the metrics do not parse.
absl::Status MergeLiveness(absl::Time flushed,
                           std::optional<absl::string_view> metrics,
                           NodeRecord& record);

// Issue order (issued_at, then id).
void SortCommands(std::vector<CommandRecord>& commands);

// A TERMINATED instance whose terminated_at is before `before`.
bool IsPrunableInstance(const InstanceRecord& r, absl::Time before);

// Raises the record's last_heartbeat (never lowers it) and replaces the
// metrics unless the update is older than the stored heartbeat. Returns
// whether it replaced the metrics.
bool ApplyHeartbeat(const HeartbeatUpdate& update, NodeRecord& record);

}  // namespace navarch

#endif  // NAVARCH_STORE_RECORD_UTIL_H_
