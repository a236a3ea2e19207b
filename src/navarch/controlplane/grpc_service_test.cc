// The gRPC transport end to end, in process: a real listener on port 0, a real
// channel, the memory store.
#include "navarch/controlplane/grpc_service.h"

#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/config/config.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/server.h"
#include "navarch/controlplane/testing/scripted_provider.h"
#include "navarch/health/evaluator.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = DefaultConfig();
    config_.server.address = "127.0.0.1:0";
    config_.server.http_address = "127.0.0.1:0";
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

TEST_F(GrpcServiceTest, ATakenHttpPortIsAClearErrorToo) {
  Config second = config_;
  second.server.http_address = server_->http_address();
  ControlPlaneServer other(second, clock_, NullLogger());
  absl::Status s = other.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("already in use"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("(HTTP)"), std::string::npos) << s.message();
}

TEST_F(GrpcServiceTest, CallsAreCountedByMethodAndCode) {
  ASSERT_TRUE(Register("n1").ok());
  ASSERT_FALSE(Register("").ok());
  const std::string text = server_->metrics().Render();
  EXPECT_NE(text.find("navarch_rpc_requests_total{protocol=\"grpc\","
                      "method=\"RegisterNode\",code=\"ok\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("navarch_rpc_requests_total{protocol=\"grpc\","
                      "method=\"RegisterNode\",code=\"invalid_argument\"} "
                      "1\n"),
            std::string::npos);
}

constexpr char kNodeKey[] = "node-key-node-key-node-key-node-key";

// Tokens with roles on the gRPC listener.
class GrpcAuthTest : public GrpcServiceTest {
 protected:
  void SetUp() override {
    config_ = DefaultConfig();
    config_.server.address = "127.0.0.1:0";
    config_.server.http_address = "127.0.0.1:0";
    config_.storage.backend = StorageBackend::kMemory;
    for (auto [name, value, role] :
         {std::tuple{"ops", "op-token", AuthRole::kOperator},
          std::tuple{"grafana", "view-token", AuthRole::kViewer},
          std::tuple{"agents", "agent-token", AuthRole::kAgent}}) {
      AuthTokenConfig t;
      t.name = name;
      t.value = value;
      t.role = role;
      config_.auth.tokens.push_back(t);
    }
    AuthTokenConfig key;
    key.name = "node_token_key";
    key.value = kNodeKey;
    config_.auth.node_token_key = key;
    ResolveConfig(&config_);
    server_ =
        std::make_unique<ControlPlaneServer>(config_, clock_, NullLogger());
    ASSERT_TRUE(server_->Start().ok());
    stub_ = ControlPlaneService::NewStub(grpc::CreateChannel(
        server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status RegisterAs(const std::string& token, const std::string& id) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    RegisterNodeRequest req;
    req.set_node_id(id);
    RegisterNodeResponse resp;
    return stub_->RegisterNode(&ctx, req, &resp);
  }

  grpc::Status IssueAs(const std::string& token, const std::string& id) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    IssueCommandRequest req;
    req.set_node_id(id);
    req.set_command_type(NODE_COMMAND_TYPE_CORDON);
    IssueCommandResponse resp;
    return stub_->IssueCommand(&ctx, req, &resp);
  }
};

TEST_F(GrpcAuthTest, MissingOrWrongTokensAreUnauthenticated) {
  EXPECT_EQ(RegisterAs("", "n1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status wrong = RegisterAs("nope", "n1");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "invalid token");
}

TEST_F(GrpcAuthTest, RolesArePermissionDeniedOutsideTheirRights) {
  EXPECT_TRUE(RegisterAs("agent-token", "n1").ok());
  EXPECT_EQ(RegisterAs("view-token", "n2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(IssueAs("agent-token", "n1").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(IssueAs("view-token", "n1").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext wctx;
  wctx.AddMetadata("authorization", "Bearer view-token");
  WatchCommandsRequest w;
  w.set_node_id("n1");
  auto reader = stub_->WatchCommands(&wctx, w);
  NodeCommand c;
  EXPECT_FALSE(reader->Read(&c));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

// Every node RPC as `token` about `node_id`.
std::map<std::string, grpc::Status> NodeRpcsAs(ControlPlaneService::Stub& stub,
                                               const std::string& token,
                                               const std::string& node_id) {
  std::map<std::string, grpc::Status> out;
  auto call = [&](const char* name, auto rpc) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    out[name] = rpc(ctx);
  };
  call("RegisterNode", [&](grpc::ClientContext& ctx) {
    RegisterNodeRequest req;
    req.set_node_id(node_id);
    RegisterNodeResponse resp;
    return stub.RegisterNode(&ctx, req, &resp);
  });
  call("SendHeartbeat", [&](grpc::ClientContext& ctx) {
    HeartbeatRequest req;
    req.set_node_id(node_id);
    HeartbeatResponse resp;
    return stub.SendHeartbeat(&ctx, req, &resp);
  });
  call("ReportHealth", [&](grpc::ClientContext& ctx) {
    ReportHealthRequest req;
    req.set_node_id(node_id);
    HealthCheckResult* r = req.add_results();
    r->set_check_name("xid");
    r->set_status(HEALTH_STATUS_UNHEALTHY);
    r->set_message("GPU has fallen off the bus");
    ReportHealthResponse resp;
    return stub.ReportHealth(&ctx, req, &resp);
  });
  call("GetNodeCommands", [&](grpc::ClientContext& ctx) {
    GetNodeCommandsRequest req;
    req.set_node_id(node_id);
    GetNodeCommandsResponse resp;
    return stub.GetNodeCommands(&ctx, req, &resp);
  });
  call("AckCommand", [&](grpc::ClientContext& ctx) {
    AckCommandRequest req;
    req.set_node_id(node_id);
    req.set_command_id("no-such-command");
    AckCommandResponse resp;
    return stub.AckCommand(&ctx, req, &resp);
  });
  call("WatchCommands", [&](grpc::ClientContext& ctx) {
    // An allowed watch streams until the deadline.
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(300));
    WatchCommandsRequest req;
    req.set_node_id(node_id);
    auto reader = stub.WatchCommands(&ctx, req);
    NodeCommand c;
    while (reader->Read(&c)) {
    }
    return reader->Finish();
  });
  return out;
}

// One leaked node token speaks for its own node, never for the fleet.
TEST_F(GrpcAuthTest, NodeTokensActForTheirOwnNodeOnly) {
  ASSERT_TRUE(RegisterAs("op-token", "n2").ok());
  const std::string token = NodeToken(kNodeKey, "n1");
  for (const auto& [method, s] : NodeRpcsAs(*stub_, token, "n2")) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_EQ(s.error_message(), "the node token of n1 may not act for node n2")
        << method;
  }
  // n2's report of a fallen GPU was refused: n2 stays healthy.
  grpc::ClientContext gctx;
  gctx.AddMetadata("authorization", "Bearer view-token");
  GetNodeRequest get;
  get.set_node_id("n2");
  GetNodeResponse node;
  ASSERT_TRUE(stub_->GetNode(&gctx, get, &node).ok());
  EXPECT_NE(node.node().health_status(), HEALTH_STATUS_UNHEALTHY);

  for (const auto& [method, s] : NodeRpcsAs(*stub_, token, "n1")) {
    EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
  }
}

// A cloud instance's agent registers with the bootstrap token of its user
// data and gets its node token back; the token registers nothing else.
TEST_F(GrpcAuthTest, ABootstrapTokenRegistersItsInstanceAndHandsTheNodeToken) {
  auto put = [&](const std::string& id, const std::string& intent,
                 InstanceState state) {
    InstanceInfo inst;
    inst.set_instance_id(id);
    inst.set_pool_name("train");
    inst.set_state(state);
    (*inst.mutable_labels())["navarch-token"] = intent;
    ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                  server_->fleet().UpsertInstance(inst, Actor{"pool-manager"},
                                                  done);
                }).ok());
  };
  put("i-1", "c-train-n-1", INSTANCE_STATE_PENDING_REGISTRATION);
  put("i-2", "c-train-n-2", INSTANCE_STATE_PENDING_REGISTRATION);
  put("i-3", "c-train-n-3", INSTANCE_STATE_FAILED);
  auto boot = [&](const std::string& intent) {
    return BootstrapToken(kNodeKey, intent, clock_.Now() + absl::Minutes(15));
  };
  auto register_as = [&](const std::string& token, const std::string& id,
                         RegisterNodeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    RegisterNodeRequest req;
    req.set_node_id(id);
    return stub_->RegisterNode(&ctx, req, resp);
  };
  RegisterNodeResponse resp;
  // Another instance's id, an unknown id, a failed instance: refused.
  EXPECT_EQ(register_as(boot("c-train-n-1"), "i-2", &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(register_as(boot("c-train-n-1"), "i-9", &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status failed = register_as(boot("c-train-n-3"), "i-3", &resp);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(failed.error_message(), ::testing::HasSubstr("failed"));
  // Its own instance: registered, with the node token in the answer.
  ASSERT_TRUE(register_as(boot("c-train-n-1"), "i-1", &resp).ok());
  EXPECT_EQ(resp.node_token(), NodeToken(kNodeKey, "i-1"));
  // A node token or an operator registering gets none.
  RegisterNodeResponse plain;
  ASSERT_TRUE(register_as(resp.node_token(), "i-1", &plain).ok());
  EXPECT_TRUE(plain.node_token().empty());
  // The node token goes on; the bootstrap token does nothing else.
  for (const auto& [method, st] :
       NodeRpcsAs(*stub_, resp.node_token(), "i-1")) {
    EXPECT_NE(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
  }
  for (const auto& [method, st] :
       NodeRpcsAs(*stub_, boot("c-train-n-1"), "i-1")) {
    if (method == "RegisterNode") continue;
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
  }
}

// Lambda: the agent cannot learn its instance id, so it registers with an
// empty node id and its bootstrap token; both transports register it under
// the id of the instance the token was minted for, and say which.
TEST_F(GrpcAuthTest, ABootstrapTokenWithNoNodeIdRegistersItsOwnInstance) {
  auto put = [&](const std::string& id, const std::string& intent) {
    InstanceInfo inst;
    inst.set_instance_id(id);
    inst.set_pool_name("train");
    inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
    (*inst.mutable_labels())["navarch-token"] = intent;
    ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                  server_->fleet().UpsertInstance(inst, Actor{"pool-manager"},
                                                  done);
                }).ok());
  };
  auto boot = [&](const std::string& intent) {
    return BootstrapToken(kNodeKey, intent, clock_.Now() + absl::Minutes(15));
  };
  auto register_grpc = [&](const std::string& token,
                           RegisterNodeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    RegisterNodeRequest req;
    req.set_provider("lambda");
    return stub_->RegisterNode(&ctx, req, resp);
  };
  httplib::Client http("http://" + server_->http_address());
  auto register_connect = [&](const std::string& token) {
    return http.Post("/navarch.ControlPlaneService/RegisterNode",
                     {{"Authorization", "Bearer " + token}},
                     R"({"provider": "lambda"})", "application/json");
  };
  // The launch has not returned yet: retryable on both transports.
  RegisterNodeResponse resp;
  grpc::Status early = register_grpc(boot("c-train-n-5"), &resp);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(early.error_message(), ::testing::HasSubstr("not recorded yet"));
  auto early_http = register_connect(boot("c-train-n-5"));
  ASSERT_TRUE(early_http);
  EXPECT_EQ(early_http->status, 503) << early_http->body;
  EXPECT_THAT(early_http->body, ::testing::HasSubstr("not recorded yet"));

  const std::string lambda_id = "0920582c7ff041399e34823a0be62549";
  put(lambda_id, "c-train-n-5");
  ASSERT_TRUE(register_grpc(boot("c-train-n-5"), &resp).ok());
  EXPECT_EQ(resp.node_id(), lambda_id);
  EXPECT_EQ(resp.node_token(), NodeToken(kNodeKey, lambda_id));
  GetNodeRequest get;
  get.set_node_id(lambda_id);
  EXPECT_TRUE(server_->fleet().GetNode(get).ok());

  put("i-6", "c-train-n-6");
  auto r = register_connect(boot("c-train-n-6"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  RegisterNodeResponse connect_resp;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(r->body, &connect_resp).ok())
      << r->body;
  EXPECT_EQ(connect_resp.node_id(), "i-6");
  EXPECT_EQ(connect_resp.node_token(), NodeToken(kNodeKey, "i-6"));

  // Without a bootstrap token an empty node id is still invalid.
  EXPECT_EQ(register_grpc("op-token", &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto op = register_connect("op-token");
  ASSERT_TRUE(op);
  EXPECT_EQ(op->status, 400) << op->body;
  // A named registration is answered with its own id.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer op-token");
  RegisterNodeRequest named;
  named.set_node_id("gpu-9");
  ASSERT_TRUE(stub_->RegisterNode(&ctx, named, &resp).ok());
  EXPECT_EQ(resp.node_id(), "gpu-9");
  EXPECT_TRUE(resp.node_token().empty());
}

TEST_F(GrpcAuthTest, ForgedNodeTokensAreUnauthenticated) {
  const std::string good = NodeToken(kNodeKey, "n1");
  for (const std::string& forged :
       {NodeToken("some-other-key-some-other-key-xyz", "n1"),
        absl::StrCat("navarch-node.n2.", good.substr(good.rfind('.') + 1))}) {
    for (const auto& [method, s] : NodeRpcsAs(*stub_, forged, "n1")) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
      EXPECT_EQ(s.error_message(), "invalid token") << method;
    }
  }
}

TEST_F(GrpcAuthTest, SharedAgentTokensCanBeRefused) {
  server_->Shutdown(absl::Seconds(1));
  config_.auth.allow_shared_agent_tokens = false;
  server_ = std::make_unique<ControlPlaneServer>(config_, clock_, NullLogger());
  ASSERT_TRUE(server_->Start().ok());
  stub_ = ControlPlaneService::NewStub(grpc::CreateChannel(
      server_->grpc_address(), grpc::InsecureChannelCredentials()));
  for (const auto& [method, s] : NodeRpcsAs(*stub_, "agent-token", "n1")) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_THAT(s.error_message(),
                ::testing::HasSubstr("allow_shared_agent_tokens is false"));
  }
  EXPECT_TRUE(RegisterAs(NodeToken(kNodeKey, "n1"), "n1").ok());
}

TEST_F(GrpcAuthTest, TheEventLogNamesTheOperatorToken) {
  ASSERT_TRUE(RegisterAs("agent-token", "n1").ok());
  ASSERT_TRUE(IssueAs("op-token", "n1").ok());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer view-token");
  ListEventsRequest req;
  req.set_node_id("n1");
  req.add_kinds("command.issued");
  ListEventsResponse resp;
  ASSERT_TRUE(stub_->ListEvents(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).actor(), "operator:ops");
}

TEST_F(GrpcAuthTest, AnsweredCallsNameTheServerVersion) {
  auto version = [&](const std::string& token) -> std::string {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    GetNodeResponse resp;
    std::ignore = stub_->GetNode(&ctx, GetNodeRequest(), &resp);
    const auto& md = ctx.GetServerInitialMetadata();
    auto it = md.find("navarch-version");
    return it == md.end() ? ""
                          : std::string(it->second.data(), it->second.size());
  };
  // Even a refused request (no node_id) from a viewer.
  EXPECT_EQ(version("view-token"), NAVARCH_VERSION);
  EXPECT_EQ(version(""), "");  // not to strangers
}

TEST(GrpcListenAddressTest, GoStyleMeansEveryInterface) {
  EXPECT_EQ(GrpcListenAddress(":50051"), "[::]:50051");
  EXPECT_EQ(GrpcListenAddress("127.0.0.1:9"), "127.0.0.1:9");
}

// Pools: served by the pool manager with the fake provider.
TEST_F(GrpcServiceTest, PoolsAreUnimplementedWithoutPools) {
  grpc::ClientContext ctx;
  ListPoolsResponse resp;
  EXPECT_EQ(stub_->ListPools(&ctx, ListPoolsRequest(), &resp).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

// A control plane on loopback with the memory store and one pool, "train"
// (up to 3 nodes), on the fake provider "sim".
Config FakePoolConfig(int min_nodes) {
  Config config = DefaultConfig();
  config.server.address = "127.0.0.1:0";
  config.server.http_address = "127.0.0.1:0";
  config.storage.backend = StorageBackend::kMemory;
  ProviderConfig fake;
  fake.name = "sim";
  fake.type = ProviderType::kFake;
  config.providers["sim"] = fake;
  PoolConfig pool;
  pool.name = "train";
  pool.providers = {PoolProvider{.name = "sim"}};
  pool.instance_type = "h100-8x";
  pool.min_nodes = min_nodes;
  pool.max_nodes = 3;
  pool.labels = {{"pool", "train"}};
  config.pools["train"] = pool;
  ResolveConfig(&config);
  return config;
}

TEST(GrpcPoolsTest, ListGetAndScale) {
  RealClock clock;
  Config config = FakePoolConfig(/*min_nodes=*/2);
  ControlPlaneServer server(config, clock, NullLogger());
  ASSERT_TRUE(server.Start().ok());
  auto stub = ControlPlaneService::NewStub(grpc::CreateChannel(
      server.grpc_address(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    ListPoolsResponse resp;
    ASSERT_TRUE(stub->ListPools(&ctx, ListPoolsRequest(), &resp).ok());
    ASSERT_EQ(resp.pools_size(), 1);
    EXPECT_EQ(resp.pools(0).name(), "train");
    // min_nodes is provisioned at start-up, before any autoscaler.
    EXPECT_EQ(resp.pools(0).current_nodes(), 2);
    EXPECT_EQ(resp.pools(0).pending_instances(), 2);
    EXPECT_EQ(resp.pools(0).target_nodes(), 2);
    EXPECT_EQ(resp.pools(0).strategy(), "priority");
  }
  {
    grpc::ClientContext ctx;
    ScalePoolRequest req;
    req.set_name("train");
    req.set_target_nodes(4);
    ScalePoolResponse resp;
    grpc::Status s = stub->ScalePool(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("[2, 3]"), std::string::npos);
  }
  {
    grpc::ClientContext ctx;
    ScalePoolRequest req;
    req.set_name("train");
    req.set_target_nodes(3);
    ScalePoolResponse resp;
    ASSERT_TRUE(stub->ScalePool(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.pool().target_nodes(), 3);
  }
  {
    grpc::ClientContext ctx;
    GetPoolRequest req;
    req.set_name("nope");
    GetPoolResponse resp;
    EXPECT_EQ(stub->GetPool(&ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  server.Shutdown(absl::Seconds(1));
}

// ---------------------------------------------------------------- providers

TEST(GrpcProvidersTest, ListsProvidersAndTheFakesTypeError) {
  RealClock clock;
  Config config = FakePoolConfig(/*min_nodes=*/0);
  ControlPlaneServer server(config, clock, NullLogger());
  ASSERT_TRUE(server.Start().ok());
  auto stub = ControlPlaneService::NewStub(grpc::CreateChannel(
      server.grpc_address(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    ListProvidersResponse resp;
    ASSERT_TRUE(stub->ListProviders(&ctx, ListProvidersRequest(), &resp).ok());
    ASSERT_EQ(resp.providers_size(), 1);
    EXPECT_EQ(resp.providers(0).name(), "sim");
    EXPECT_EQ(resp.providers(0).type(), "fake");
    EXPECT_THAT(resp.providers(0).pools(), ::testing::ElementsAre("train"));
    EXPECT_TRUE(resp.providers(0).available());
  }
  {
    // The fake from a config file lists no types: said, not UNIMPLEMENTED.
    grpc::ClientContext ctx;
    ListInstanceTypesRequest req;
    req.set_provider("sim");
    ListInstanceTypesResponse resp;
    grpc::Status s = stub->ListInstanceTypes(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(),
              "provider sim cannot list instance types: fake provider lists "
              "no instance types");
  }
  {
    grpc::ClientContext ctx;
    ListInstanceTypesRequest req;
    req.set_provider("nope");
    ListInstanceTypesResponse resp;
    EXPECT_EQ(stub->ListInstanceTypes(&ctx, req, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  server.Shutdown(absl::Seconds(1));
}

// A provider that never answers: the client gets DEADLINE_EXCEEDED from the
// server at the API's deadline (on a FakeClock), and other calls are served
// meanwhile.
TEST(GrpcProvidersTest, AHungProviderIsDeadlineExceeded) {
  FakeClock clock;
  MemoryStore store;
  PolicyEvaluator evaluator;
  FleetService fleet(store, clock, evaluator, NullLogger(), FleetOptions{});
  ASSERT_TRUE(fleet.Start().ok());
  auto auth = Authenticator::Create(AuthConfig{}, false);
  ASSERT_TRUE(auth.ok());
  MetricsRegistry registry;
  RpcMetrics metrics(registry);
  Config config;
  ProviderConfig pc;
  pc.name = "stuck";
  pc.type = ProviderType::kAws;
  config.providers["stuck"] = pc;
  ProviderRegistry providers;
  auto hanging = std::make_unique<testing::ScriptedProvider>(
      "stuck", std::vector<InstanceTypeInfo>(), /*hang=*/true);
  testing::ScriptedProvider* stuck = hanging.get();
  ASSERT_TRUE(providers.Add(std::move(hanging)).ok());
  ProviderApi api(config, &providers, nullptr, clock);
  GrpcService service(fleet, NullLogger(), clock, **auth, metrics);
  service.set_provider_api(&api);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = ControlPlaneService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::Status status;
  std::thread caller([&] {
    grpc::ClientContext ctx;
    ListInstanceTypesRequest req;
    req.set_provider("stuck");
    ListInstanceTypesResponse resp;
    status = stub->ListInstanceTypes(&ctx, req, &resp);
  });
  stuck->AwaitCalled();
  {
    // Served while the provider hangs: no gRPC thread is held by it.
    grpc::ClientContext ctx;
    ListProvidersResponse resp;
    ASSERT_TRUE(stub->ListProviders(&ctx, ListProvidersRequest(), &resp).ok());
    EXPECT_EQ(resp.providers(0).name(), "stuck");
  }
  clock.Advance(absl::Seconds(25));
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(status.error_message(),
            "provider stuck: no answer within 25s (ListInstanceTypes)");
  server->Shutdown();
  stuck->Release();
  api.AwaitNoCallsRunning();
  fleet.Stop();
}

// ------------------------------------------------------------------ paging

TEST(GrpcPagingTest, AnUnpagedListTooLargeIsResourceExhaustedAndPagesWork) {
  RealClock clock;
  Config config = DefaultConfig();
  config.server.address = "127.0.0.1:0";
  config.server.http_address = "127.0.0.1:0";
  config.storage.backend = StorageBackend::kMemory;
  ResolveConfig(&config);
  ControlPlaneServer server(config, clock, NullLogger());
  // Five nodes take more than 100 bytes: the answer without page_size is
  // over the limit, as 100,000 nodes are over 64 MiB.
  server.set_max_response_bytes(100);
  ASSERT_TRUE(server.Start().ok());
  auto stub = ControlPlaneService::NewStub(grpc::CreateChannel(
      server.grpc_address(), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 5; ++i) {
    grpc::ClientContext ctx;
    RegisterNodeRequest req;
    req.set_node_id(absl::StrCat("node-", i));
    req.add_gpus()->set_index(0);
    RegisterNodeResponse resp;
    ASSERT_TRUE(stub->RegisterNode(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    ListNodesResponse resp;
    grpc::Status s = stub->ListNodes(&ctx, ListNodesRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("5 nodes"));
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("page_size"));
  }
  std::vector<std::string> seen;
  ListNodesRequest req;
  req.set_page_size(2);
  do {
    grpc::ClientContext ctx;
    ListNodesResponse resp;
    ASSERT_TRUE(stub->ListNodes(&ctx, req, &resp).ok());
    EXPECT_LE(resp.nodes_size(), 2);
    for (const NodeInfo& n : resp.nodes()) seen.push_back(n.node_id());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  EXPECT_THAT(seen, ::testing::ElementsAre("node-0", "node-1", "node-2",
                                           "node-3", "node-4"));
  server.Shutdown(absl::Seconds(1));
}

// ------------------------------------------------- health and reflection

TEST_F(GrpcServiceTest, ServesTheStandardHealthService) {
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      server_->grpc_address(), grpc::InsecureChannelCredentials()));
  for (const char* service : {"", "navarch.ControlPlaneService"}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING)
        << service;
  }
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, HealthIsNotServingOnceShutdownBegins) {
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      server_->grpc_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("navarch.ControlPlaneService");
  std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>>
      watch = health->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  std::thread stop([this] { server_->Shutdown(absl::Seconds(1)); });
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  ctx.TryCancel();
  stop.join();
}

// The fields of a protobuf message read without its schema:
// (field number, bytes) of each length-delimited field.
std::vector<std::pair<int, std::string>> Fields(const std::string& bytes) {
  google::protobuf::UnknownFieldSet set;
  EXPECT_TRUE(set.ParseFromString(bytes));
  std::vector<std::pair<int, std::string>> out;
  for (int i = 0; i < set.field_count(); ++i) {
    const google::protobuf::UnknownField& f = set.field(i);
    if (f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.emplace_back(f.number(), f.length_delimited());
    }
  }
  return out;
}

// One exchange on grpc.reflection.v1alpha.ServerReflection, the way grpcurl
// makes it: `request` is a ServerReflectionRequest, encoded by hand (the
// reflection library ships no headers for its messages).
std::string Reflect(const std::string& address, const std::string& request) {
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::internal::RpcMethod method(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream(grpc::internal::ClientReaderWriterFactory<
             grpc::ByteBuffer, grpc::ByteBuffer>::Create(channel.get(), method,
                                                         &ctx));
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  EXPECT_TRUE(stream->Write(out));
  stream->WritesDone();
  grpc::ByteBuffer in;
  std::string answer;
  if (stream->Read(&in)) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(in.Dump(&slices).ok());
    for (const grpc::Slice& s : slices) {
      answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  return answer;
}

// A length-delimited field: tag, length (< 128), bytes.
std::string Field(int number, const std::string& value) {
  return std::string{static_cast<char>(number << 3 | 2),
                     static_cast<char>(value.size())} +
         value;
}

TEST_F(GrpcServiceTest, ServesReflectionForGrpcurl) {
  // list_services (field 7) -> list_services_response (6) -> service (1)
  // -> name (1).
  std::vector<std::string> services;
  for (const auto& [number, list] :
       Fields(Reflect(server_->grpc_address(), Field(7, "*")))) {
    if (number != 6) continue;
    for (const auto& [n, service] : Fields(list)) {
      for (const auto& [k, name] : Fields(service)) services.push_back(name);
    }
  }
  EXPECT_THAT(services, ::testing::IsSupersetOf({"navarch.ControlPlaneService",
                                                 "grpc.health.v1.Health"}));
  // file_containing_symbol (4) -> file_descriptor_response (4) ->
  // file_descriptor_proto (1).
  bool described = false;
  for (const auto& [number, files] : Fields(Reflect(
           server_->grpc_address(), Field(4, "navarch.ControlPlaneService")))) {
    if (number != 4) continue;
    for (const auto& [n, bytes] : Fields(files)) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      if (file.name() == "navarch/control_plane.proto") described = true;
    }
  }
  EXPECT_TRUE(described);
}

}  // namespace
}  // namespace navarch
