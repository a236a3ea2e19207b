#include "navarch/controlplane/grpc_forwarder.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"

namespace navarch {
namespace {

constexpr int kWatchCommands = 5;
constexpr absl::Duration kWait = absl::Seconds(5);

// What the leader saw of the calls it served.
struct LeaderLog {
  absl::Mutex mu;
  std::multimap<std::string, std::string> metadata ABSL_GUARDED_BY(mu);
  bool had_deadline ABSL_GUARDED_BY(mu) = false;
  std::chrono::system_clock::time_point deadline ABSL_GUARDED_BY(mu);
  int calls ABSL_GUARDED_BY(mu) = 0;
  int watch_cancels ABSL_GUARDED_BY(mu) = 0;

  // Waits (bounded) until `n` WatchCommands streams saw OnCancel.
  bool AwaitWatchCancels(int n) {
    absl::MutexLock lock(&mu);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return watch_cancels >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&reached), kWait);
  }
};

// Streams kWatchCommands commands, then holds the stream open until the
// call is cancelled.
class WatchReactor final : public grpc::ServerWriteReactor<NodeCommand> {
 public:
  WatchReactor(LeaderLog& log, const std::string& node_id) : log_(log) {
    for (int i = 0; i < kWatchCommands; ++i) {
      NodeCommand& command = commands_.emplace_back();
      command.set_command_id(node_id + "-" + std::to_string(i));
      command.set_type(NODE_COMMAND_TYPE_CORDON);
    }
    absl::MutexLock lock(&mu_);
    StartWrite(&commands_[0]);
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (ok && ++next_ < kWatchCommands) StartWrite(&commands_[next_]);
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&log_.mu);
      ++log_.watch_cancels;
    }
    absl::MutexLock lock(&mu_);
    Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override { delete this; }

 private:
  LeaderLog& log_;
  std::vector<NodeCommand> commands_;
  absl::Mutex mu_;
  int next_ ABSL_GUARDED_BY(mu_) = 0;
};

// A leader with what the tests need of the service.
class TestLeader final : public ControlPlaneService::CallbackService {
 public:
  explicit TestLeader(LeaderLog& log) : log_(log) {}

  grpc::ServerUnaryReactor* GetNode(grpc::CallbackServerContext* ctx,
                                    const GetNodeRequest* req,
                                    GetNodeResponse* resp) override {
    Record(*ctx);
    ctx->AddInitialMetadata("x-leader-initial", "hello");
    ctx->AddTrailingMetadata("x-leader-trailer", "bye");
    resp->mutable_node()->set_node_id(req->node_id());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* SendHeartbeat(grpc::CallbackServerContext* ctx,
                                          const HeartbeatRequest* req,
                                          HeartbeatResponse*) override {
    Record(*ctx);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 "node " + req->node_id() + " is cordoned",
                                 "detail-bytes"));
    return reactor;
  }

  grpc::ServerWriteReactor<NodeCommand>* WatchCommands(
      grpc::CallbackServerContext* ctx,
      const WatchCommandsRequest* req) override {
    Record(*ctx);
    return new WatchReactor(log_, req->node_id());
  }

 private:
  void Record(const grpc::CallbackServerContext& ctx) {
    absl::MutexLock lock(&log_.mu);
    ++log_.calls;
    log_.metadata.clear();
    for (const auto& [key, value] : ctx.client_metadata()) {
      log_.metadata.emplace(std::string(key.data(), key.size()),
                            std::string(value.data(), value.size()));
    }
    log_.deadline = ctx.deadline();
    log_.had_deadline =
        ctx.deadline() != std::chrono::system_clock::time_point::max();
  }

  LeaderLog& log_;
};

std::unique_ptr<grpc::Server> StartServer(
    const std::function<void(grpc::ServerBuilder&)>& add, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           port);
  add(builder);
  return builder.BuildAndStart();
}

class GrpcForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int leader_port = 0;
    leader_server_ = StartServer(
        [&](grpc::ServerBuilder& b) { b.RegisterService(&leader_); },
        &leader_port);
    ASSERT_NE(leader_server_, nullptr);
    leader_channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(leader_port),
                            grpc::InsecureChannelCredentials());
  }

  // Starts the follower; `upstream` defaults to the leader's channel.
  void StartFollower(
      std::function<std::shared_ptr<grpc::Channel>()> upstream = nullptr) {
    GrpcForwarder::Options options;
    options.replica_id = "follower-1";
    options.upstream =
        upstream ? std::move(upstream) : [this] { return leader_channel_; };
    forwarder_ = std::make_unique<GrpcForwarder>(std::move(options));
    int port = 0;
    follower_server_ = StartServer(
        [&](grpc::ServerBuilder& b) {
          b.RegisterCallbackGenericService(forwarder_.get());
        },
        &port);
    ASSERT_NE(follower_server_, nullptr);
    follower_channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                            grpc::InsecureChannelCredentials());
    stub_ = ControlPlaneService::NewStub(follower_channel_);
  }

  void TearDown() override {
    auto now = std::chrono::system_clock::now();
    if (follower_server_) follower_server_->Shutdown(now);
    if (leader_server_) leader_server_->Shutdown(now);
    // The relays' calls to the leader end after the follower's calls; wait
    // for them, so the leader's channel goes here, not on a gRPC thread.
    if (forwarder_) {
      EXPECT_TRUE(NoneInFlight());
    }
  }

  // Waits (bounded) until the forwarder holds no call.
  bool NoneInFlight() {
    absl::Time end = absl::Now() + kWait;
    while (forwarder_->in_flight() != 0) {
      if (absl::Now() > end) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }

  LeaderLog log_;
  TestLeader leader_{log_};
  std::shared_ptr<grpc::Channel> leader_channel_;
  // Declared before the servers: it must outlive them.
  std::unique_ptr<GrpcForwarder> forwarder_;
  std::unique_ptr<grpc::Server> leader_server_;
  std::unique_ptr<grpc::Server> follower_server_;
  std::shared_ptr<grpc::Channel> follower_channel_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(GrpcForwarderTest, UnaryAnswerAndMetadataComeBackFromTheLeader) {
  StartFollower();
  grpc::ClientContext ctx;
  GetNodeRequest req;
  req.set_node_id("n1");
  GetNodeResponse resp;
  grpc::Status status = stub_->GetNode(&ctx, req, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.node().node_id(), "n1");
  auto initial = ctx.GetServerInitialMetadata().find("x-leader-initial");
  ASSERT_NE(initial, ctx.GetServerInitialMetadata().end());
  EXPECT_EQ(initial->second, "hello");
  auto trailer = ctx.GetServerTrailingMetadata().find("x-leader-trailer");
  ASSERT_NE(trailer, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(trailer->second, "bye");
  EXPECT_EQ(forwarder_->forwarded(), 1);
}

TEST_F(GrpcForwarderTest, LeaderErrorComesBackUnchanged) {
  StartFollower();
  grpc::ClientContext ctx;
  HeartbeatRequest req;
  req.set_node_id("n7");
  HeartbeatResponse resp;
  grpc::Status status = stub_->SendHeartbeat(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "node n7 is cordoned");
  EXPECT_EQ(status.error_details(), "detail-bytes");
}

TEST_F(GrpcForwarderTest, ClientMetadataAndDeadlineReachTheLeader) {
  StartFollower();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer t0ken");
  ctx.AddMetadata("x-trace-bin", std::string("\x00\x01\xff", 3));
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(30);
  ctx.set_deadline(deadline);
  GetNodeRequest req;
  req.set_node_id("n1");
  GetNodeResponse resp;
  ASSERT_TRUE(stub_->GetNode(&ctx, req, &resp).ok());

  absl::MutexLock lock(&log_.mu);
  auto auth = log_.metadata.find("authorization");
  ASSERT_NE(auth, log_.metadata.end());
  EXPECT_EQ(auth->second, "Bearer t0ken");
  EXPECT_EQ(log_.metadata.count("authorization"), 1u);
  auto bin = log_.metadata.find("x-trace-bin");
  ASSERT_NE(bin, log_.metadata.end());
  EXPECT_EQ(bin->second, std::string("\x00\x01\xff", 3));
  auto by = log_.metadata.find(kForwardedByHeader);
  ASSERT_NE(by, log_.metadata.end());
  EXPECT_EQ(by->second, "follower-1");
  // The transport's own headers are the forwarder's, not copies.
  EXPECT_EQ(log_.metadata.count("user-agent"), 1u);
  EXPECT_EQ(log_.metadata.count("te"), 0u);
  ASSERT_TRUE(log_.had_deadline);
  // The leader's deadline is the client's (the clocks are the same here;
  // grpc-timeout is relative and rounded up, by up to ~1% a hop).
  EXPECT_LE(log_.deadline, deadline + std::chrono::seconds(1));
  EXPECT_GT(log_.deadline, deadline - std::chrono::seconds(5));
}

TEST_F(GrpcForwarderTest, NoDeadlineStaysNone) {
  StartFollower();
  grpc::ClientContext ctx;
  GetNodeRequest req;
  GetNodeResponse resp;
  ASSERT_TRUE(stub_->GetNode(&ctx, req, &resp).ok());
  absl::MutexLock lock(&log_.mu);
  EXPECT_FALSE(log_.had_deadline);
}

// Reads the leader's kWatchCommands commands through the follower.
void ReadAllCommands(grpc::ClientReader<NodeCommand>& reader) {
  for (int i = 0; i < kWatchCommands; ++i) {
    NodeCommand command;
    ASSERT_TRUE(reader.Read(&command)) << "command " << i;
    EXPECT_EQ(command.command_id(), "n1-" + std::to_string(i));
  }
}

TEST_F(GrpcForwarderTest, WatchStreamsAndEndsUnavailableWhenTheLeaderGoes) {
  StartFollower();
  grpc::ClientContext ctx;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto reader = stub_->WatchCommands(&ctx, req);
  ReadAllCommands(*reader);
  EXPECT_EQ(forwarder_->in_flight(), 1);

  leader_server_->Shutdown(std::chrono::system_clock::now());
  NodeCommand command;
  EXPECT_FALSE(reader->Read(&command));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_TRUE(NoneInFlight());
}

TEST_F(GrpcForwarderTest, ClientCancelReachesTheLeader) {
  StartFollower();
  grpc::ClientContext ctx;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto reader = stub_->WatchCommands(&ctx, req);
  ReadAllCommands(*reader);
  ctx.TryCancel();
  EXPECT_TRUE(log_.AwaitWatchCancels(1));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(NoneInFlight());
}

TEST_F(GrpcForwarderTest, CancelAllEndsLiveStreamsUnavailable) {
  StartFollower();
  grpc::ClientContext ctx;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  auto reader = stub_->WatchCommands(&ctx, req);
  ReadAllCommands(*reader);
  ASSERT_EQ(forwarder_->in_flight(), 1);

  forwarder_->CancelAll();
  NodeCommand command;
  EXPECT_FALSE(reader->Read(&command));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(log_.AwaitWatchCancels(1));
  EXPECT_TRUE(NoneInFlight());

  // Later calls are still relayed.
  grpc::ClientContext again;
  GetNodeRequest get;
  GetNodeResponse resp;
  EXPECT_TRUE(stub_->GetNode(&again, get, &resp).ok());
}

// Client cancels racing CancelAll on many live streams: every stream ends,
// none is left in flight (and, under ASan, nothing is used after free).
TEST_F(GrpcForwarderTest, CancelsRaceCancelAll) {
  StartFollower();
  constexpr int kStreams = 40;
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<NodeCommand>> reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  WatchCommandsRequest req;
  req.set_node_id("n1");
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<Stream>());
    streams.back()->reader = stub_->WatchCommands(&streams.back()->ctx, req);
    ReadAllCommands(*streams.back()->reader);
  }
  ASSERT_EQ(forwarder_->in_flight(), kStreams);

  std::thread canceller([&] {
    for (int i = 0; i < kStreams; i += 2) streams[i]->ctx.TryCancel();
  });
  forwarder_->CancelAll();
  canceller.join();
  for (auto& stream : streams) {
    grpc::StatusCode code = stream->reader->Finish().error_code();
    EXPECT_TRUE(code == grpc::StatusCode::UNAVAILABLE ||
                code == grpc::StatusCode::CANCELLED)
        << code;
  }
  EXPECT_TRUE(log_.AwaitWatchCancels(kStreams));
  EXPECT_TRUE(NoneInFlight());
}

TEST_F(GrpcForwarderTest, NoLeaderIsUnavailable) {
  StartFollower([] { return std::shared_ptr<grpc::Channel>(); });
  grpc::ClientContext ctx;
  GetNodeRequest req;
  GetNodeResponse resp;
  grpc::Status status = stub_->GetNode(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "no leader elected yet; retry");
  EXPECT_EQ(forwarder_->forwarded(), 0);
}

TEST_F(GrpcForwarderTest, UnreachableLeaderIsUnavailable) {
  // Nothing listens on port 1 of the loopback.
  auto dead =
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  StartFollower([dead] { return dead; });
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  GetNodeRequest req;
  GetNodeResponse resp;
  grpc::Status status = stub_->GetNode(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

// The relay does not know the methods: one the leader lacks is answered by
// the leader (UNIMPLEMENTED), and the request's bytes arrive as sent.
TEST_F(GrpcForwarderTest, AnyMethodIsRelayed) {
  StartFollower();
  grpc::GenericStub generic(follower_channel_);
  GetNodeRequest req;
  req.set_node_id("raw");
  std::string bytes = req.SerializeAsString();
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;

  grpc::ClientContext get_ctx;
  absl::Notification got;
  grpc::Status get_status;
  generic.UnaryCall(&get_ctx, "/navarch.ControlPlaneService/GetNode",
                    grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      get_status = std::move(s);
                      got.Notify();
                    });
  ASSERT_TRUE(got.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(get_status.ok()) << get_status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(s.begin(), s.end());
  GetNodeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(out));
  EXPECT_EQ(parsed.node().node_id(), "raw");

  grpc::ClientContext other_ctx;
  absl::Notification answered;
  grpc::Status other_status;
  generic.UnaryCall(&other_ctx, "/navarch.ControlPlaneService/NoSuchMethod",
                    grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      other_status = std::move(s);
                      answered.Notify();
                    });
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(other_status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(forwarder_->forwarded(), 2);
}

TEST_F(GrpcForwarderTest, ForwardedCallIsRefusedAsALoop) {
  StartFollower();
  grpc::ClientContext ctx;
  ctx.AddMetadata(kForwardedByHeader, "follower-2");
  GetNodeRequest req;
  GetNodeResponse resp;
  grpc::Status status = stub_->GetNode(&ctx, req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("forwarding loop"), std::string::npos)
      << status.error_message();
  absl::MutexLock lock(&log_.mu);
  EXPECT_EQ(log_.calls, 0);
}

TEST_F(GrpcForwarderTest, ManyConcurrentUnaryCalls) {
  StartFollower();
  constexpr int kCalls = 200;
  struct Call {
    grpc::ClientContext ctx;
    GetNodeRequest req;
    GetNodeResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  std::atomic<int> left{kCalls};
  absl::Notification all_done;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->req.set_node_id("n" + std::to_string(i));
    stub_->async()->GetNode(&call->ctx, &call->req, &call->resp,
                            [&, call](grpc::Status s) {
                              call->status = std::move(s);
                              if (--left == 0) all_done.Notify();
                            });
  }
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(kWait));
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(calls[i]->status.ok()) << calls[i]->status.error_message();
    EXPECT_EQ(calls[i]->resp.node().node_id(), "n" + std::to_string(i));
  }
  EXPECT_EQ(forwarder_->forwarded(), kCalls);
  EXPECT_TRUE(NoneInFlight());
}

}  // namespace
}  // namespace navarch
