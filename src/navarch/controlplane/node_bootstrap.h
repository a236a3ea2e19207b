// How a new cloud instance's agent proves, with no human step, that it is
// the instance it claims to be: the pool manager puts a bootstrap token
// (auth.h: BootstrapToken) for the provision intent into the instance's user
// data; the agent registers with it under its instance id; the control plane
// accepts it only for the instance that carries the intent as its
// navarch-token label and is not terminated or failed, and answers with the
// node's own token (RegisterNodeResponse.node_token).
#ifndef NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_
#define NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "navarch/controlplane/auth.h"
#include "navarch/fleet/fleet_service.h"

namespace navarch {

// OK when the instance `node_id` is known to `fleet`, was bought by the
// provision intent `intent`, and is neither terminated nor failed;
// PERMISSION_DENIED saying which of these does not hold. Thread-safe (reads
// through FleetService).
absl::Status CheckBootstrap(FleetService& fleet, absl::string_view intent,
                            absl::string_view node_id);

// After `caller` registered `node_id`: when it came with a bootstrap token,
// puts the node's own token into `resp` (both transports do this).
void HandNodeToken(const Authenticator& auth, const Identity& caller,
                   absl::string_view node_id, RegisterNodeResponse& resp);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_NODE_BOOTSTRAP_H_
