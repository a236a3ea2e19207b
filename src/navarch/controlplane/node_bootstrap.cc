#include "navarch/controlplane/node_bootstrap.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "navarch/provider/provider.h"

namespace navarch {

absl::StatusOr<std::string> BootstrapInstanceId(FleetService& fleet,
                                                absl::string_view intent) {
  if (intent.empty()) {
    return absl::InvalidArgumentError("a bootstrap token without an intent");
  }
  const std::vector<InstanceInfo> found =
      fleet.FindInstancesByLabel(std::string(kLabelToken), std::string(intent));
  if (found.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "the instance bought with this bootstrap token is not recorded yet "
        "(its launch is still returning); retry"));
  }
  for (const InstanceInfo& inst : found) {
    if (inst.state() != INSTANCE_STATE_TERMINATED &&
        inst.state() != INSTANCE_STATE_FAILED) {
      return inst.instance_id();
    }
  }
  return found.front().instance_id();
}

absl::StatusOr<std::string> RegisteringNodeId(FleetService& fleet,
                                              const Identity& caller,
                                              const RegisterNodeRequest& req) {
  if (!req.node_id().empty() || caller.bootstrap_intent.empty()) {
    return req.node_id();
  }
  return BootstrapInstanceId(fleet, caller.bootstrap_intent);
}

absl::Status CheckBootstrap(FleetService& fleet, absl::string_view intent,
                            absl::string_view node_id) {
  std::string assigned;
  if (node_id.empty()) {
    absl::StatusOr<std::string> id = BootstrapInstanceId(fleet, intent);
    if (!id.ok()) return id.status();
    assigned = *std::move(id);
    node_id = assigned;
  }
  GetInstanceRequest req;
  req.set_instance_id(std::string(node_id));
  absl::StatusOr<GetInstanceResponse> got = fleet.GetInstance(req);
  if (!got.ok()) {
    if (got.status().code() != absl::StatusCode::kNotFound) {
      return got.status();
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "a bootstrap token registers only an instance this control plane "
        "bought, under its instance id; no instance ",
        node_id.substr(0, 253), " is known"));
  }
  const InstanceInfo& inst = got->instance();
  auto label = inst.labels().find(std::string(kLabelToken));
  if (label == inst.labels().end() || label->second != intent) {
    return absl::PermissionDeniedError(
        absl::StrCat("instance ", node_id.substr(0, 253),
                     " was not bought with this bootstrap token"));
  }
  if (inst.state() == INSTANCE_STATE_TERMINATED ||
      inst.state() == INSTANCE_STATE_FAILED) {
    return absl::PermissionDeniedError(absl::StrCat(
        "instance ", node_id.substr(0, 253), " is ",
        inst.state() == INSTANCE_STATE_FAILED ? "failed" : "terminated", ": ",
        inst.status_message()));
  }
  return absl::OkStatus();
}

void HandNodeToken(const Authenticator& auth, const Identity& caller,
                   absl::string_view node_id, RegisterNodeResponse& resp) {
  resp.set_node_id(std::string(node_id));
  if (caller.bootstrap_intent.empty()) return;
  resp.set_node_token(auth.NodeTokenFor(node_id));
}

}  // namespace navarch
