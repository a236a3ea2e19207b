#include "navarch/controlplane/auth.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"

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

}  // namespace

absl::StatusOr<std::string> AgentTokenSecret(
    const AuthConfig& config, std::function<const char*(const char*)> getenv) {
  if (!getenv) getenv = [](const char* n) { return ::getenv(n); };
  for (AuthRole role : {AuthRole::kAgent, AuthRole::kOperator}) {
    for (const AuthTokenConfig& t : config.tokens) {
      if (t.role == role) return ReadSecret(t, getenv);
    }
  }
  return absl::NotFoundError("no token with the agent or operator role");
}

namespace {

const char* AccessRoleName(Access access) {
  switch (access) {
    case Access::kRead:
      return "viewer or operator";
    case Access::kNode:
      return "agent or operator";
    case Access::kOperate:
      return "operator";
    default:
      return "any";
  }
}

}  // namespace

std::optional<Access> MethodAccess(absl::string_view method) {
  static const auto* const kMethods = new std::map<std::string, Access,
                                                   std::less<>>{
      {"RegisterNode", Access::kNode},  {"SendHeartbeat", Access::kNode},
      {"ReportHealth", Access::kNode},  {"GetNodeCommands", Access::kNode},
      {"AckCommand", Access::kNode},    {"WatchCommands", Access::kNode},
      {"ListNodes", Access::kRead},     {"GetNode", Access::kRead},
      {"ListInstances", Access::kRead}, {"GetInstance", Access::kRead},
      {"ListEvents", Access::kRead},    {"IssueCommand", Access::kOperate},
      {"ListPools", Access::kRead},     {"GetPool", Access::kRead},
      {"ScalePool", Access::kOperate},  {"ResetPoolBreaker", Access::kOperate},
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
    std::function<const char*(const char*)> getenv) {
  if (getenv == nullptr) getenv = [](const char* n) { return std::getenv(n); };
  std::unique_ptr<Authenticator> a(new Authenticator());
  a->protect_metrics_ = config.protect_metrics;
  a->protect_probes_ = config.protect_probes;
  a->require_client_certificate_ = require_client_certificate;
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
  return a;
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
    if (match == nullptr) return absl::UnauthenticatedError("invalid token");
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
      if (allowed && !id.node_ids.empty() &&
          std::find(id.node_ids.begin(), id.node_ids.end(), node_id) ==
              id.node_ids.end()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "the client certificate of ", absl::StrJoin(id.node_ids, ", "),
            " may not act for node ",
            node_id.empty() ? "(none)" : node_id.substr(0, 253)));
      }
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
