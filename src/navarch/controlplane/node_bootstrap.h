// How a new cloud instance's agent proves, with no human step, that it is
// the instance it claims to be: the pool manager puts a bootstrap token
// (auth.h: BootstrapToken) for the provision intent into the instance's user
// data; the agent registers with it under its instance id; the control plane
// accepts it only for the instance that carries the intent as its
// navarch-token label and is not terminated or failed, and answers with the
// node's own token (RegisterNodeResponse.node_token). An agent that cannot
// learn its instance id (Lambda: no metadata service) registers with an
// empty node id, and the control plane registers it under the id of the
// instance its token's intent bought (RegisterNodeResponse.node_id).
#ifndef NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_
#define NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/controlplane/auth.h"
#include "navarch/fleet/fleet_service.h"

namespace navarch {

// OK when the instance `node_id` is known to `fleet`, was bought by the
// provision intent `intent`, and is neither terminated nor failed;
// PERMISSION_DENIED saying which of these does not hold. An empty `node_id`
// (an agent that asks the control plane for its id) checks the instance
// BootstrapInstanceId finds, and fails as it does. Thread-safe (reads
// through FleetService).
absl::Status CheckBootstrap(FleetService& fleet, absl::string_view intent,
                            absl::string_view node_id);

// The id of the instance bought by the provision intent `intent` (the one
// whose navarch-token label is `intent`): the node id of an agent that
// registers with a bootstrap token and an empty node id, on clouds without
// a metadata service (Lambda), where the instance id exists only once the
// launch has returned and user data cannot carry it. UNAVAILABLE "not
// recorded yet" while no instance carries the label (the launch is still
// returning; the agent retries). Where several do (not expected: intents are
// unique), the first live one in id order, else the first. Thread-safe.
absl::StatusOr<std::string> BootstrapInstanceId(FleetService& fleet,
                                                absl::string_view intent);

// The node id `req` registers, from `caller`: req.node_id, or, when it is
// empty and the caller holds a bootstrap token, BootstrapInstanceId's
// answer. Empty without either (the fleet refuses it: INVALID_ARGUMENT).
// Both transports call it after authorization (which ran CheckBootstrap).
absl::StatusOr<std::string> RegisteringNodeId(FleetService& fleet,
                                              const Identity& caller,
                                              const RegisterNodeRequest& req);

// After `caller` registered `node_id`: tells the agent that id
// (RegisterNodeResponse.node_id) and, when it came with a bootstrap token,
// puts the node's own token into `resp` (both transports do this).
void HandNodeToken(const Authenticator& auth, const Identity& caller,
                   absl::string_view node_id, RegisterNodeResponse& resp);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_
