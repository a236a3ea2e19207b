// Where the node agent's node id comes from when nobody types it:
// `node-agent --node-id auto`. A node must register under its instance's id
// (the id its provider reports, which the pool manager matches nodes by), so
// the agent asks the VM's cloud:
//   ec2       IMDSv2: PUT /latest/api/token, then GET meta-data/instance-id
//             (plus placement/availability-zone, placement/region and
//             instance-type); AWS_EC2_METADATA_SERVICE_ENDPOINT overrides
//             http://169.254.169.254, AWS_EC2_METADATA_DISABLED=true skips it.
//   gce       the metadata server: GET computeMetadata/v1/instance/name (plus
//             instance/zone and instance/machine-type) with
//             `Metadata-Flavor: Google`; GCE_METADATA_HOST overrides
//             metadata.google.internal.
//   file      the first line of /etc/navarch/node-id, which the bootstrap user
//             data may write on clouds without a metadata service.
//   control-plane
//             the id the control plane assigned (agent/assigned_node_id.h):
//             first the one kept from an earlier start (assigned_file), else,
//             when the agent holds a bootstrap token, RegisterNode with an
//             empty node id answers the id of the instance the token was
//             minted for (Lambda: no metadata service, and the instance id
//             exists only after the launch, so user data cannot carry it).
//             The answer is kept in assigned_file.
//   hostname  gethostname(), only when allowed: on a cloud it is rarely the
//             instance's id.
// docs/agent.md ("Node identity") is the user's description.
#ifndef NAVARCH_AGENT_NODE_IDENTITY_H_
#define NAVARCH_AGENT_NODE_IDENTITY_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/net/instance_metadata.h"

namespace navarch::agent {

inline constexpr char kNodeIdAuto[] = "auto";
// The contract with bootstrap user data on clouds without metadata.
inline constexpr char kNodeIdFile[] = "/etc/navarch/node-id";

enum class NodeIdSourceKind { kEc2, kGce, kFile, kControlPlane, kHostname };

struct NodeIdSource {
  NodeIdSourceKind kind = NodeIdSourceKind::kEc2;
  std::string path;  // kFile only.
};

// "ec2", "gce", "file:PATH" (PATH absolute), "control-plane" or "hostname";
// INVALID_ARGUMENT naming the accepted forms otherwise.
absl::StatusOr<NodeIdSource> ParseNodeIdSource(absl::string_view text);

struct NodeIdentityOptions {
  // Only this source. Unset: ec2, gce, `file`, control-plane (when
  // control_plane or assigned_file is set), then the hostname when
  // allow_hostname; the first that answers wins.
  std::optional<NodeIdSource> source;
  std::string file = kNodeIdFile;
  bool allow_hostname = false;
  // The control-plane source: asks for the assigned id (it blocks until the
  // control plane answers or gives up; see AskControlPlaneForNodeId). Null:
  // the agent holds no bootstrap token, and only assigned_file is read.
  std::function<absl::StatusOr<std::string>()> control_plane;
  // Where the control-plane source keeps the id it was given (mode 0644,
  // replaced atomically) and reads it first. Empty: not kept.
  std::string assigned_file;
  // Per metadata request (defaults: 1 s connect, 2 s whole).
  MetadataCallOptions metadata;
  GetEnv getenv;                          // Null: the process's environment.
  std::function<std::string()> hostname;  // Null: gethostname().
};

struct NodeIdentity {
  std::string node_id;  // Valid as a node id (navarch::ValidateId).
  // What gave it, for the start-up log ("ec2 instance metadata at
  // http://169.254.169.254").
  std::string source;
  // What the source also knows about the instance; empty where it does not
  // (files, the hostname).
  std::string region;
  std::string zone;
  std::string instance_type;
};

// Asks the source(s) in order. Blocks for at most about the metadata
// timeouts of the sources tried. When none answers: UNAVAILABLE whose
// message lists every source tried and why it gave nothing.
absl::StatusOr<NodeIdentity> ResolveNodeIdentity(
    const NodeIdentityOptions& options);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_NODE_IDENTITY_H_
