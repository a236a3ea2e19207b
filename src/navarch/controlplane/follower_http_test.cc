// FollowerHttp against a stand-in leader (an httplib server on loopback):
// what it forwards, what it answers itself, and what it refuses.
#include "navarch/controlplane/follower_http.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

class FollowerHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    leader_.Get("/api/v1/nodes",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Seen(req);
                  res.status = 200;
                  res.set_header("ETag", "\"n1\"");
                  res.set_content("[{\"node_id\":\"n1\"}]", "application/json");
                });
    leader_.Post("/api/v1/nodes/n1/cordon",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   Seen(req);
                   res.status = 409;
                   res.set_content("{\"error\":\"busy\"}", "application/json");
                 });
    leader_port_ = leader_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(leader_port_, 0);
    leader_thread_ = std::thread([this] { leader_.listen_after_bind(); });
    auto auth = Authenticator::Create(AuthConfig{}, false);
    ASSERT_TRUE(auth.ok());
    auth_ = std::move(*auth);
    FollowerHttpOptions o;
    o.replica_id = "cp2";
    o.leader = [this] {
      absl::MutexLock lock(&mu_);
      return leader_url_;
    };
    follower_ = std::make_unique<FollowerHttp>(*auth_, store_, registry_,
                                               NullLogger(), std::move(o));
    HttpServerOptions http;
    http.address = "127.0.0.1:0";
    ASSERT_TRUE(follower_->Start(http).ok());
    client_ = std::make_unique<httplib::Client>(follower_->address());
  }
  void TearDown() override {
    follower_->Stop();
    leader_.stop();
    leader_thread_.join();
  }
  void SetLeader(bool known) {
    absl::MutexLock lock(&mu_);
    leader_url_ =
        known ? "http://127.0.0.1:" + std::to_string(leader_port_) : "";
  }
  void Seen(const httplib::Request& req) {
    absl::MutexLock lock(&mu_);
    seen_ = req;
  }
  httplib::Request LastSeen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

  httplib::Server leader_;
  int leader_port_ = 0;
  std::thread leader_thread_;
  MemoryStore store_;
  MetricsRegistry registry_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<FollowerHttp> follower_;
  std::unique_ptr<httplib::Client> client_;
  absl::Mutex mu_;
  std::string leader_url_ ABSL_GUARDED_BY(mu_);
  httplib::Request seen_ ABSL_GUARDED_BY(mu_);
};

TEST_F(FollowerHttpTest, ForwardsRequestsAndAnswersWithTheLeadersResponse) {
  SetLeader(true);
  auto got = client_->Get("/api/v1/nodes?pool=dev&page_size=5",
                          {{"Authorization", "Bearer t0k"}});
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "[{\"node_id\":\"n1\"}]");
  EXPECT_EQ(got->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(got->get_header_value("ETag"), "\"n1\"");
  httplib::Request seen = LastSeen();
  EXPECT_EQ(seen.get_param_value("pool"), "dev");
  EXPECT_EQ(seen.get_param_value("page_size"), "5");
  EXPECT_EQ(seen.get_header_value("Authorization"), "Bearer t0k");
  EXPECT_EQ(seen.get_header_value(kForwardedByHttpHeader), "cp2");

  // A body goes, and the leader's error status comes back as it was.
  auto posted = client_->Post("/api/v1/nodes/n1/cordon", "{\"reason\":\"r\"}",
                              "application/json");
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 409);
  EXPECT_EQ(posted->body, "{\"error\":\"busy\"}");
  EXPECT_EQ(LastSeen().body, "{\"reason\":\"r\"}");
  EXPECT_EQ(follower_->forwarded(), 2);
}

TEST_F(FollowerHttpTest, WithoutALeaderItIsNotReadyAndAsksToRetry) {
  auto ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("no leader"), std::string::npos);
  auto got = client_->Get("/api/v1/nodes");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 503);
  EXPECT_NE(got->body.find("no leader elected yet"), std::string::npos);
  SetLeader(true);
  ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  // Probes and metrics are its own, never forwarded.
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(follower_->forwarded(), 0);
}

TEST_F(FollowerHttpTest, RefusesLoopsAndConnectStreamsAndADeadLeader) {
  SetLeader(true);
  auto loop = client_->Get("/api/v1/nodes", {{kForwardedByHttpHeader, "cp3"}});
  ASSERT_TRUE(loop);
  EXPECT_EQ(loop->status, 503);
  EXPECT_NE(loop->body.find("forwarding loop"), std::string::npos);
  auto stream = client_->Post("/navarch.ControlPlaneService/WatchCommands",
                              std::string(5, '\0'), "application/connect+json");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->status, 503);
  EXPECT_NE(stream->body.find("Connect streams"), std::string::npos);
  // The leader went away.
  {
    absl::MutexLock lock(&mu_);
    leader_url_ = "http://127.0.0.1:1";
  }
  auto dead = client_->Get("/api/v1/nodes");
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->status, 503);
  EXPECT_NE(dead->body.find("the leader did not answer"), std::string::npos);
  EXPECT_EQ(follower_->forwarded(), 0);
}

}  // namespace
}  // namespace navarch
