// A client built from upstream's proto alone (tests/upstream/), exactly as an
// upstream user's tools would be, against our control-plane binary.
#include <signal.h>

#include <memory>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "testing/process.h"
#include "upstream/control_plane.grpc.pb.h"

namespace {

using navarch::testing::Process;
using navarch::testing::TempDir;

class UpstreamClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string config = dir_.path() + "/navarch.yaml";
    navarch::testing::WriteFile(
        config, "server:\n  address: \"127.0.0.1:0\"\n  data_dir: " +
                    dir_.path() + "/data\n");
    ready_ = dir_.path() + "/ready.json";
    process_ = std::make_unique<Process>(
        navarch::testing::BinDir() + "/control-plane",
        std::vector<std::string>{"-config", config, "--ready-file", ready_},
        dir_.path() + "/cp.log");
    std::string ready = navarch::testing::WaitForFile(ready_, *process_,
                                                      std::chrono::seconds(30));
    ASSERT_FALSE(ready.empty())
        << navarch::testing::ReadFile(dir_.path() + "/cp.log");
    stub_ = navarch::ControlPlaneService::NewStub(
        grpc::CreateChannel(navarch::testing::JsonString(ready, "grpc_address"),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    process_->Signal(SIGTERM);
    EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
  }

  TempDir dir_;
  std::string ready_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<navarch::ControlPlaneService::Stub> stub_;
};

TEST_F(UpstreamClientTest, RegistersHeartbeatsReportsAndCommands) {
  {
    grpc::ClientContext ctx;
    navarch::RegisterNodeRequest req;
    req.set_node_id("gpu-node-1");
    req.set_provider("gcp");
    req.set_region("us-central1");
    req.set_instance_type("a3-highgpu-8g");
    for (int i = 0; i < 8; ++i) {
      auto* g = req.add_gpus();
      g->set_index(i);
      g->set_uuid("GPU-" + std::to_string(i));
      g->set_memory_total(85899345920);
    }
    (*req.mutable_metadata()->mutable_labels())["team"] = "ml";
    navarch::RegisterNodeResponse resp;
    ASSERT_TRUE(stub_->RegisterNode(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.success());
    EXPECT_EQ(resp.message(), "registration successful");
    EXPECT_EQ(resp.config().heartbeat_interval_seconds(), 30);
    EXPECT_EQ(resp.config().health_check_interval_seconds(), 60);
  }
  {
    grpc::ClientContext ctx;
    navarch::HeartbeatRequest req;
    req.set_node_id("gpu-node-1");
    req.mutable_metrics()->set_cpu_usage_percent(40);
    auto* gm = req.mutable_metrics()->add_gpu_metrics();
    gm->set_gpu_index(0);
    gm->set_temperature(61);
    navarch::HeartbeatResponse resp;
    ASSERT_TRUE(stub_->SendHeartbeat(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.acknowledged());
  }
  {
    grpc::ClientContext ctx;
    navarch::ReportHealthRequest req;
    req.set_node_id("gpu-node-1");
    auto* r = req.add_results();
    r->set_check_name("xid");
    r->set_status(navarch::HEALTH_STATUS_HEALTHY);
    auto* e = req.add_events();
    e->set_event_type(navarch::HEALTH_EVENT_TYPE_XID);
    e->set_system(navarch::HEALTH_WATCH_SYSTEM_DRIVER);
    e->set_gpu_index(2);
    (*e->mutable_metrics())["xid_code"] = "79";
    e->set_message("GPU has fallen off the bus");
    navarch::ReportHealthResponse resp;
    ASSERT_TRUE(stub_->ReportHealth(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.acknowledged());
    EXPECT_EQ(resp.node_status(), navarch::NODE_STATUS_UNHEALTHY);
  }
  std::string command_id;
  {
    grpc::ClientContext ctx;
    navarch::IssueCommandRequest req;
    req.set_node_id("gpu-node-1");
    req.set_command_type(navarch::NODE_COMMAND_TYPE_TERMINATE);
    navarch::IssueCommandResponse resp;
    ASSERT_TRUE(stub_->IssueCommand(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.command_id().size(), 36u);
    command_id = resp.command_id();
  }
  {
    grpc::ClientContext ctx;
    navarch::GetNodeCommandsRequest req;
    req.set_node_id("gpu-node-1");
    navarch::GetNodeCommandsResponse resp;
    ASSERT_TRUE(stub_->GetNodeCommands(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.commands_size(), 1);
    EXPECT_EQ(resp.commands(0).command_id(), command_id);
    EXPECT_EQ(resp.commands(0).type(), navarch::NODE_COMMAND_TYPE_TERMINATE);
  }
  {
    grpc::ClientContext ctx;
    navarch::ListNodesRequest req;
    req.set_status(navarch::NODE_STATUS_UNHEALTHY);
    navarch::ListNodesResponse resp;
    ASSERT_TRUE(stub_->ListNodes(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.nodes_size(), 1);
    const auto& n = resp.nodes(0);
    EXPECT_EQ(n.node_id(), "gpu-node-1");
    EXPECT_EQ(n.health_status(), navarch::HEALTH_STATUS_UNHEALTHY);
    EXPECT_EQ(n.gpus_size(), 8);
    EXPECT_EQ(n.metadata().labels().at("team"), "ml");
    EXPECT_GT(n.last_heartbeat().seconds(), 0);
  }
  {
    grpc::ClientContext ctx;
    navarch::GetNodeRequest req;
    req.set_node_id("nope");
    navarch::GetNodeResponse resp;
    EXPECT_EQ(stub_->GetNode(&ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    navarch::ListInstancesRequest req;
    navarch::ListInstancesResponse resp;
    ASSERT_TRUE(stub_->ListInstances(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.instances_size(), 0);
  }
  {
    grpc::ClientContext ctx;
    navarch::GetInstanceRequest req;
    navarch::GetInstanceResponse resp;
    EXPECT_EQ(stub_->GetInstance(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(UpstreamClientTest, UpstreamErrorCodes) {
  grpc::ClientContext ctx;
  navarch::RegisterNodeRequest req;
  navarch::RegisterNodeResponse resp;
  auto s = stub_->RegisterNode(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "node_id is required");
  grpc::ClientContext ctx2;
  navarch::IssueCommandRequest issue;
  issue.set_node_id("ghost");
  issue.set_command_type(navarch::NODE_COMMAND_TYPE_CORDON);
  navarch::IssueCommandResponse issued;
  EXPECT_EQ(stub_->IssueCommand(&ctx2, issue, &issued).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
