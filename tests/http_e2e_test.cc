// The control-plane binary's HTTP side and its upstream-style token, as an
// operator runs it: --auth-token and NAVARCH_AUTH_TOKEN (the flag wins), the
// ready file's http_address, the start-up warning when nothing is protected,
// and readiness through a shutdown.
#include <signal.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/control_plane.grpc.pb.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Process;
using testing::TempDir;

class HttpE2eTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("NAVARCH_AUTH_TOKEN");
    if (process_ != nullptr) {
      process_->Signal(SIGTERM);
      EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
    }
  }

  void Start(std::vector<std::string> extra_args = {}) {
    const std::string config = dir_.path() + "/navarch.yaml";
    testing::WriteFile(config,
                       "server:\n  address: \"127.0.0.1:0\"\n"
                       "  data_dir: " +
                           dir_.path() + "/data\n");
    const std::string ready = dir_.path() + "/ready.json";
    std::vector<std::string> args = {"--config", config, "--ready-file", ready};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<Process>(testing::BinDir() + "/control-plane",
                                         args, Log());
    const std::string content =
        testing::WaitForFile(ready, *process_, std::chrono::seconds(30));
    ASSERT_FALSE(content.empty()) << testing::ReadFile(Log());
    grpc_address_ = testing::JsonString(content, "grpc_address");
    const std::string http = testing::JsonString(content, "http_address");
    ASSERT_FALSE(http.empty()) << content;
    http_ = std::make_unique<httplib::Client>("http://" + http);
  }

  int Status(const std::string& path, const std::string& token = "") {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    auto r = http_->Get(path, headers);
    return r ? r->status : -1;
  }

  grpc::StatusCode GrpcList(const std::string& token) {
    auto stub = ControlPlaneService::NewStub(
        grpc::CreateChannel(grpc_address_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ListNodesRequest req;
    ListNodesResponse resp;
    return stub->ListNodes(&ctx, req, &resp).error_code();
  }

  std::string Log() { return dir_.path() + "/cp.log"; }

  TempDir dir_;
  std::unique_ptr<Process> process_;
  std::string grpc_address_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(HttpE2eTest, WithoutAuthEverythingIsOpenAndTheLogSaysSo) {
  Start();
  EXPECT_EQ(Status("/healthz"), 200);
  EXPECT_EQ(Status("/readyz"), 200);
  EXPECT_EQ(Status("/api/v1/nodes"), 200);
  EXPECT_EQ(GrpcList(""), grpc::StatusCode::OK);
  const std::string log = testing::ReadFile(Log());
  EXPECT_NE(log.find("authentication disabled"), std::string::npos) << log;
  EXPECT_NE(log.find("NAVARCH_AUTH_TOKEN"), std::string::npos) << log;
}

TEST_F(HttpE2eTest, EnvironmentTokenAloneHasEveryRight) {
  setenv("NAVARCH_AUTH_TOKEN", "env-token-1", 1);
  Start();
  EXPECT_EQ(Status("/api/v1/nodes"), 401);
  EXPECT_EQ(Status("/api/v1/nodes", "env-token-1"), 200);
  EXPECT_EQ(GrpcList(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GrpcList("env-token-1"), grpc::StatusCode::OK);
  // Probes and metrics stay open.
  EXPECT_EQ(Status("/healthz"), 200);
  EXPECT_EQ(Status("/metrics"), 200);
  const std::string log = testing::ReadFile(Log());
  EXPECT_NE(log.find("authentication enabled"), std::string::npos) << log;
  EXPECT_EQ(log.find("env-token-1"), std::string::npos) << "token logged";
}

TEST_F(HttpE2eTest, TheFlagWinsOverTheEnvironmentAndLeavesNoTrace) {
  setenv("NAVARCH_AUTH_TOKEN", "env-token-2", 1);
  Start({"--auth-token", "flag-token-2"});
  EXPECT_EQ(Status("/api/v1/nodes", "flag-token-2"), 200);
  EXPECT_EQ(Status("/api/v1/nodes", "env-token-2"), 401);
  // Blanked in the process's command line, where `ps` would show it.
  const std::string cmdline = testing::ReadFile(
      "/proc/" + std::to_string(process_->pid()) + "/cmdline");
  EXPECT_EQ(cmdline.find("flag-token-2"), std::string::npos);
  EXPECT_EQ(testing::ReadFile(Log()).find("flag-token-2"), std::string::npos);
}

TEST_F(HttpE2eTest, SigtermStopsBothListeners) {
  Start();
  ASSERT_EQ(Status("/readyz"), 200);
  process_->Signal(SIGTERM);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
  process_.reset();
  EXPECT_EQ(Status("/healthz"), -1);
}

}  // namespace
}  // namespace navarch
