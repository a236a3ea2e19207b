#include "navarch/controlplane/auth.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/control_plane.pb.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

AuthTokenConfig Token(std::string name, std::string value, AuthRole role) {
  AuthTokenConfig t;
  t.name = std::move(name);
  t.value = std::move(value);
  t.role = role;
  return t;
}

Credentials Bearer(const std::string& token) {
  Credentials c;
  c.authorization = "Bearer " + token;
  return c;
}

Credentials Certificate(std::vector<std::string> names) {
  Credentials c;
  c.has_certificate = true;
  c.certificate_names = std::move(names);
  return c;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuthConfig config;
    config.tokens = {Token("ops", "op-secret-1", AuthRole::kOperator),
                     Token("grafana", "view-secret-2", AuthRole::kViewer),
                     Token("agents", "agent-secret-3", AuthRole::kAgent)};
    auto a =
        Authenticator::Create(config, /*require_client_certificate=*/false);
    ASSERT_TRUE(a.ok()) << a.status();
    auth_ = std::move(*a);
  }

  absl::StatusCode Code(const Credentials& c, const std::string& method,
                        const std::string& node_id = "") {
    return auth_->Check(c, *MethodAccess(method), method, node_id)
        .status()
        .code();
  }

  std::unique_ptr<Authenticator> auth_;
};

TEST(MethodAccessTest, EveryRpcOfTheServiceHasARule) {
  const auto* service =
      RegisterNodeRequest::descriptor()->file()->FindServiceByName(
          "ControlPlaneService");
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(MethodAccess(service->method(i)->name()).has_value())
        << service->method(i)->name();
  }
  EXPECT_FALSE(MethodAccess("DeleteEverything").has_value());
}

TEST(BearerTokenTest, ParsesTheSchemeCaseInsensitively) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer  abc "), "abc");
  EXPECT_EQ(BearerToken("BEARER abc"), "abc");
  EXPECT_FALSE(BearerToken("Basic abc").has_value());
  EXPECT_FALSE(BearerToken("Bearer").has_value());
  EXPECT_FALSE(BearerToken("Bearer ").has_value());
  EXPECT_FALSE(BearerToken("abc").has_value());
  EXPECT_FALSE(BearerToken("Bearer a b").has_value());
}

TEST_F(AuthTest, ViewerReadsOnly) {
  const Credentials c = Bearer("view-secret-2");
  for (const char* m :
       {"ListNodes", "GetNode", "ListInstances", "GetInstance", "ListEvents",
        "ListPools", "GetPool", "ListProviders", "ListInstanceTypes"}) {
    EXPECT_EQ(Code(c, m), absl::StatusCode::kOk) << m;
  }
  for (const char* m :
       {"IssueCommand", "RegisterNode", "SendHeartbeat", "ReportHealth",
        "GetNodeCommands", "AckCommand", "WatchCommands"}) {
    EXPECT_EQ(Code(c, m, "n1"), absl::StatusCode::kPermissionDenied) << m;
  }
  auto denied = auth_->Check(c, Access::kOperate, "IssueCommand", "");
  EXPECT_EQ(denied.status().message(),
            "viewer:grafana may not call IssueCommand (needs operator)");
}

TEST_F(AuthTest, AgentCallsTheNodeRpcsOfAnyNode) {
  const Credentials c = Bearer("agent-secret-3");
  for (const char* m : {"RegisterNode", "SendHeartbeat", "ReportHealth",
                        "GetNodeCommands", "AckCommand", "WatchCommands"}) {
    EXPECT_EQ(Code(c, m, "n1"), absl::StatusCode::kOk) << m;
    EXPECT_EQ(Code(c, m, "n2"), absl::StatusCode::kOk) << m;
  }
  for (const char* m : {"ListNodes", "GetNode", "IssueCommand", "ListEvents",
                        "ListProviders", "ListInstanceTypes"}) {
    EXPECT_EQ(Code(c, m), absl::StatusCode::kPermissionDenied) << m;
  }
}

TEST_F(AuthTest, OperatorDoesEverythingAndIsNamedInTheActor) {
  const Credentials c = Bearer("op-secret-1");
  const auto* service =
      RegisterNodeRequest::descriptor()->file()->FindServiceByName(
          "ControlPlaneService");
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_EQ(Code(c, service->method(i)->name(), "n1"), absl::StatusCode::kOk);
  }
  auto id = auth_->Check(c, Access::kOperate, "IssueCommand", "");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->actor, "operator:ops");
}

TEST_F(AuthTest, MissingMalformedAndWrongTokensAreUnauthenticated) {
  EXPECT_EQ(Code(Credentials{}, "ListNodes"),
            absl::StatusCode::kUnauthenticated);
  Credentials basic;
  basic.authorization = "Basic b3BzOnNlY3JldA==";
  EXPECT_EQ(Code(basic, "ListNodes"), absl::StatusCode::kUnauthenticated);
  auto wrong =
      auth_->Check(Bearer("op-secret-X"), Access::kRead, "ListNodes", "");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.status().message(), "invalid token");
  // A prefix or an extension of a real token is no token.
  EXPECT_EQ(Code(Bearer("op-secret-"), "ListNodes"),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Code(Bearer("op-secret-11"), "ListNodes"),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, MessagesNeverContainThePresentedToken) {
  for (const std::string& t :
       {std::string("op-secret-X"), std::string("view-secret-2")}) {
    auto r = auth_->Check(Bearer(t), Access::kOperate, "IssueCommand", "");
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(t)));
  }
}

TEST_F(AuthTest, ACertificateActsAsTheAgentOfItsOwnNodeOnly) {
  const Credentials c = Certificate({"gpu-7", "gpu-7.example.com"});
  EXPECT_EQ(Code(c, "RegisterNode", "gpu-7"), absl::StatusCode::kOk);
  EXPECT_EQ(Code(c, "WatchCommands", "gpu-7.example.com"),
            absl::StatusCode::kOk);
  auto other = auth_->Check(c, Access::kNode, "SendHeartbeat", "gpu-8");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("gpu-8"));
  EXPECT_EQ(Code(c, "ListNodes"), absl::StatusCode::kPermissionDenied);
  auto id = auth_->Check(c, Access::kNode, "RegisterNode", "gpu-7");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->actor, "node:gpu-7");
}

TEST_F(AuthTest, ATokenWinsOverACertificate) {
  Credentials c = Certificate({"gpu-7"});
  c.authorization = "Bearer op-secret-1";
  EXPECT_EQ(Code(c, "RegisterNode", "gpu-8"), absl::StatusCode::kOk);
  c.authorization = "Bearer nope";
  EXPECT_EQ(Code(c, "RegisterNode", "gpu-7"),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, ProbesAndMetricsNeedOnlyAnIdentity) {
  EXPECT_TRUE(auth_->Check({}, Access::kPublic, "healthz", "").ok());
  EXPECT_FALSE(auth_->Check({}, Access::kAuthenticated, "metrics", "").ok());
  EXPECT_TRUE(
      auth_->Check(Bearer("agent-secret-3"), Access::kAuthenticated, "m", "")
          .ok());
}

TEST(AuthDisabledTest, EveryoneIsAnOperator) {
  auto a = Authenticator::Create(AuthConfig{}, false);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->enabled());
  auto id = (*a)->Check({}, Access::kOperate, "IssueCommand", "");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->actor, "operator");
  // Even a bogus header: there is nothing to check it against.
  EXPECT_TRUE((*a)->Check(Bearer("x"), Access::kOperate, "x", "").ok());
}

TEST(AuthMutualTlsTest, ApiCallsNeedACertificateProbesDoNot) {
  auto a =
      Authenticator::Create(AuthConfig{}, /*require_client_certificate=*/true);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->Check({}, Access::kRead, "ListNodes", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(
      (*a)->Check(Certificate({"ops"}), Access::kOperate, "x", "").ok());
  EXPECT_TRUE((*a)->Check({}, Access::kPublic, "healthz", "").ok());
  EXPECT_TRUE((*a)->Check({}, Access::kAuthenticated, "metrics", "").ok());
}

// --------------------------------------------------------------- secrets

TEST(AuthSecretsTest, FromEnvironmentAndFileWithWhitespaceTrimmed) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "navarch_auth_test.token")
          .string();
  {
    std::ofstream out(path);
    out << "file-secret\n";
  }
  AuthConfig config;
  AuthTokenConfig env;
  env.name = "env";
  env.token_env = "NAVARCH_TEST_TOKEN";
  env.role = AuthRole::kViewer;
  AuthTokenConfig file;
  file.name = "file";
  file.token_file = path;
  file.role = AuthRole::kOperator;
  config.tokens = {env, file};
  std::map<std::string, std::string> vars = {
      {"NAVARCH_TEST_TOKEN", "env-secret"}};
  auto getenv = [&vars](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  auto a = Authenticator::Create(config, false, getenv);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->Check(Bearer("env-secret"), Access::kRead, "x", "")->actor,
            "viewer:env");
  EXPECT_EQ((*a)->Check(Bearer("file-secret"), Access::kRead, "x", "")->actor,
            "operator:file");

  vars.clear();
  auto missing = Authenticator::Create(config, false, getenv);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(missing.status().message(),
            "auth token 'env': environment variable NAVARCH_TEST_TOKEN is not "
            "set or empty");

  vars["NAVARCH_TEST_TOKEN"] = "file-secret";
  auto same = Authenticator::Create(config, false, getenv);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(same.status().message()),
              HasSubstr("have the same value"));
  EXPECT_THAT(std::string(same.status().message()),
              Not(HasSubstr("file-secret")));

  std::remove(path.c_str());
  vars["NAVARCH_TEST_TOKEN"] = "env-secret";
  auto gone = Authenticator::Create(config, false, getenv);
  EXPECT_EQ(gone.status().message(),
            "auth token 'file': cannot read token_file " + path);
}

TEST(AuthSecretsTest, TokensMustBeVisibleAscii) {
  AuthConfig config;
  config.tokens = {Token("t", "two words", AuthRole::kViewer)};
  EXPECT_EQ(Authenticator::Create(config, false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  config.tokens = {Token("t", "  \n", AuthRole::kViewer)};
  EXPECT_EQ(Authenticator::Create(config, false).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// ----------------------------------------------------------- node tokens

constexpr char kNodeKey[] = "0123456789abcdef0123456789abcdef";

class NodeTokenTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(); }
  void Build() {
    config_.tokens = {Token("ops", "op-secret-1", AuthRole::kOperator),
                      Token("agents", "agent-secret-3", AuthRole::kAgent)};
    AuthTokenConfig key;
    key.name = "node_token_key";
    key.value = kNodeKey;
    config_.node_token_key = key;
    auto a = Authenticator::Create(config_, false);
    ASSERT_TRUE(a.ok()) << a.status();
    auth_ = std::move(*a);
  }
  absl::Status Call(const std::string& token, const std::string& method,
                    const std::string& node_id) {
    return auth_->Check(Bearer(token), *MethodAccess(method), method, node_id)
        .status();
  }

  AuthConfig config_;
  std::unique_ptr<Authenticator> auth_;
};

// HMAC-SHA256 computed by Python's hmac module, not by our code.
TEST(NodeTokenFormTest, MatchesAnIndependentHmac) {
  EXPECT_EQ(NodeToken(std::string(32, 'k'), "gpu-1"),
            "navarch-node.gpu-1.xGmJz0Tv8OFlxPRpxf7tuL5OsySxa8jy0dfQED5Nask");
  EXPECT_EQ(NodeToken(std::string(32, 'k'), "gpu-1.example.com"),
            "navarch-node.gpu-1.example.com."
            "Ez6UljUsSy8tQ_VzyGjpsJQlZC-sV_vdvbbr8oQhydM");
}

// The recipe docs/security.md gives operators makes the same token.
TEST(NodeTokenFormTest, TheDocumentedOpensslRecipeAgrees) {
  if (std::system("command -v openssl >/dev/null && command -v basenc "
                  ">/dev/null") != 0) {
    GTEST_SKIP() << "no openssl or basenc";
  }
  // docs/security.md, word for word.
  constexpr char kRecipe[] =
      R"sh(echo "navarch-node.$NODE_ID.$(printf %s "$NODE_ID" | openssl dgst -sha256 -hmac "$KEY" -binary | basenc --base64url | tr -d =)")sh";
  const std::string cmd =
      absl::StrCat("NODE_ID=gpu-9; KEY=", kNodeKey, "; ", kRecipe);
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(std::string(absl::StripTrailingAsciiWhitespace(out)),
            NodeToken(kNodeKey, "gpu-9"));
}

TEST_F(NodeTokenTest, ActsAsTheAgentOfItsOwnNodeOnly) {
  const std::string token = NodeToken(kNodeKey, "gpu-7");
  for (const char* m : {"RegisterNode", "SendHeartbeat", "ReportHealth",
                        "GetNodeCommands", "AckCommand", "WatchCommands"}) {
    EXPECT_TRUE(Call(token, m, "gpu-7").ok()) << m;
    absl::Status other = Call(token, m, "gpu-8");
    EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied) << m;
    EXPECT_EQ(other.message(),
              "the node token of gpu-7 may not act for node gpu-8");
  }
  for (const char* m : {"ListNodes", "IssueCommand", "ScalePool"}) {
    EXPECT_EQ(Call(token, m, "gpu-7").code(),
              absl::StatusCode::kPermissionDenied)
        << m;
  }
  auto id = auth_->Check(Bearer(token), Access::kNode, "ReportHealth", "gpu-7");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->actor, "node:gpu-7");
  // Node ids with dots (a host name) work: the MAC is after the last dot.
  EXPECT_TRUE(Call(NodeToken(kNodeKey, "gpu-7.example.com"), "SendHeartbeat",
                   "gpu-7.example.com")
                  .ok());
}

TEST_F(NodeTokenTest, ForgedAndOtherKeysTokensAreUnauthenticated) {
  const std::string good = NodeToken(kNodeKey, "gpu-7");
  const std::string mac = good.substr(good.rfind('.') + 1);
  std::string flipped = good;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  for (const std::string& forged : {
           NodeToken("another-key-another-key-another-k", "gpu-7"),
           // A real MAC under another node's name.
           absl::StrCat("navarch-node.gpu-8.", mac),
           flipped,
           good.substr(0, good.size() - 1),
           good + "A",
           absl::StrCat("navarch-node.gpu-7"),
           absl::StrCat("navarch-node..", mac),
           absl::StrCat("navarch-node.gpu/7.", mac),
           absl::StrCat("navarch-node.gpu-7.", mac, ".", mac),
       }) {
    absl::Status s = Call(forged, "SendHeartbeat", "gpu-7");
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << forged;
    EXPECT_EQ(s.message(), "invalid token");
  }
}

TEST_F(NodeTokenTest, WithoutAKeyNodeTokensAreUnknownTokens) {
  config_.node_token_key.reset();
  auto a = Authenticator::Create(config_, false);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->node_tokens());
  EXPECT_EQ((*a)->Check(Bearer(NodeToken(kNodeKey, "gpu-7")), Access::kNode,
                        "SendHeartbeat", "gpu-7")
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(NodeTokenTest, MessagesNeverContainTheToken) {
  const std::string token = NodeToken(kNodeKey, "gpu-7");
  const std::string mac = token.substr(token.rfind('.') + 1);
  for (const std::string& t :
       {token, absl::StrCat("navarch-node.gpu-8.", mac)}) {
    for (const char* node : {"gpu-7", "gpu-8"}) {
      for (const char* m : {"SendHeartbeat", "ListNodes"}) {
        absl::Status s = Call(t, m, node);
        EXPECT_THAT(std::string(s.message()), Not(HasSubstr(mac)));
      }
    }
  }
}

TEST_F(NodeTokenTest, SharedAgentTokensCanBeRefusedOnNodeRpcs) {
  EXPECT_TRUE(auth_->allow_shared_agent_tokens());
  EXPECT_TRUE(Call("agent-secret-3", "ReportHealth", "gpu-8").ok());
  config_.allow_shared_agent_tokens = false;
  Build();
  for (const char* m : {"RegisterNode", "SendHeartbeat", "ReportHealth",
                        "GetNodeCommands", "AckCommand", "WatchCommands"}) {
    absl::Status s = Call("agent-secret-3", m, "gpu-8");
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << m;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("auth.allow_shared_agent_tokens is false"));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("agent-secret-3")));
  }
  // Node tokens and certificates, bound to a node, and operators still act.
  EXPECT_TRUE(Call(NodeToken(kNodeKey, "gpu-8"), "ReportHealth", "gpu-8").ok());
  EXPECT_TRUE(auth_
                  ->Check(Certificate({"gpu-8"}), Access::kNode, "ReportHealth",
                          "gpu-8")
                  .ok());
  EXPECT_TRUE(Call("op-secret-1", "ReportHealth", "gpu-8").ok());
}

TEST_F(NodeTokenTest, TheKeyIsCheckedAtStartUp) {
  config_.node_token_key->value = "tiny-key";
  auto short_key = Authenticator::Create(config_, false);
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(short_key.status().message()),
              HasSubstr("shorter than 32 characters"));
  EXPECT_THAT(std::string(short_key.status().message()),
              Not(HasSubstr("tiny-key")));

  // Holders of the agent token could mint every node's token.
  const std::string same = "agent-secret-3-agent-secret-3-agent";
  config_.tokens[1].value = same;
  config_.node_token_key->value = same;
  auto reused = Authenticator::Create(config_, false);
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(reused.status().message(),
            "auth.node_token_key has the value of token 'agents'; give each "
            "its own");

  config_.node_token_key->value.clear();
  config_.node_token_key->token_env = "NAVARCH_TEST_NODE_KEY";
  auto unset = Authenticator::Create(
      config_, false, [](const char*) -> const char* { return nullptr; });
  EXPECT_EQ(unset.status().message(),
            "auth token 'node_token_key': environment variable "
            "NAVARCH_TEST_NODE_KEY is not set or empty");
}

// Only a key turns authentication on: its agents need no other token.
TEST(NodeTokenOnlyTest, AKeyAloneEnablesAuthentication) {
  AuthConfig config;
  AuthTokenConfig key;
  key.name = "node_token_key";
  key.value = kNodeKey;
  config.node_token_key = key;
  auto a = Authenticator::Create(config, false);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE((*a)->enabled());
  EXPECT_EQ(
      (*a)->Check({}, Access::kNode, "SendHeartbeat", "gpu-1").status().code(),
      absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE((*a)->Check(Bearer(NodeToken(kNodeKey, "gpu-1")), Access::kNode,
                          "SendHeartbeat", "gpu-1")
                  .ok());
}

TEST(MintNodeTokenTest, ReadsTheKeyAndChecksTheNodeId) {
  AuthConfig config;
  EXPECT_EQ(MintNodeToken(config, "gpu-1").status().message(),
            "auth.node_token_key is not set");
  AuthTokenConfig key;
  key.name = "node_token_key";
  key.token_env = "NODE_KEY";
  config.node_token_key = key;
  auto getenv = [](const char* n) -> const char* {
    return std::string(n) == "NODE_KEY" ? kNodeKey : nullptr;
  };
  EXPECT_EQ(*MintNodeToken(config, "gpu-1", getenv),
            NodeToken(kNodeKey, "gpu-1"));
  EXPECT_EQ(MintNodeToken(config, "gpu 1", getenv).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MintNodeToken(config, "", getenv).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AgentTokenSourceTest, NodeTokensWhenThereIsAKeyElseTheSharedToken) {
  AuthConfig config;
  EXPECT_EQ(AgentTokenSource(config).status().code(),
            absl::StatusCode::kNotFound);
  config.tokens = {Token("ops", "op-secret-1", AuthRole::kOperator),
                   Token("agents", "agent-secret-3", AuthRole::kAgent)};
  auto shared = AgentTokenSource(config);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ((*shared)("local-1"), "agent-secret-3");
  EXPECT_EQ((*shared)("local-2"), "agent-secret-3");
  // Refused agent tokens are not handed out; an operator token still works.
  config.allow_shared_agent_tokens = false;
  EXPECT_EQ((*AgentTokenSource(config))("local-1"), "op-secret-1");
  AuthTokenConfig key;
  key.name = "node_token_key";
  key.value = kNodeKey;
  config.node_token_key = key;
  auto per_node = AgentTokenSource(config);
  ASSERT_TRUE(per_node.ok());
  EXPECT_EQ((*per_node)("local-1"), NodeToken(kNodeKey, "local-1"));
  EXPECT_EQ((*per_node)("local-2"), NodeToken(kNodeKey, "local-2"));
}

// HMAC-SHA256 computed by Python's hmac module, not by our code.
TEST(BootstrapTokenFormTest, MatchesAnIndependentHmac) {
  EXPECT_EQ(BootstrapToken(std::string(32, 'k'), "prod-train-ab12-7",
                           absl::FromUnixSeconds(1800000000)),
            "navarch-boot.1800000000.prod-train-ab12-7."
            "3X1BIz-87trbbmCl5eRokX7H1Xepp2tyNG7mPcVw-ck");
}

class BootstrapTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuthConfig config;
    config.tokens = {Token("ops", "op-secret-1", AuthRole::kOperator)};
    AuthTokenConfig key;
    key.name = "node_token_key";
    key.value = kNodeKey;
    config.node_token_key = key;
    auto a = Authenticator::Create(config, false, nullptr, &clock_);
    ASSERT_TRUE(a.ok()) << a.status();
    auth_ = std::move(*a);
    // The instance "i-1" was bought by intent "c-train-n-1".
    auth_->set_bootstrap_check(
        [this](absl::string_view intent, absl::string_view node_id) {
          checks_.push_back(absl::StrCat(intent, "/", node_id));
          if (intent == "c-train-n-1" && node_id == "i-1") {
            return absl::OkStatus();
          }
          return absl::PermissionDeniedError("not that instance");
        });
  }
  std::string Mint(const std::string& intent = "c-train-n-1") {
    auto t =
        auth_->MintBootstrapToken(intent, clock_.Now() + absl::Minutes(15));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : "";
  }
  absl::StatusOr<Identity> Call(const std::string& token,
                                const std::string& method,
                                const std::string& node_id) {
    return auth_->Check(Bearer(token), *MethodAccess(method), method, node_id);
  }

  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
  std::unique_ptr<Authenticator> auth_;
  std::vector<std::string> checks_;
};

TEST_F(BootstrapTokenTest, RegistersOnlyTheInstanceItsIntentBought) {
  const std::string token = Mint();
  absl::StatusOr<Identity> id = Call(token, "RegisterNode", "i-1");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->bootstrap_intent, "c-train-n-1");
  EXPECT_EQ(id->actor, "bootstrap:c-train-n-1");
  EXPECT_EQ(Call(token, "RegisterNode", "i-2").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(checks_,
              ::testing::ElementsAre("c-train-n-1/i-1", "c-train-n-1/i-2"));
  // Good for RegisterNode only: the agent goes on with its node token.
  absl::Status hb = Call(token, "SendHeartbeat", "i-1").status();
  EXPECT_EQ(hb.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(hb.message(), HasSubstr("only call RegisterNode"));
  for (const char* m : {"ListNodes", "IssueCommand", "ScalePool"}) {
    EXPECT_EQ(Call(token, m, "").status().code(),
              absl::StatusCode::kPermissionDenied)
        << m;
  }
  EXPECT_EQ(auth_->NodeTokenFor("i-1"), NodeToken(kNodeKey, "i-1"));
}

TEST_F(BootstrapTokenTest, ExpiredForgedAndAlteredTokensAreUnauthenticated) {
  const std::string token = Mint();
  // A later expiry or another intent with the old MAC.
  std::string later = token;
  later.replace(later.find("1700000900"), 10, "1900000900");
  std::string other = token;
  other.replace(other.find("c-train-n-1"), 11, "c-train-n-2");
  for (const std::string& bad :
       {later, other, token.substr(0, token.size() - 1) + "A",
        std::string("navarch-boot.x.c-train-n-1.abc"),
        std::string("navarch-boot."),
        BootstrapToken("another-key-another-key-another-k", "c-train-n-1",
                       clock_.Now() + absl::Hours(1))}) {
    EXPECT_EQ(Call(bad, "RegisterNode", "i-1").status().code(),
              absl::StatusCode::kUnauthenticated)
        << bad;
  }
  EXPECT_TRUE(checks_.empty());  // none got as far as the instance check
  clock_.Advance(absl::Minutes(15) - absl::Seconds(1));
  EXPECT_TRUE(Call(token, "RegisterNode", "i-1").ok());
  clock_.Advance(absl::Seconds(1));
  absl::Status expired = Call(token, "RegisterNode", "i-1").status();
  EXPECT_EQ(expired.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.message(), HasSubstr("expired"));
  EXPECT_THAT(expired.message(), Not(HasSubstr(token)));
}

TEST_F(BootstrapTokenTest, WithoutACheckOrAKeyThereAreNoBootstrapTokens) {
  const std::string token = Mint();
  auth_->set_bootstrap_check(nullptr);
  EXPECT_EQ(Call(token, "RegisterNode", "i-1").status().code(),
            absl::StatusCode::kPermissionDenied);
  AuthConfig config;
  config.tokens = {Token("ops", "op-secret-1", AuthRole::kOperator)};
  auto keyless = Authenticator::Create(config, false, nullptr, &clock_);
  ASSERT_TRUE(keyless.ok());
  EXPECT_EQ((*keyless)
                ->MintBootstrapToken("c-train-n-1", clock_.Now())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*keyless)
                ->Check(Bearer(token), Access::kNode, "RegisterNode", "i-1")
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      auth_->MintBootstrapToken("bad intent", clock_.Now()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace navarch
