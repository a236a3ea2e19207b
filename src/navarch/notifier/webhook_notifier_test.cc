#include "navarch/notifier/webhook_notifier.h"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/net/testing/test_http_server.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

// A workload system's webhook receiver, on a port of its own.
class Receiver {
 public:
  Receiver() {
    for (const char* path :
         {"/cordon", "/uncordon", "/drain", "/fail", "/bad-request"}) {
      http_.server().Post(path, [this, path](const httplib::Request& req,
                                             httplib::Response& res) {
        absl::MutexLock lock(&mu_);
        posts.push_back({path, req.body, req.get_header_value("Content-Type"),
                         req.get_header_value("X-Api-Key"),
                         req.get_header_value_count("Content-Type")});
        if (std::string(path) == "/fail") {
          res.status = 503;
          res.set_content("overloaded", "text/plain");
        } else if (std::string(path) == "/bad-request") {
          res.status = 400;
          res.set_content("no such node", "text/plain");
        } else {
          res.status = 204;
        }
      });
    }
    http_.server().Get(
        "/status", [this](const httplib::Request& req, httplib::Response& res) {
          absl::MutexLock lock(&mu_);
          last_query = req.get_param_value("node_id");
          extra_query = req.get_param_value("cluster");
          res.set_content(status_body, "application/json");
        });
    http_.Start();
  }
  std::string Url(const std::string& p) const { return http_.Url(p); }
  struct Post {
    std::string path, body, content_type, api_key;
    size_t content_types = 0;  // Content-Type headers sent
  };
  absl::Mutex mu_;
  std::vector<Post> posts;
  std::string last_query, extra_query;
  std::string status_body = R"({"drained": false, "message": "3 jobs"})";

 private:
  // Last: stopped first, before what its handlers use.
  testing::TestHttpServer http_;
};

class WebhookNotifierTest : public ::testing::Test {
 protected:
  WebhookConfig Config() {
    WebhookConfig c;
    c.cordon_url = r_.Url("/cordon");
    c.uncordon_url = r_.Url("/uncordon");
    c.drain_url = r_.Url("/drain");
    c.drain_status_url = r_.Url("/status?cluster=prod");
    c.timeout = absl::Seconds(5);
    c.headers["X-Api-Key"] = "k1";
    return c;
  }
  Receiver r_;
  FakeClock clock_{absl::FromUnixSeconds(1767225600)};  // 2026-01-01
};

TEST_F(WebhookNotifierTest, PostsUpstreamsPayload) {
  WebhookNotifier n(Config(), clock_);
  ASSERT_TRUE(n.Cordon("gpu-7", "XID 79").ok());
  ASSERT_TRUE(n.Drain("gpu-7", "XID 79").ok());
  ASSERT_TRUE(n.Uncordon("gpu-7").ok());
  absl::MutexLock lock(&r_.mu_);
  ASSERT_EQ(r_.posts.size(), 3u);
  EXPECT_EQ(r_.posts[0].path, "/cordon");
  EXPECT_EQ(r_.posts[0].content_type, "application/json");
  EXPECT_EQ(r_.posts[0].content_types, 1u);
  EXPECT_EQ(r_.posts[0].api_key, "k1");
  auto j = nlohmann::json::parse(r_.posts[0].body);
  EXPECT_EQ(j["event"], "cordon");
  EXPECT_EQ(j["node_id"], "gpu-7");
  EXPECT_EQ(j["reason"], "XID 79");
  EXPECT_EQ(j["timestamp"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(nlohmann::json::parse(r_.posts[1].body)["event"], "drain");
  // No reason on uncordon: the key is left out, as upstream.
  auto u = nlohmann::json::parse(r_.posts[2].body);
  EXPECT_EQ(u["event"], "uncordon");
  EXPECT_FALSE(u.contains("reason"));
}

TEST_F(WebhookNotifierTest, ARetriedNoticeKeepsItsIdAndTheEventsTime) {
  WebhookConfig c = Config();
  c.cordon_url = r_.Url("/fail");
  WebhookNotifier n(c, clock_);
  Notice notice{NoticeType::kCordon, "gpu-7", "XID 79", "event-42",
                absl::FromUnixSeconds(1767222000)};  // 2025-12-31T23:00:00Z
  EXPECT_FALSE(n.Notify(notice).ok());
  clock_.Advance(absl::Minutes(5));  // the dispatcher's backoff
  EXPECT_FALSE(n.Notify(notice).ok());
  absl::MutexLock lock(&r_.mu_);
  ASSERT_EQ(r_.posts.size(), 2u);
  for (const auto& post : r_.posts) {
    auto j = nlohmann::json::parse(post.body);
    EXPECT_EQ(j["id"], "event-42");
    EXPECT_EQ(j["timestamp"], "2025-12-31T23:00:00Z");
    EXPECT_EQ(j["event"], "cordon");
  }
}

TEST_F(WebhookNotifierTest, AReceiverThatNeverAnswersHitsTheDeadline) {
  testing::TestHttpServer silent;
  absl::Notification release;
  silent.server().Post(
      "/hang", [&](const httplib::Request&, httplib::Response& res) {
        release.WaitForNotificationWithTimeout(absl::Seconds(10));
        res.status = 204;
      });
  silent.Start();
  WebhookConfig c;
  c.drain_url = silent.Url("/hang");
  c.timeout = absl::Milliseconds(300);
  WebhookNotifier n(c, clock_);
  absl::Status s = n.Drain("gpu-7", "");
  release.Notify();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST_F(WebhookNotifierTest, EmptyUrlsSkip) {
  WebhookNotifier n(WebhookConfig{}, clock_);
  EXPECT_TRUE(n.Cordon("a", "r").ok());
  EXPECT_TRUE(n.Uncordon("a").ok());
  EXPECT_TRUE(n.Drain("a", "r").ok());
  auto d = n.IsDrained("a");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(*d);
  absl::MutexLock lock(&r_.mu_);
  EXPECT_TRUE(r_.posts.empty());
}

TEST_F(WebhookNotifierTest, ErrorsCarryTheStatusAndBody) {
  WebhookConfig c = Config();
  c.cordon_url = r_.Url("/fail");
  c.drain_url = r_.Url("/bad-request");
  WebhookNotifier n(c, clock_);
  absl::Status s = n.Cordon("a", "r");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);  // Retryable.
  EXPECT_THAT(s.message(), HasSubstr("webhook returned 503: overloaded"));
  absl::Status d = n.Drain("a", "r");
  EXPECT_EQ(d.code(), absl::StatusCode::kFailedPrecondition);  // Not.
  EXPECT_THAT(d.message(), HasSubstr("400: no such node"));
}

TEST_F(WebhookNotifierTest, IsDrainedKeepsTheUrlsOwnQuery) {
  WebhookNotifier n(Config(), clock_);
  auto d = n.IsDrained("gpu 7");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(*d);
  {
    absl::MutexLock lock(&r_.mu_);
    EXPECT_EQ(r_.last_query, "gpu 7");
    EXPECT_EQ(r_.extra_query, "prod");
    r_.status_body = R"({"drained": true})";
  }
  d = n.IsDrained("gpu 7");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(*d);
  {
    absl::MutexLock lock(&r_.mu_);
    r_.status_body = R"({"drained": "yes"})";
  }
  EXPECT_EQ(n.IsDrained("x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WebhookNotifierTest, UnreachableReceiverIsAnError) {
  WebhookConfig c;
  c.cordon_url = "http://127.0.0.1:1/cordon";
  c.timeout = absl::Seconds(2);
  WebhookNotifier n(c, clock_);
  EXPECT_FALSE(n.Cordon("a", "").ok());
}

TEST(WebhookValidateTest, NamesTheBadKey) {
  WebhookConfig c;
  c.drain_url = "ftp://x/";
  absl::Status s = WebhookNotifier::Validate(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("server.notifier.webhook.drain_url"));
  c.drain_url = "https://sched/drain";
  EXPECT_TRUE(WebhookNotifier::Validate(c).ok());
}

}  // namespace
}  // namespace navarch
