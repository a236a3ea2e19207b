#include "navarch/agent/assigned_node_id.h"

#include <deque>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

using ::testing::HasSubstr;

// Answers RegisterNode from a script and records what it was sent.
class ScriptedClient final : public ControlPlaneClient {
 public:
  std::deque<absl::StatusOr<RegisterNodeResponse>> answers;
  std::vector<RegisterNodeRequest> sent;

  absl::StatusOr<RegisterNodeResponse> RegisterNode(
      const RegisterNodeRequest& req) override {
    sent.push_back(req);
    if (answers.empty()) return absl::InternalError("no answer scripted");
    auto a = answers.front();
    answers.pop_front();
    return a;
  }
  absl::StatusOr<HeartbeatResponse> SendHeartbeat(
      const HeartbeatRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<ReportHealthResponse> ReportHealth(
      const ReportHealthRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<GetNodeCommandsResponse> GetNodeCommands(
      const GetNodeCommandsRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<AckCommandResponse> AckCommand(
      const AckCommandRequest&) override {
    return absl::UnimplementedError("");
  }
  std::unique_ptr<CommandStream> WatchCommands(
      const WatchCommandsRequest&, std::function<void(const NodeCommand&)>,
      std::function<void(absl::Status)> done) override {
    done(absl::UnimplementedError(""));
    return nullptr;
  }
};

RegisterNodeResponse Assigned(const std::string& id) {
  RegisterNodeResponse r;
  r.set_success(true);
  r.set_node_id(id);
  r.set_node_token("navarch-node." + id + ".x");
  return r;
}

class AskControlPlaneTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::string> Ask() {
    RegisterNodeRequest identity;
    identity.set_node_id("auto");
    identity.set_provider("lambda");
    return AskControlPlaneForNodeId(
        client_, identity, backoff_,
        [this](absl::Duration d) {
          waits_.push_back(d);
          return waits_.size() <= max_waits_;
        },
        NullLogger());
  }

  ScriptedClient client_;
  std::mt19937_64 rng_{1};
  Backoff backoff_{{absl::Seconds(1), absl::Seconds(8), 2.0, 0.0}, rng_};
  std::vector<absl::Duration> waits_;
  size_t max_waits_ = 100;
};

// The instance is recorded once its launch returns: until then the control
// plane answers UNAVAILABLE, and the agent waits longer each time.
TEST_F(AskControlPlaneTest, RetriesUntilTheInstanceIsRecorded) {
  client_.answers = {absl::UnavailableError("not recorded yet"),
                     absl::DeadlineExceededError("slow"),
                     absl::UnavailableError("not recorded yet"),
                     Assigned("0920582c7ff041399e34823a0be62549")};
  absl::StatusOr<std::string> id = Ask();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "0920582c7ff041399e34823a0be62549");
  EXPECT_THAT(waits_, ::testing::ElementsAre(absl::Seconds(1), absl::Seconds(2),
                                             absl::Seconds(4)));
  ASSERT_EQ(client_.sent.size(), 4u);
  for (const RegisterNodeRequest& r : client_.sent) {
    EXPECT_EQ(r.node_id(), "");  // the control plane assigns it
    EXPECT_EQ(r.provider(), "lambda");
  }
}

TEST_F(AskControlPlaneTest, ARefusalIsNotRetried) {
  client_.answers = {absl::PermissionDeniedError("instance i-1 is failed")};
  EXPECT_EQ(Ask().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(waits_.empty());
}

TEST_F(AskControlPlaneTest, AStopSignalEndsTheWait) {
  client_.answers = {absl::UnavailableError("a"), absl::UnavailableError("b")};
  max_waits_ = 1;
  EXPECT_EQ(Ask().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(client_.sent.size(), 2u);
}

// A control plane that predates RegisterNodeResponse.node_id answers
// without one.
TEST_F(AskControlPlaneTest, AnAnswerWithoutAnIdIsAnError) {
  RegisterNodeResponse old;
  old.set_success(true);
  client_.answers = {old};
  absl::Status s = Ask().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("did not assign a usable node id"));
}

TEST(AssignedNodeIdFileTest, SitsBesideTheNodeToken) {
  EXPECT_EQ(AssignedNodeIdFile("/var/lib/navarch-node-agent/node-token"),
            "/var/lib/navarch-node-agent/node-id");
  EXPECT_EQ(AssignedNodeIdFile("node-token"), "node-id");
  EXPECT_EQ(AssignedNodeIdFile(""), "");
  EXPECT_TRUE(IsBootstrapToken("navarch-boot.1700000000.c-train-1.AAAA"));
  EXPECT_FALSE(IsBootstrapToken("navarch-node.i-1.AAAA"));
  EXPECT_FALSE(IsBootstrapToken("agent-token"));
}

}  // namespace
}  // namespace navarch::agent
