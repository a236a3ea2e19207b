#include "navarch/controlplane/auth.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "navarch/base/ids.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"

namespace navarch {
namespace {

constexpr unsigned kAllRoles = (1u << static_cast<int>(AuthRole::kViewer)) |
                               (1u << static_cast<int>(AuthRole::kAgent)) |
                               (1u << static_cast<int>(AuthRole::kOperator));

unsigned Bit(AuthRole role) { return 1u << static_cast<int>(role); }

std::array<unsigned char, 32> Sha256(absl::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

// Tokens travel in an HTTP header: visible ASCII only.
bool PrintableToken(absl::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return !token.empty();
}

absl::StatusOr<std::string> ReadSecret(
    const AuthTokenConfig& t,
    const std::function<const char*(const char*)>& getenv) {
  std::string secret;
  if (!t.value.empty()) {
    secret = t.value;
  } else if (!t.token_env.empty()) {
    const char* v = getenv(t.token_env.c_str());
    if (v == nullptr || *v == '\0') {
      return absl::FailedPreconditionError(
          absl::StrCat("auth token '", t.name, "': environment variable ",
                       t.token_env, " is not set or empty"));
    }
    secret = v;
  } else {
    std::ifstream in(t.token_file, std::ios::binary);
    if (!in) {
      return absl::FailedPreconditionError(absl::StrCat(
          "auth token '", t.name, "': cannot read token_file ", t.token_file));
    }
    std::ostringstream data;
    data << in.rdbuf();
    secret = data.str();
    if (secret.size() > 4096) {
      return absl::FailedPreconditionError(
          absl::StrCat("auth token '", t.name, "': token_file ", t.token_file,
                       " is larger than 4096 bytes"));
    }
  }
  // `echo $TOKEN > file` adds a newline nobody means.
  secret = std::string(absl::StripAsciiWhitespace(secret));
  if (!PrintableToken(secret)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "auth token '", t.name,
        "': the token is empty or has characters other than visible ASCII"));
  }
  return secret;
}

constexpr absl::string_view kNodeTokenPrefix = "navarch-node.";
constexpr absl::string_view kBootstrapTokenPrefix = "navarch-boot.";

// The base64url (unpadded) HMAC-SHA256 of a node id (or of a bootstrap
// token's fields, which hold newlines no node id can): 43 characters.
std::string NodeTokenMac(absl::string_view key, absl::string_view node_id) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(node_id.data()), node_id.size(),
       mac, &len);
  std::string out;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(mac), len), &out);
  return out;
}

absl::StatusOr<std::string> ReadNodeKey(
    const AuthConfig& config,
    const std::function<const char*(const char*)>& getenv) {
  if (!config.node_token_key) {
    return absl::FailedPreconditionError("auth.node_token_key is not set");
  }
  absl::StatusOr<std::string> key = ReadSecret(*config.node_token_key, getenv);
  if (!key.ok()) return key.status();
  if (key->size() < kMinNodeTokenKeyLength) {
    return absl::FailedPreconditionError(
        absl::StrCat("auth token 'node_token_key': the key is shorter than ",
                     kMinNodeTokenKeyLength,
                     " characters (make one with `openssl rand -hex 32`)"));
  }
  return key;
}

std::function<const char*(const char*)> OrGetenv(
    std::function<const char*(const char*)> getenv) {
  if (getenv) return getenv;
  return [](const char* n) { return std::getenv(n); };
}

}  // namespace

std::string NodeToken(absl::string_view key, absl::string_view node_id) {
  return absl::StrCat(kNodeTokenPrefix, node_id, ".",
                      NodeTokenMac(key, node_id));
}

std::string BootstrapToken(absl::string_view key, absl::string_view intent,
                           absl::Time expiry) {
  const std::string when = absl::StrCat(absl::ToUnixSeconds(expiry));
  return absl::StrCat(
      kBootstrapTokenPrefix, when, ".", intent, ".",
      NodeTokenMac(key, absl::StrCat("navarch-boot\n", when, "\n", intent)));
}

absl::StatusOr<std::string> MintNodeToken(
    const AuthConfig& config, absl::string_view node_id,
    std::function<const char*(const char*)> getenv) {
  if (absl::Status s = ValidateId("node id", node_id); !s.ok()) return s;
  absl::StatusOr<std::string> key = ReadNodeKey(config, OrGetenv(getenv));
  if (!key.ok()) return key.status();
  return NodeToken(*key, node_id);
}

absl::StatusOr<std::function<std::string(const std::string& node_id)>>
AgentTokenSource(const AuthConfig& config,
                 std::function<const char*(const char*)> getenv) {
  getenv = OrGetenv(std::move(getenv));
  if (config.node_token_key) {
    absl::StatusOr<std::string> key = ReadNodeKey(config, getenv);
    if (!key.ok()) return key.status();
    return [key = *std::move(key)](const std::string& node_id) {
      return NodeToken(key, node_id);
    };
  }
  for (AuthRole role : {AuthRole::kAgent, AuthRole::kOperator}) {
    if (role == AuthRole::kAgent && !config.allow_shared_agent_tokens) {
      continue;
    }
    for (const AuthTokenConfig& t : config.tokens) {
      if (t.role != role) continue;
      absl::StatusOr<std::string> secret = ReadSecret(t, getenv);
      if (!secret.ok()) return secret.status();
      return
          [secret = *std::move(secret)](const std::string&) { return secret; };
    }
  }
  return absl::NotFoundError(
      "no node token key and no token with the agent or operator role");
}

namespace {

const char* AccessRoleName(Access access) {
  switch (access) {
    case Access::kRead:
      return "viewer or operator";
    case Access::kNode:
    case Access::kAgentDownload:
      return "agent or operator";
    case Access::kOperate:
      return "operator";
    default:
      return "any";
  }
}

}  // namespace

std::optional<Access> MethodAccess(absl::string_view method) {
  static const auto* const kMethods =
      new std::map<std::string, Access, std::less<>>{
          {"RegisterNode", Access::kNode},
          {"SendHeartbeat", Access::kNode},
          {"ReportHealth", Access::kNode},
          {"GetNodeCommands", Access::kNode},
          {"AckCommand", Access::kNode},
          {"WatchCommands", Access::kNode},
          {"ListNodes", Access::kRead},
          {"GetNode", Access::kRead},
          {"ListInstances", Access::kRead},
          {"GetInstance", Access::kRead},
          {"ListEvents", Access::kRead},
          {"IssueCommand", Access::kOperate},
          {"ListPools", Access::kRead},
          {"GetPool", Access::kRead},
          {"ScalePool", Access::kOperate},
          {"ResetPoolBreaker", Access::kOperate},
          {"ListProviders", Access::kRead},
          {"GetCluster", Access::kRead},
          {"ListInstanceTypes", Access::kRead},
      };
  auto it = kMethods->find(method);
  if (it == kMethods->end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> BearerToken(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return std::nullopt;
  }
  absl::string_view token =
      absl::StripLeadingAsciiWhitespace(authorization.substr(kScheme.size()));
  if (!PrintableToken(token)) return std::nullopt;
  return std::string(token);
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const AuthConfig& config, bool require_client_certificate,
    std::function<const char*(const char*)> getenv, Clock* clock) {
  getenv = OrGetenv(std::move(getenv));
  std::unique_ptr<Authenticator> a(new Authenticator());
  a->protect_metrics_ = config.protect_metrics;
  a->protect_probes_ = config.protect_probes;
  a->require_client_certificate_ = require_client_certificate;
  a->allow_shared_agent_ = config.allow_shared_agent_tokens;
  a->clock_ = clock != nullptr ? clock : &RealClock::Default();
  std::map<std::array<unsigned char, 32>, std::string> seen;
  for (const AuthTokenConfig& t : config.tokens) {
    absl::StatusOr<std::string> secret = ReadSecret(t, getenv);
    if (!secret.ok()) return secret.status();
    Token token{t.name, t.role, Sha256(*secret)};
    // Two names for one secret would make the recorded actor a guess.
    auto [it, inserted] = seen.emplace(token.digest, t.name);
    if (!inserted) {
      return absl::FailedPreconditionError(
          absl::StrCat("auth tokens '", it->second, "' and '", t.name,
                       "' have the same value; give each its own"));
    }
    a->tokens_.push_back(std::move(token));
  }
  if (config.node_token_key) {
    absl::StatusOr<std::string> key = ReadNodeKey(config, getenv);
    if (!key.ok()) return key.status();
    // A key that is also a token would hand the power to mint every node's
    // token to whoever holds that token.
    if (auto it = seen.find(Sha256(*key)); it != seen.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("auth.node_token_key has the value of token '",
                       it->second, "'; give each its own"));
    }
    a->node_key_ = *std::move(key);
  }
  return a;
}

std::optional<Identity> Authenticator::NodeTokenIdentity(
    absl::string_view token) const {
  if (node_key_.empty() || !absl::StartsWith(token, kNodeTokenPrefix)) {
    return std::nullopt;
  }
  token.remove_prefix(kNodeTokenPrefix.size());
  // Node ids may hold dots; the MAC (base64url) never does.
  const size_t dot = token.rfind('.');
  if (dot == absl::string_view::npos) return std::nullopt;
  const absl::string_view node_id = token.substr(0, dot);
  const absl::string_view mac = token.substr(dot + 1);
  if (!ValidateId("node id", node_id).ok()) return std::nullopt;
  // The expected MAC's length is public; its content is compared in
  // constant time.
  const std::string want = NodeTokenMac(node_key_, node_id);
  if (mac.size() != want.size() ||
      CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) {
    return std::nullopt;
  }
  Identity id;
  id.actor = absl::StrCat("node:", node_id);
  id.roles = Bit(AuthRole::kAgent);
  id.node_ids = {std::string(node_id)};
  id.bound_by = "node token";
  return id;
}

std::optional<absl::StatusOr<Identity>> Authenticator::BootstrapIdentity(
    absl::string_view token) const {
  if (node_key_.empty() || !absl::StartsWith(token, kBootstrapTokenPrefix)) {
    return std::nullopt;
  }
  absl::string_view rest = token.substr(kBootstrapTokenPrefix.size());
  const size_t first = rest.find('.');
  const size_t last = rest.rfind('.');
  int64_t expiry = 0;
  if (first == absl::string_view::npos || last <= first ||
      !absl::SimpleAtoi(rest.substr(0, first), &expiry)) {
    return absl::UnauthenticatedError("invalid token");
  }
  const absl::string_view intent = rest.substr(first + 1, last - first - 1);
  const absl::string_view mac = rest.substr(last + 1);
  const std::string want = NodeTokenMac(
      node_key_,
      absl::StrCat("navarch-boot\n", rest.substr(0, first), "\n", intent));
  if (mac.size() != want.size() ||
      CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0 ||
      !ValidateId("intent", intent).ok()) {
    return absl::UnauthenticatedError("invalid token");
  }
  if (clock_->Now() >= absl::FromUnixSeconds(expiry)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "bootstrap token expired at ",
        absl::FormatTime(absl::RFC3339_sec, absl::FromUnixSeconds(expiry),
                         absl::UTCTimeZone()),
        "; the instance did not register in time"));
  }
  Identity id;
  id.actor = absl::StrCat("bootstrap:", intent);
  id.roles = Bit(AuthRole::kAgent);
  id.bound_by = "bootstrap token";
  id.bootstrap_intent = std::string(intent);
  return id;
}

absl::StatusOr<std::string> Authenticator::MintBootstrapToken(
    absl::string_view intent, absl::Time expiry) const {
  if (node_key_.empty()) {
    return absl::FailedPreconditionError(
        "bootstrap tokens need auth.node_token_key");
  }
  if (absl::Status s = ValidateId("intent", intent); !s.ok()) return s;
  return BootstrapToken(node_key_, intent, expiry);
}

std::string Authenticator::NodeTokenFor(absl::string_view node_id) const {
  if (node_key_.empty()) return "";
  return NodeToken(node_key_, node_id);
}

absl::StatusOr<Identity> Authenticator::Identify(
    const Credentials& credentials) const {
  if (!credentials.authorization.empty()) {
    std::optional<std::string> token = BearerToken(credentials.authorization);
    if (!token) {
      return absl::UnauthenticatedError(
          "malformed authorization header: expected \"Bearer <token>\"");
    }
    // Compare digests, so neither the length nor the content of a secret
    // shows in the timing, and look at every token, so neither does which
    // one matched.
    const std::array<unsigned char, 32> digest = Sha256(*token);
    const Token* match = nullptr;
    for (const Token& t : tokens_) {
      if (CRYPTO_memcmp(t.digest.data(), digest.data(), digest.size()) == 0) {
        match = &t;
      }
    }
    if (match == nullptr) {
      if (std::optional<Identity> node = NodeTokenIdentity(*token)) {
        return *std::move(node);
      }
      if (auto boot = BootstrapIdentity(*token)) return *std::move(boot);
      return absl::UnauthenticatedError("invalid token");
    }
    Identity id;
    id.actor = absl::StrCat(AuthRoleName(match->role), ":", match->name);
    id.roles = Bit(match->role);
    return id;
  }
  if (credentials.has_certificate && !credentials.certificate_names.empty()) {
    Identity id;
    id.actor = absl::StrCat("node:", credentials.certificate_names.front());
    id.roles = Bit(AuthRole::kAgent);
    id.node_ids = credentials.certificate_names;
    id.bound_by = "client certificate";
    return id;
  }
  return absl::UnauthenticatedError("missing bearer token");
}

absl::StatusOr<Identity> Authenticator::Authenticate(
    const Credentials& credentials, Access access) const {
  Identity open;
  open.actor = "operator";
  open.roles = kAllRoles;
  if (access == Access::kPublic) return open;
  // Probes and /metrics stay reachable without a certificate: health checkers
  // and scrapers rarely have one.
  if (require_client_certificate_ && !credentials.has_certificate &&
      access != Access::kAuthenticated) {
    return absl::UnauthenticatedError("a client certificate is required");
  }
  if (!enabled()) return open;
  return Identify(credentials);
}

absl::Status Authenticator::Authorize(const Identity& id, Access access,
                                      absl::string_view what,
                                      absl::string_view node_id) const {
  if (access == Access::kPublic || access == Access::kAuthenticated ||
      id.Has(AuthRole::kOperator)) {
    return absl::OkStatus();
  }
  bool allowed = false;
  switch (access) {
    case Access::kRead:
      allowed = id.Has(AuthRole::kViewer);
      break;
    case Access::kNode:
      allowed = id.Has(AuthRole::kAgent);
      if (allowed) return AuthorizeNode(id, what, node_id);
      break;
    case Access::kAgentDownload:
      allowed = id.Has(AuthRole::kAgent);
      break;
    default:
      break;
  }
  if (!allowed) {
    return absl::PermissionDeniedError(
        absl::StrCat(id.actor, " may not call ", what, " (needs ",
                     AccessRoleName(access), ")"));
  }
  return absl::OkStatus();
}

absl::Status Authenticator::AuthorizeNode(const Identity& id,
                                          absl::string_view what,
                                          absl::string_view node_id) const {
  if (!id.bootstrap_intent.empty()) {
    if (what != "RegisterNode") {
      return absl::PermissionDeniedError(absl::StrCat(
          "a bootstrap token may only call RegisterNode, not ", what,
          "; use the node token RegisterNode answered with"));
    }
    if (!bootstrap_check_) {
      return absl::PermissionDeniedError(
          "this control plane does not take bootstrap tokens");
    }
    return bootstrap_check_(id.bootstrap_intent, node_id);
  }
  if (!id.node_ids.empty()) {
    if (std::find(id.node_ids.begin(), id.node_ids.end(), node_id) !=
        id.node_ids.end()) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError(
        absl::StrCat("the ", id.bound_by, " of ",
                     absl::StrJoin(id.node_ids, ", "), " may not act for node ",
                     node_id.empty() ? "(none)" : node_id.substr(0, 253)));
  }
  if (!allow_shared_agent_) {
    return absl::PermissionDeniedError(absl::StrCat(
        id.actor, " may not call ", what,
        ": it is a shared agent token, which acts for every node, and "
        "auth.allow_shared_agent_tokens is false; give the agent its node "
        "token"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Identity> Authenticator::Check(const Credentials& credentials,
                                              Access access,
                                              absl::string_view what,
                                              absl::string_view node_id) const {
  absl::StatusOr<Identity> id = Authenticate(credentials, access);
  if (!id.ok()) return id.status();
  if (absl::Status s = Authorize(*id, access, what, node_id); !s.ok()) return s;
  return id;
}

}  // namespace navarch
