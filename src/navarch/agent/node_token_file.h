// Where an agent keeps the node token its bootstrap token was exchanged for
// (RegisterNodeResponse.node_token, docs/security.md "Bootstrap tokens"): the
// bootstrap token in its user data expires minutes after the machine was
// bought, so an agent restarted later (a crash, a reboot, an upgrade) must
// find its node token again. `node-agent --node-token-file PATH`.
#ifndef NAVARCH_AGENT_NODE_TOKEN_FILE_H_
#define NAVARCH_AGENT_NODE_TOKEN_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace navarch::agent {

// The node token of `node_id` kept in `path`; empty when the file does not
// exist or is empty. FAILED_PRECONDITION when it holds something else (for
// instance another node's token, on an image made from a registered
// machine): the caller goes on with its configured token.
absl::StatusOr<std::string> LoadNodeToken(const std::string& path,
                                          absl::string_view node_id);

// Keeps `token` in `path` (mode 0600, replaced atomically).
absl::Status SaveNodeToken(const std::string& path, const std::string& token);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_NODE_TOKEN_FILE_H_
