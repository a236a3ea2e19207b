// Names of wire enums as users and policies see them.
#ifndef NAVARCH_API_NAMES_H_
#define NAVARCH_API_NAMES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/control_plane.pb.h"

namespace navarch {

// Short lowercase names: "active", "cordoned"; "healthy"; "cordon".
std::string ShortName(NodeStatus s);
std::string ShortName(HealthStatus s);
std::string ShortName(NodeCommandType t);
std::string ShortName(InstanceState s);

// The event type as health policies name it: "xid", "thermal", "ecc_dbe", ...
// ("" for UNKNOWN), and the system as DCGM names it: "DCGM_HEALTH_WATCH_MEM".
std::string PolicyName(HealthEventType t);
std::string PolicyName(HealthWatchSystem s);

// Accepts the full enum name ("NODE_STATUS_ACTIVE") or the short one
// ("active"), case-insensitively.
absl::StatusOr<NodeStatus> ParseNodeStatus(absl::string_view name);
absl::StatusOr<NodeCommandType> ParseCommandType(absl::string_view name);

// Worse of two health statuses (UNHEALTHY > DEGRADED > HEALTHY > UNKNOWN).
HealthStatus WorseHealth(HealthStatus a, HealthStatus b);

}  // namespace navarch

#endif  // NAVARCH_API_NAMES_H_
