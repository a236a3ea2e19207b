#include "navarch/agent/assigned_node_id.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/ids.h"

namespace navarch::agent {

bool IsBootstrapToken(absl::string_view token) {
  return absl::StartsWith(token, "navarch-boot.");
}

std::string AssignedNodeIdFile(const std::string& node_token_file) {
  if (node_token_file.empty()) return "";
  const size_t slash = node_token_file.rfind('/');
  if (slash == std::string::npos) return "node-id";
  return absl::StrCat(node_token_file.substr(0, slash + 1), "node-id");
}

absl::StatusOr<std::string> AskControlPlaneForNodeId(
    ControlPlaneClient& client, RegisterNodeRequest identity, Backoff& backoff,
    const std::function<bool(absl::Duration)>& wait, const Logger& log) {
  identity.clear_node_id();
  for (;;) {
    absl::StatusOr<RegisterNodeResponse> resp = client.RegisterNode(identity);
    if (resp.ok() && !resp->success()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the control plane refused the registration: ", resp->message()));
    }
    if (resp.ok()) {
      if (absl::Status s = ValidateId("node id", resp->node_id()); !s.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the control plane did not assign a usable node id (one older "
            "than this agent assigns none): ",
            s.message()));
      }
      return resp->node_id();
    }
    const absl::StatusCode code = resp.status().code();
    if (code != absl::StatusCode::kUnavailable &&
        code != absl::StatusCode::kDeadlineExceeded) {
      return resp.status();
    }
    const absl::Duration delay = backoff.Next();
    log.Info("the control plane has no node id for this agent yet; retrying",
             {{"error", resp.status()},
              {"attempt", backoff.attempts()},
              {"retry_in", delay}});
    if (!wait(delay)) {
      return absl::CancelledError(
          "stopped while waiting for the control plane to assign a node id");
    }
  }
}

}  // namespace navarch::agent
