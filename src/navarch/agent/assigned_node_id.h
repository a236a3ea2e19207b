// The node id the control plane assigns (`node-agent --node-id auto`'s
// control-plane source, navarch/agent/node_identity.h): on a cloud without a
// metadata service (Lambda) the instance id exists only once the launch has
// returned, so the user data cannot carry it. The agent registers with an
// empty node id and the bootstrap token of its user data; the control plane
// registers the node under the id of the instance that token was minted for
// and says which (RegisterNodeResponse.node_id). docs/agent.md, "Node
// identity".
#ifndef NAVARCH_AGENT_ASSIGNED_NODE_ID_H_
#define NAVARCH_AGENT_ASSIGNED_NODE_ID_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/agent/client.h"
#include "navarch/base/backoff.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

// Whether `token` is a bootstrap token (auth.h: "navarch-boot.…"): only an
// agent holding one asks the control plane for its id.
bool IsBootstrapToken(absl::string_view token);

// Where the assigned id is kept for the next start (when the bootstrap token
// has expired): the file "node-id" in the folder of `node_token_file` (the
// package's unit: /var/lib/navarch-node-agent/node-id). Empty when
// `node_token_file` is empty: not kept.
std::string AssignedNodeIdFile(const std::string& node_token_file);

// Registers `identity` with its node_id cleared through `client` (which
// sends the bootstrap token) and returns the id the control plane registered
// it under. UNAVAILABLE and DEADLINE_EXCEEDED answers (the instance is not
// recorded yet while its launch returns; the control plane is unreachable)
// are retried after `backoff`'s delays, each waited by `wait`, which returns
// false to give up (a stop signal): then CANCELLED. Any other error is
// returned as it is; so is an answer without a usable node id (a control
// plane too old to assign ids: FAILED_PRECONDITION).
absl::StatusOr<std::string> AskControlPlaneForNodeId(
    ControlPlaneClient& client, RegisterNodeRequest identity, Backoff& backoff,
    const std::function<bool(absl::Duration)>& wait, const Logger& log);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_ASSIGNED_NODE_ID_H_
