// The node status state machine: the only definition of which status changes
// are allowed. FleetService asks it before every change.
//
//   from \ trigger   register  unhealthy  hb-timeout  cordon    uncordon drain
//   terminated (new)            ACTIVE    -          -           -         - -
//   - ACTIVE           ACTIVE    UNHEALTHY  UNHEALTHY   CORDONED  error
//   DRAINING  TERMINATED CORDONED         CORDONED  UNHEALTHY  UNHEALTHY
//   CORDONED  ACTIVE       DRAINING  TERMINATED DRAINING         DRAINING
//   UNHEALTHY  UNHEALTHY   DRAINING  ACTIVE       DRAINING  TERMINATED
//   UNHEALTHY        UNHEALTHY UNHEALTHY  UNHEALTHY   UNHEALTHY ACTIVE (*)
//   UNHEALTHY TERMINATED TERMINATED       error     TERMINATED TERMINATED error
//   error        error     TERMINATED
//
// (*) an operator override, recorded as such in the event log. Differences from
// upstream (inventory §5.5): re-registration keeps the status (no laundering of
// UNHEALTHY through an agent restart), cordon/drain never lift UNHEALTHY, and
// uncordon works from DRAINING and, as an override, from UNHEALTHY.
#ifndef NAVARCH_FLEET_NODE_STATE_H_
#define NAVARCH_FLEET_NODE_STATE_H_

#include "absl/status/statusor.h"
#include "navarch/control_plane.pb.h"

namespace navarch {

enum class NodeTrigger {
  kRegister,
  kUnhealthy,         // a health evaluation concluded UNHEALTHY
  kHeartbeatTimeout,  // the heartbeat monitor gave up on it
  kCordon,
  kUncordon,
  kDrain,
  kTerminated,  // its instance is gone
};

const char* TriggerName(NodeTrigger t);

// The status after `trigger`, or FAILED_PRECONDITION naming the node and its
// current status. `from` UNKNOWN means a node we have never seen.
absl::StatusOr<NodeStatus> NextStatus(const std::string& node_id,
                                      NodeStatus from, NodeTrigger trigger);

}  // namespace navarch

#endif  // NAVARCH_FLEET_NODE_STATE_H_
