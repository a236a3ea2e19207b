// GrpcControlPlaneClient against an in-process gRPC server on 127.0.0.1:0:
// what goes over the wire (auth, deadlines, streams), and how an upstream
// server without our RPCs looks to the agent.
#include "navarch/agent/grpc_client.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "navarch/agent/agent.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/testing/fake_process_runner.h"

namespace navarch::agent {
namespace {

// Only the upstream RPCs: WatchCommands and AckCommand are UNIMPLEMENTED, as
// on the Go control plane.
class UpstreamService : public ControlPlaneService::Service {
 public:
  grpc::Status RegisterNode(grpc::ServerContext* ctx,
                            const RegisterNodeRequest* req,
                            RegisterNodeResponse* resp) override {
    absl::MutexLock lock(&mu_);
    auto auth = ctx->client_metadata().find("authorization");
    if (auth != ctx->client_metadata().end()) {
      authorization_ = std::string(auth->second.data(), auth->second.size());
    }
    registered_.push_back(req->node_id());
    resp->set_success(true);
    resp->set_node_token(node_token_);
    resp->mutable_config()->set_heartbeat_interval_seconds(30);
    resp->mutable_config()->set_health_check_interval_seconds(60);
    resp->mutable_config()->set_commands_ack_supported(ack_supported_);
    return grpc::Status::OK;
  }
  grpc::Status SendHeartbeat(grpc::ServerContext* ctx,
                             const HeartbeatRequest* req,
                             HeartbeatResponse* resp) override {
    absl::MutexLock lock(&mu_);
    auto auth = ctx->client_metadata().find("authorization");
    if (auth != ctx->client_metadata().end()) {
      authorization_ = std::string(auth->second.data(), auth->second.size());
    }
    if (std::find(registered_.begin(), registered_.end(), req->node_id()) ==
        registered_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "node not found");
    }
    ++heartbeats_;
    resp->set_acknowledged(true);
    return grpc::Status::OK;
  }
  grpc::Status ReportHealth(grpc::ServerContext*, const ReportHealthRequest*,
                            ReportHealthResponse* resp) override {
    absl::MutexLock lock(&mu_);
    ++reports_;
    resp->set_acknowledged(true);
    return grpc::Status::OK;
  }
  grpc::Status GetNodeCommands(grpc::ServerContext*,
                               const GetNodeCommandsRequest*,
                               GetNodeCommandsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    ++polls_;
    for (auto& c : commands_) *resp->add_commands() = c;
    commands_.clear();
    return grpc::Status::OK;
  }

  void AddCommand(NodeCommand c) {
    absl::MutexLock lock(&mu_);
    commands_.push_back(std::move(c));
  }
  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int polls() {
    absl::MutexLock lock(&mu_);
    return polls_;
  }
  // What RegisterNode answers with in node_token (a control plane taking a
  // bootstrap token).
  void set_node_token(std::string token) {
    absl::MutexLock lock(&mu_);
    node_token_ = std::move(token);
  }

 protected:
  absl::Mutex mu_;
  bool ack_supported_ = false;
  std::vector<std::string> registered_;
  std::vector<NodeCommand> commands_;
  std::string authorization_;
  std::string node_token_;
  int heartbeats_ = 0;
  int reports_ = 0;
  int polls_ = 0;
};

// Ours: also streams commands and takes acknowledgements.
class StreamingService final : public UpstreamService {
 public:
  StreamingService() { ack_supported_ = true; }

  grpc::Status WatchCommands(grpc::ServerContext* ctx,
                             const WatchCommandsRequest*,
                             grpc::ServerWriter<NodeCommand>* writer) override {
    for (;;) {
      std::vector<NodeCommand> batch;
      {
        absl::MutexLock lock(&mu_);
        ++watchers_;
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !commands_.empty() || finish_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
        --watchers_;
        if (finish_)
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
        batch.swap(commands_);
      }
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      for (auto& c : batch) writer->Write(c);
    }
  }
  grpc::Status AckCommand(grpc::ServerContext*, const AckCommandRequest* req,
                          AckCommandResponse* resp) override {
    absl::MutexLock lock(&mu_);
    acks_.push_back(*req);
    resp->set_acknowledged(true);
    return grpc::Status::OK;
  }

  void Finish() {
    absl::MutexLock lock(&mu_);
    finish_ = true;
  }
  std::vector<AckCommandRequest> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }

 private:
  bool finish_ = false;
  int watchers_ = 0;
  std::vector<AckCommandRequest> acks_;
};

class Server {
 public:
  explicit Server(grpc::Service* service) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                       &port_);
    b.RegisterService(service);
    server_ = b.BuildAndStart();
  }
  ~Server() {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(1));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

std::unique_ptr<GrpcControlPlaneClient> Connect(const std::string& server,
                                                std::string token = "") {
  GrpcClientOptions o;
  o.server = server;
  o.auth_token = std::move(token);
  o.rpc_timeout = absl::Seconds(5);
  auto c = GrpcControlPlaneClient::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

TEST(ServerAddressTest, AcceptsUpstreamStyleUrls) {
  EXPECT_EQ(ParseServerAddress("10.0.0.5:50051")->target, "10.0.0.5:50051");
  EXPECT_EQ(ParseServerAddress("http://cp.internal:50051/")->target,
            "cp.internal:50051");
  EXPECT_FALSE(ParseServerAddress("http://cp.internal:50051")->tls);
  EXPECT_EQ(ParseServerAddress("localhost")->target, "localhost:50051");
  auto tls = ParseServerAddress("https://cp.example.com");
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->target, "cp.example.com:443");
  EXPECT_EQ(ParseServerAddress("[::1]:50051")->target, "[::1]:50051");
  for (const char* bad :
       {"", "http://", "ftp://x:1", "http://a:1/path", "a b:1", "host:"}) {
    EXPECT_FALSE(ParseServerAddress(bad).ok()) << bad;
  }
}

TEST(GrpcClientTest, UnaryCallsCarryTheTokenAndMapErrors) {
  StreamingService service;
  Server server(&service);
  auto client = Connect("http://" + server.address(), "s3cret");
  RegisterNodeRequest reg;
  reg.set_node_id("n1");
  auto r = client->RegisterNode(reg);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->config().commands_ack_supported());
  EXPECT_EQ(service.authorization(), "Bearer s3cret");
  HeartbeatRequest hb;
  hb.set_node_id("unknown");
  EXPECT_TRUE(absl::IsNotFound(client->SendHeartbeat(hb).status()));
}

TEST(GrpcClientTest, ANodeTokenInTheRegistrationAnswerReplacesTheToken) {
  StreamingService service;
  service.set_node_token("navarch-node.i-1.mac");
  Server server(&service);
  GrpcClientOptions o;
  o.server = "http://" + server.address();
  o.auth_token = "navarch-boot.1.intent.mac";
  std::vector<std::string> kept;
  o.on_node_token = [&](const std::string& t) { kept.push_back(t); };
  auto client = GrpcControlPlaneClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.status();
  RegisterNodeRequest reg;
  reg.set_node_id("i-1");
  ASSERT_TRUE((*client)->RegisterNode(reg).ok());
  EXPECT_EQ(service.authorization(), "Bearer navarch-boot.1.intent.mac");
  EXPECT_EQ(kept, std::vector<std::string>{"navarch-node.i-1.mac"});
  HeartbeatRequest hb;
  hb.set_node_id("i-1");
  ASSERT_TRUE((*client)->SendHeartbeat(hb).ok());
  EXPECT_EQ(service.authorization(), "Bearer navarch-node.i-1.mac");
  // An answer without one changes nothing.
  service.set_node_token("");
  ASSERT_TRUE((*client)->RegisterNode(reg).ok());
  ASSERT_TRUE((*client)->SendHeartbeat(hb).ok());
  EXPECT_EQ(service.authorization(), "Bearer navarch-node.i-1.mac");
  EXPECT_EQ(kept.size(), 1u);
}

TEST(GrpcClientTest, UnreachableServerIsUnavailable) {
  // A port nobody listens on: connection refused at once.
  StreamingService service;
  std::string address;
  {
    Server server(&service);
    address = server.address();
  }
  auto client = Connect(address);
  RegisterNodeRequest reg;
  reg.set_node_id("n1");
  absl::Status s = client->RegisterNode(reg).status();
  EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
}

TEST(GrpcClientTest, StreamsCommandsUntilCancelled) {
  StreamingService service;
  Server server(&service);
  auto client = Connect(server.address());
  absl::Mutex mu;
  std::vector<std::string> got;
  absl::Notification done;
  absl::Status end;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto stream = client->WatchCommands(
      req,
      [&](const NodeCommand& c) {
        absl::MutexLock lock(&mu);
        got.push_back(c.command_id());
      },
      [&](absl::Status s) {
        end = s;
        done.Notify();
      });
  NodeCommand c;
  c.set_command_id("c1");
  c.set_type(NODE_COMMAND_TYPE_CORDON);
  service.AddCommand(c);
  {
    absl::MutexLock lock(&mu);
    auto one = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !got.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&one), absl::Seconds(10)));
    EXPECT_EQ(got[0], "c1");
  }
  stream.reset();  // cancels and waits for `done`
  EXPECT_TRUE(done.HasBeenNotified());
  EXPECT_TRUE(absl::IsCancelled(end)) << end;
}

TEST(GrpcClientTest, StreamEndsWhenTheServerEndsIt) {
  StreamingService service;
  Server server(&service);
  auto client = Connect(server.address());
  absl::Notification done;
  absl::Status end;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto stream = client->WatchCommands(
      req, [](const NodeCommand&) {},
      [&](absl::Status s) {
        end = s;
        done.Notify();
      });
  service.Finish();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsUnavailable(end)) << end;
}

TEST(GrpcClientTest, UpstreamServerHasNoStream) {
  UpstreamService service;
  Server server(&service);
  auto client = Connect(server.address());
  absl::Notification done;
  absl::Status end;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto stream = client->WatchCommands(
      req, [](const NodeCommand&) {},
      [&](absl::Status s) {
        end = s;
        done.Notify();
      });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsUnimplemented(end)) << end;
  AckCommandRequest ack;
  ack.set_node_id("n1");
  ack.set_command_id("c");
  EXPECT_TRUE(absl::IsUnimplemented(client->AckCommand(ack).status()));
}

// The whole agent over gRPC, on real threads and the real clock, against a
// server that only has upstream's RPCs: it registers and takes commands by
// polling.
TEST(GrpcClientTest, AgentWorksWithAnUpstreamServer) {
  UpstreamService service;
  Server server(&service);
  auto client = Connect(server.address());
  RealClock clock;
  FakeGpuBackend gpus({.gpu_count = 1});
  testing::FakeProcessRunner runner;
  AgentOptions o;
  o.identity.set_node_id("n1");
  o.kmsg_path = "";
  o.config.command_poll_interval = absl::Milliseconds(100);
  Agent agent(o, clock, *client, gpus, runner, NullLogger());
  agent.Start();
  NodeCommand c;
  c.set_command_id("c1");
  c.set_type(NODE_COMMAND_TYPE_CORDON);
  service.AddCommand(c);
  for (int i = 0; i < 200 && agent.stats().commands_executed == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  agent.Stop();
  AgentStats s = agent.stats();
  EXPECT_TRUE(s.registered);
  EXPECT_TRUE(s.polling_commands);
  EXPECT_EQ(s.commands_executed, 1u);
  EXPECT_EQ(s.commands_acked, 0u);
  EXPECT_GE(service.heartbeats(), 1);
  EXPECT_GE(service.polls(), 1);
}

}  // namespace
}  // namespace navarch::agent
