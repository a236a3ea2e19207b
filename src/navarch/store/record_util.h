// Rules every Store backend applies the same way, so that they behave alike.
#ifndef NAVARCH_STORE_RECORD_UTIL_H_
#define NAVARCH_STORE_RECORD_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/store/store.h"

namespace navarch {

// ABORTED unless `next` == `current` + 1 (`current` 0: absent).
absl::Status CheckVersion(absl::string_view what, const std::string& id,
                          int64_t current, int64_t next);

// Every record has an id and a positive version.
absl::Status ValidateBatch(const WriteBatch& batch);
absl::Status ValidateQuery(const EventQuery& query);

bool EventMatches(const EventQuery& query, const Event& event);

inline bool IsOpen(internal::CommandState s) {
  return s == internal::COMMAND_STATE_PENDING ||
         s == internal::COMMAND_STATE_DELIVERED;
}

// Issue order (issued_at, then id).
void SortCommands(std::vector<CommandRecord>& commands);

// A TERMINATED instance whose terminated_at is before `before`.
bool IsPrunableInstance(const InstanceRecord& r, absl::Time before);

// Raises the record's last_heartbeat (never lowers it) and replaces the
// metrics unless the update is older than the stored heartbeat.
void ApplyHeartbeat(const HeartbeatUpdate& update, NodeRecord& record);

}  // namespace navarch

#endif  // NAVARCH_STORE_RECORD_UTIL_H_
