// Who may call what: bearer tokens with roles, client certificates of agents,
// and the rights each method needs. Transport-free: the gRPC service and the
// HTTP server extract the credentials (an Authorization header, the names of
// a verified client certificate) and ask here.
//
// Roles (docs/security.md):
//   viewer    reads: nodes, instances, pools, events
//   agent     the node RPCs: RegisterNode, SendHeartbeat, ReportHealth,
//             GetNodeCommands, AckCommand, WatchCommands
//   operator  everything
// A verified client certificate (mTLS) acts as an agent, but only for the
// node ids its common name and DNS subject alternative names spell; so does a
// node token, "navarch-node.<node id>.<base64url HMAC-SHA256(key, node id)>",
// for the one node it names. An agent-role token acts for every node, unless
// auth.allow_shared_agent_tokens is false.
#ifndef NAVARCH_CONTROLPLANE_AUTH_H_
#define NAVARCH_CONTROLPLANE_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"

namespace navarch {

// What a call needs.
enum class Access {
  kPublic,         // nothing (an open probe)
  kAuthenticated,  // any valid credential (a protected probe, /metrics)
  kRead,           // viewer or operator
  kNode,           // agent or operator; certificates only for their node
  kOperate,        // operator
  // The agent's binary and package (agent_download.h): any agent credential
  // (agent-role or node token, certificate, bootstrap token) or an operator.
  kAgentDownload,
};

// The access each RPC of navarch.ControlPlaneService needs, by method name
// ("RegisterNode"); nullopt for a name that is not a method.
std::optional<Access> MethodAccess(absl::string_view method);

// The caller, once authenticated.
struct Identity {
  // Recorded as the actor of commands: "operator:ops", "node:gpu-7", or
  // "operator" when authentication is off.
  std::string actor;
  // Bit set of roles (1 << AuthRole).
  unsigned roles = 0;
  // Certificate and node-token identities act for these node ids only;
  // empty: any node.
  std::vector<std::string> node_ids;
  // What bound it to node_ids, for messages: "client certificate",
  // "node token", "bootstrap token".
  std::string bound_by;
  // Set for a bootstrap token: the provision intent (the instance's
  // navarch-token) it was minted for. Such a caller may only register the
  // instance that intent bought, and gets that node's token back.
  std::string bootstrap_intent;

  bool Has(AuthRole role) const {
    return (roles & (1u << static_cast<int>(role))) != 0;
  }
};

// What one request presented.
struct Credentials {
  // The Authorization header value ("Bearer <token>"); empty when absent.
  std::string authorization;
  // Whether the transport verified a client certificate, and the names it
  // carries (common name first, then DNS subject alternative names).
  bool has_certificate = false;
  std::vector<std::string> certificate_names;
};

class Authenticator {
 public:
  // Reads every token's secret and the node token key (environment variable
  // or file). Fails, naming the token but never the secret, when one is
  // missing, empty, not printable ASCII, or equal to another's, or when the
  // node token key is shorter than kMinNodeTokenKeyLength. `getenv` is
  // injected for tests; null means ::getenv.
  // `clock` (null: the real one) tells bootstrap tokens' expiry.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(
      const AuthConfig& config, bool require_client_certificate,
      std::function<const char*(const char*)> getenv = nullptr,
      Clock* clock = nullptr);

  // Whether the instance registering as `node_id` was bought by the
  // provision intent `intent` and may register now: OK or
  // PERMISSION_DENIED saying why. Without one, bootstrap tokens are refused.
  using BootstrapCheck = std::function<absl::Status(absl::string_view intent,
                                                    absl::string_view node_id)>;
  // Set once, before the first call.
  void set_bootstrap_check(BootstrapCheck check) {
    bootstrap_check_ = std::move(check);
  }

  // A bootstrap token for the instance provision intent `intent` will buy,
  // valid until `expiry` (see BootstrapToken). FAILED_PRECONDITION without
  // auth.node_token_key; INVALID_ARGUMENT for an intent that is not an id.
  absl::StatusOr<std::string> MintBootstrapToken(absl::string_view intent,
                                                 absl::Time expiry) const;
  // The node token of `node_id` (handed to an agent that registered with a
  // bootstrap token); empty without auth.node_token_key.
  std::string NodeTokenFor(absl::string_view node_id) const;

  // Whether tokens or a node token key are configured. Off: every caller is
  // an operator (behind mTLS when a client CA is set).
  bool enabled() const { return !tokens_.empty() || !node_key_.empty(); }
  bool node_tokens() const { return !node_key_.empty(); }
  bool allow_shared_agent_tokens() const { return allow_shared_agent_; }
  bool protect_metrics() const { return protect_metrics_; }
  bool protect_probes() const { return protect_probes_; }
  size_t token_count() const { return tokens_.size(); }

  // Who is calling, for a call that needs `access`. UNAUTHENTICATED: no,
  // malformed or unknown credentials, or no client certificate on an API
  // call when mTLS is on. Messages never contain the presented token.
  // Thread-safe.
  absl::StatusOr<Identity> Authenticate(const Credentials& credentials,
                                        Access access) const;
  // Whether `id` may make a call that needs `access`; `what` names the call
  // in messages ("IssueCommand"), `node_id` is the node the request is about
  // (node RPCs). PERMISSION_DENIED when not. Thread-safe.
  absl::Status Authorize(const Identity& id, Access access,
                         absl::string_view what,
                         absl::string_view node_id) const;
  // Both.
  absl::StatusOr<Identity> Check(const Credentials& credentials, Access access,
                                 absl::string_view what,
                                 absl::string_view node_id) const;

 private:
  struct Token {
    std::string name;
    AuthRole role;
    std::array<unsigned char, 32> digest;  // SHA-256 of the secret
  };
  Authenticator() = default;

  absl::StatusOr<Identity> Identify(const Credentials& credentials) const;
  std::optional<Identity> NodeTokenIdentity(absl::string_view token) const;
  // nullopt: not a bootstrap token; UNAUTHENTICATED: one that is forged or
  // expired.
  std::optional<absl::StatusOr<Identity>> BootstrapIdentity(
      absl::string_view token) const;
  // Authorize for an agent on a node RPC.
  absl::Status AuthorizeNode(const Identity& id, absl::string_view what,
                             absl::string_view node_id) const;

  std::vector<Token> tokens_;
  // Kept whole, not as a digest: every node token is checked against it.
  std::string node_key_;
  bool allow_shared_agent_ = true;
  bool protect_metrics_ = false;
  bool protect_probes_ = false;
  bool require_client_certificate_ = false;
  Clock* clock_ = nullptr;
  BootstrapCheck bootstrap_check_;
};

// A node token key shorter than this is refused: one leaked node token
// would let anyone search for a short key offline. `openssl rand -hex 32`
// gives 64 characters.
inline constexpr size_t kMinNodeTokenKeyLength = 32;

// The token that acts as the agent of `node_id`, and only of it:
// "navarch-node.<node_id>.<base64url, unpadded, HMAC-SHA256(key, node_id)>".
// The same as
//   printf %s "$NODE_ID" | openssl dgst -sha256 -hmac "$KEY" -binary |
//     basenc --base64url | tr -d =
// prefixed with "navarch-node.$NODE_ID.". Does not check its arguments.
std::string NodeToken(absl::string_view key, absl::string_view node_id);

// The token a new cloud instance's agent registers with (in its user data):
// "navarch-boot.<expiry, Unix seconds>.<intent>.<base64url HMAC-SHA256(key,
// "navarch-boot\n<expiry>\n<intent>")>", where the intent is the
// provision's idempotency token, which the instance carries as its
// navarch-token label. Bound to that one instance (the control plane checks
// the label of the instance whose id the agent registers as), short-lived,
// and good for RegisterNode (whose answer carries the node's own token) and
// the agent download only.
std::string BootstrapToken(absl::string_view key, absl::string_view intent,
                           absl::Time expiry);

// NodeToken for `node_id` with the key of config.node_token_key (for
// `control-plane --mint-node-token`). INVALID_ARGUMENT for a node id that is
// not one (base/ids.h); FAILED_PRECONDITION when no key is configured or it
// cannot be read or is too short. `getenv` null means ::getenv.
absl::StatusOr<std::string> MintNodeToken(
    const AuthConfig& config, absl::string_view node_id,
    std::function<const char*(const char*)> getenv = nullptr);

// The token each agent started by this control plane (the local provider)
// sends, by node id: its node token when auth.node_token_key is set; else
// the first agent-role token (unless allow_shared_agent_tokens is false),
// else the first operator token, the same for every node. NOT_FOUND when
// there is none of these (auth off); FAILED_PRECONDITION when the secret
// cannot be read. `getenv` null means ::getenv.
absl::StatusOr<std::function<std::string(const std::string& node_id)>>
AgentTokenSource(const AuthConfig& config,
                 std::function<const char*(const char*)> getenv = nullptr);

// Extracts the token of an "Authorization: Bearer <token>" value; the scheme
// is case-insensitive. nullopt when the value is not of that form.
std::optional<std::string> BearerToken(absl::string_view authorization);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_AUTH_H_
