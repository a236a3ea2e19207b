#include "navarch/controlplane/auth.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
       {"ListNodes", "GetNode", "ListInstances", "GetInstance", "ListEvents"}) {
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
  for (const char* m : {"ListNodes", "GetNode", "IssueCommand", "ListEvents"}) {
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

}  // namespace
}  // namespace navarch
