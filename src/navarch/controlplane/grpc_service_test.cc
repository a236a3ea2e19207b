// The gRPC transport end to end, in process: a real listener on port 0, a real
// channel, the memory store.
#include <memory>
#include <thread>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/config/config.h"
#include "navarch/controlplane/server.h"

namespace navarch {
namespace {

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = DefaultConfig();
    config_.server.address = "127.0.0.1:0";
    config_.storage.backend = StorageBackend::kMemory;
    ResolveConfig(&config_);
    server_ =
        std::make_unique<ControlPlaneServer>(config_, clock_, NullLogger());
    ASSERT_TRUE(server_->Start().ok());
    stub_ = ControlPlaneService::NewStub(grpc::CreateChannel(
        server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override { server_->Shutdown(absl::Seconds(1)); }

  grpc::Status Register(const std::string& id) {
    grpc::ClientContext ctx;
    RegisterNodeRequest req;
    req.set_node_id(id);
    req.add_gpus()->set_index(0);
    RegisterNodeResponse resp;
    return stub_->RegisterNode(&ctx, req, &resp);
  }

  RealClock clock_;
  Config config_;
  std::unique_ptr<ControlPlaneServer> server_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(GrpcServiceTest, RegistersHeartbeatsAndReadsBack) {
  ASSERT_TRUE(Register("n1").ok());
  grpc::ClientContext hctx;
  HeartbeatRequest hb;
  hb.set_node_id("n1");
  HeartbeatResponse hresp;
  ASSERT_TRUE(stub_->SendHeartbeat(&hctx, hb, &hresp).ok());
  EXPECT_TRUE(hresp.acknowledged());
  grpc::ClientContext gctx;
  GetNodeRequest g;
  g.set_node_id("n1");
  GetNodeResponse gresp;
  ASSERT_TRUE(stub_->GetNode(&gctx, g, &gresp).ok());
  EXPECT_EQ(gresp.node().status(), NODE_STATUS_ACTIVE);
  EXPECT_EQ(gresp.node().gpus_size(), 1);
}

TEST_F(GrpcServiceTest, MapsErrorsToCanonicalCodes) {
  EXPECT_EQ(Register("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Register("bad/id").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx;
  HeartbeatRequest hb;
  hb.set_node_id("ghost");
  HeartbeatResponse resp;
  auto s = stub_->SendHeartbeat(&ctx, hb, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "node ghost not found");
}

TEST_F(GrpcServiceTest, RejectsMessagesOverFourMiB) {
  grpc::ClientContext ctx;
  RegisterNodeRequest req;
  req.set_node_id("big");
  req.mutable_metadata()->set_hostname(std::string(5 << 20, 'x'));
  RegisterNodeResponse resp;
  auto s = stub_->RegisterNode(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(GrpcServiceTest, WatchCommandsStreamsCommandsAsTheyAreIssued) {
  ASSERT_TRUE(Register("n1").ok());
  grpc::ClientContext wctx;
  WatchCommandsRequest w;
  w.set_node_id("n1");
  auto reader = stub_->WatchCommands(&wctx, w);

  IssueCommandRequest issue;
  issue.set_node_id("n1");
  issue.set_command_type(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  IssueCommandResponse issued;
  // The stream may not be registered yet when we issue: either way the command
  // arrives (as backlog or live).
  {
    grpc::ClientContext ictx;
    ASSERT_TRUE(stub_->IssueCommand(&ictx, issue, &issued).ok());
  }
  NodeCommand got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.command_id(), issued.command_id());
  EXPECT_EQ(got.type(), NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);

  grpc::ClientContext actx;
  AckCommandRequest ack;
  ack.set_node_id("n1");
  ack.set_command_id(got.command_id());
  ack.set_outcome(COMMAND_OUTCOME_SUCCEEDED);
  AckCommandResponse ackr;
  ASSERT_TRUE(stub_->AckCommand(&actx, ack, &ackr).ok());

  grpc::ClientContext ectx;
  ListEventsRequest ev;
  ev.set_node_id("n1");
  ev.add_kinds("command.*");
  ListEventsResponse evr;
  ASSERT_TRUE(stub_->ListEvents(&ectx, ev, &evr).ok());
  ASSERT_GE(evr.events_size(), 2);
  EXPECT_EQ(evr.events(evr.events_size() - 1).kind(), "command.succeeded");
  wctx.TryCancel();
}

TEST_F(GrpcServiceTest, WatchOfAnUnknownNodeFailsWithNotFound) {
  grpc::ClientContext wctx;
  WatchCommandsRequest w;
  w.set_node_id("ghost");
  auto reader = stub_->WatchCommands(&wctx, w);
  NodeCommand c;
  EXPECT_FALSE(reader->Read(&c));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, ATakenPortIsAClearError) {
  Config second = config_;
  second.server.address = server_->grpc_address();
  ControlPlaneServer other(second, clock_, NullLogger());
  absl::Status s = other.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("already in use"), std::string::npos)
      << s.message();
}

TEST(GrpcListenAddressTest, GoStyleMeansEveryInterface) {
  EXPECT_EQ(GrpcListenAddress(":50051"), "[::]:50051");
  EXPECT_EQ(GrpcListenAddress("127.0.0.1:9"), "127.0.0.1:9");
}

}  // namespace
}  // namespace navarch
