#include "navarch/fleet/node_state.h"

#include "absl/strings/str_cat.h"

namespace navarch {

const char* TriggerName(NodeTrigger t) {
  switch (t) {
    case NodeTrigger::kRegister:
      return "register";
    case NodeTrigger::kUnhealthy:
      return "unhealthy";
    case NodeTrigger::kHeartbeatTimeout:
      return "heartbeat-timeout";
    case NodeTrigger::kCordon:
      return "cordon";
    case NodeTrigger::kUncordon:
      return "uncordon";
    case NodeTrigger::kDrain:
      return "drain";
    case NodeTrigger::kTerminated:
      return "terminated";
  }
  return "?";
}

absl::StatusOr<NodeStatus> NextStatus(const std::string& node_id,
                                      NodeStatus from, NodeTrigger trigger) {
  auto refuse = [&](absl::string_view why) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", node_id, " ", why,
                     " (current status: ", NodeStatus_Name(from), ")"));
  };
  if (from == NODE_STATUS_UNKNOWN) {
    if (trigger == NodeTrigger::kRegister) return NODE_STATUS_ACTIVE;
    return refuse("is not registered");
  }
  if (from == NODE_STATUS_TERMINATED) {
    if (trigger == NodeTrigger::kTerminated ||
        trigger == NodeTrigger::kUnhealthy ||
        trigger == NodeTrigger::kHeartbeatTimeout) {
      return NODE_STATUS_TERMINATED;
    }
    return refuse(absl::StrCat("is terminated; cannot ", TriggerName(trigger)));
  }
  switch (trigger) {
    case NodeTrigger::kRegister:
      return from;
    case NodeTrigger::kUnhealthy:
    case NodeTrigger::kHeartbeatTimeout:
      return NODE_STATUS_UNHEALTHY;
    case NodeTrigger::kCordon:
      if (from == NODE_STATUS_ACTIVE) return NODE_STATUS_CORDONED;
      return from;  // already cordoned, draining or unhealthy: no less
                    // restrictive
    case NodeTrigger::kUncordon:
      if (from == NODE_STATUS_ACTIVE) return refuse("is not cordoned");
      return NODE_STATUS_ACTIVE;
    case NodeTrigger::kDrain:
      if (from == NODE_STATUS_UNHEALTHY) return from;
      return NODE_STATUS_DRAINING;
    case NodeTrigger::kTerminated:
      return NODE_STATUS_TERMINATED;
  }
  return refuse("unknown trigger");
}

}  // namespace navarch
