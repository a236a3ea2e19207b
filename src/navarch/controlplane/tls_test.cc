// TLS and mTLS end to end: certificates made in the test, a control plane
// with both listeners, gRPC and HTTPS clients.
#include "navarch/controlplane/tls.h"

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/controlplane/server.h"
#include "navarch/controlplane/test_util.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using testing::IssueCert;
using testing::MakeCa;
using testing::TestCert;
using testing::WriteTestFile;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/navarch_tls_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name, const std::string& content) {
    std::string p = path_ + "/" + name;
    WriteTestFile(p, content);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeCa("navarch test CA");
    server_cert_ = IssueCert(ca_, "control-plane", {"localhost"}, {"127.0.0.1"},
                             /*server=*/true);
    tls_.cert_file = dir_.File("server.crt", server_cert_.cert_pem);
    tls_.key_file = dir_.File("server.key", server_cert_.key_pem);
    ca_file_ = dir_.File("ca.crt", ca_.cert_pem);
  }

  void StartServer(TlsConfig tls, AuthConfig auth = {}) {
    Config config = DefaultConfig();
    config.server.address = "127.0.0.1:0";
    config.server.http_address = "127.0.0.1:0";
    config.storage.backend = StorageBackend::kMemory;
    config.server.tls = tls;
    config.auth = auth;
    ResolveConfig(&config);
    server_ =
        std::make_unique<ControlPlaneServer>(config, clock_, NullLogger());
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
    const std::string& http = server_->http_address();
    ASSERT_TRUE(
        absl::SimpleAtoi(http.substr(http.rfind(':') + 1), &http_port_));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(1));
  }

  std::unique_ptr<ControlPlaneService::Stub> Stub(const TestCert* client) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca_.cert_pem;
    if (client != nullptr) {
      o.pem_private_key = client->key_pem;
      o.pem_cert_chain = client->cert_pem;
    }
    return ControlPlaneService::NewStub(
        grpc::CreateChannel(server_->grpc_address(), grpc::SslCredentials(o)));
  }

  std::unique_ptr<httplib::SSLClient> Https(const TestCert* client) {
    std::unique_ptr<httplib::SSLClient> c;
    if (client != nullptr) {
      std::string cert = dir_.File("client.crt", client->cert_pem);
      std::string key = dir_.File("client.key", client->key_pem);
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", http_port_, cert,
                                               key);
    } else {
      c = std::make_unique<httplib::SSLClient>("127.0.0.1", http_port_);
    }
    c->set_ca_cert_path(ca_file_.c_str());
    c->enable_server_certificate_verification(true);
    return c;
  }

  static grpc::Status Register(ControlPlaneService::Stub& stub,
                               const std::string& id,
                               const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    RegisterNodeRequest req;
    req.set_node_id(id);
    RegisterNodeResponse resp;
    return stub.RegisterNode(&ctx, req, &resp);
  }

  static grpc::Status List(ControlPlaneService::Stub& stub,
                           const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    ListNodesRequest req;
    ListNodesResponse resp;
    return stub.ListNodes(&ctx, req, &resp);
  }

  TempDir dir_;
  TestCert ca_;
  TestCert server_cert_;
  TlsConfig tls_;
  std::string ca_file_;
  RealClock clock_;
  std::unique_ptr<ControlPlaneServer> server_;
  int http_port_ = 0;
};

TEST_F(TlsTest, LoadingNamesTheBadFile) {
  TlsConfig missing = tls_;
  missing.cert_file = dir_.path() + "/nope.crt";
  EXPECT_EQ(LoadTlsMaterial(missing).status().message(),
            "server.tls.cert_file: cannot read " + missing.cert_file);
  TlsConfig other_key = tls_;
  other_key.key_file =
      dir_.File("other.key", IssueCert(ca_, "x", {}, {}, true).key_pem);
  absl::Status s = LoadTlsMaterial(other_key).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("is not the key of"));
  TlsConfig not_pem = tls_;
  not_pem.client_ca_file = dir_.File("junk.crt", "hello");
  EXPECT_THAT(std::string(LoadTlsMaterial(not_pem).status().message()),
              HasSubstr("no PEM certificate"));
  ASSERT_TRUE(LoadTlsMaterial(tls_).ok());
  // The server refuses to start rather than serve in the clear.
  Config config = DefaultConfig();
  config.server.address = "127.0.0.1:0";
  config.server.http_address = "127.0.0.1:0";
  config.storage.backend = StorageBackend::kMemory;
  config.server.tls = missing;
  ControlPlaneServer server(config, clock_, NullLogger());
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TlsTest, BothListenersServeTls) {
  StartServer(tls_);
  auto stub = Stub(nullptr);
  ASSERT_TRUE(Register(*stub, "n1").ok());
  auto https = Https(nullptr);
  auto r = https->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // Plain HTTP to a TLS port gets nowhere.
  httplib::Client plain("127.0.0.1", http_port_);
  plain.set_read_timeout(2, 0);
  auto p = plain.Get("/healthz");
  EXPECT_TRUE(!p || p->status != 200);
  // A client that does not trust our CA refuses the server.
  httplib::SSLClient untrusting("127.0.0.1", http_port_);
  untrusting.set_ca_cert_path(
      dir_.File("other-ca.crt", MakeCa("someone else").cert_pem).c_str());
  untrusting.enable_server_certificate_verification(true);
  EXPECT_FALSE(untrusting.Get("/healthz"));
}

TEST_F(TlsTest, MutualTlsAgentsAuthenticateByCertificate) {
  TlsConfig mtls = tls_;
  mtls.client_ca_file = ca_file_;
  AuthConfig auth;
  AuthTokenConfig ops;
  ops.name = "ops";
  ops.value = "op-token";
  ops.role = AuthRole::kOperator;
  auth.tokens = {ops};
  StartServer(mtls, auth);

  const TestCert gpu1 = IssueCert(ca_, "gpu-1", {"gpu-1.example.com"}, {},
                                  /*server=*/false);
  auto agent = Stub(&gpu1);
  EXPECT_TRUE(Register(*agent, "gpu-1").ok());
  EXPECT_TRUE(Register(*agent, "gpu-1.example.com").ok());
  grpc::Status other = Register(*agent, "gpu-2");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(List(*agent).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(List(*agent, "op-token").ok());

  // No client certificate: the gRPC handshake fails.
  auto anonymous = Stub(nullptr);
  grpc::Status s = List(*anonymous, "op-token");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // A certificate from another CA: likewise.
  const TestCert stranger =
      IssueCert(MakeCa("other CA"), "gpu-1", {}, {}, /*server=*/false);
  EXPECT_FALSE(Register(*Stub(&stranger), "gpu-1").ok());

  // HTTP: probes without a certificate; the API needs one.
  auto no_cert = Https(nullptr);
  auto health = no_cert->Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  auto api =
      no_cert->Get("/api/v1/nodes", {{"Authorization", "Bearer op-token"}});
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 401);
  EXPECT_THAT(api->body, HasSubstr("a client certificate is required"));
  auto with_cert = Https(&gpu1);
  auto list =
      with_cert->Get("/api/v1/nodes", {{"Authorization", "Bearer op-token"}});
  ASSERT_TRUE(list) << httplib::to_string(list.error());
  EXPECT_EQ(list->status, 200);
  EXPECT_EQ(with_cert->Get("/api/v1/nodes")->status, 403);  // an agent
  auto heartbeat =
      with_cert->Post("/navarch.ControlPlaneService/SendHeartbeat",
                      R"({"nodeId": "gpu-1"})", "application/json");
  ASSERT_TRUE(heartbeat);
  EXPECT_EQ(heartbeat->status, 200) << heartbeat->body;
  EXPECT_EQ(with_cert
                ->Post("/navarch.ControlPlaneService/SendHeartbeat",
                       R"({"nodeId": "gpu-2"})", "application/json")
                ->status,
            403);
}

}  // namespace
}  // namespace navarch
