// CloudHttp against a loopback server that answers what each test scripts.
#include "navarch/provider/cloud/cloud_http.h"

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

struct Scripted {
  int status;
  std::string body;
  std::string retry_after;
};

class CloudHttpTest : public ::testing::Test, public CloudCallObserver {
 protected:
  void SetUp() override {
    server_.Post(
        "/op", [this](const httplib::Request& req, httplib::Response& res) {
          absl::MutexLock lock(&mu_);
          seen_auth_.push_back(req.get_header_value("Authorization"));
          Scripted next =
              script_.empty() ? Scripted{200, "ok", ""} : script_.front();
          if (!script_.empty()) script_.pop_front();
          res.status = next.status;
          if (!next.retry_after.empty()) {
            res.set_header("Retry-After", next.retry_after);
          }
          res.set_content(next.body, "application/json");
        });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }
  void OnCall(absl::string_view provider, absl::string_view operation,
              absl::string_view result, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back(absl::StrCat(provider, "/", operation, "/", result));
  }

  CloudHttp Make(int attempts = 4) {
    CloudHttpOptions o;
    o.provider = "lambda";
    o.observer = this;
    o.max_attempts = attempts;
    o.backoff = {absl::Seconds(1), absl::Seconds(8), 2.0, 0};
    o.sleep = [this](absl::Duration d) { slept_.push_back(d); };
    return CloudHttp(o);
  }
  HttpRequest Op() {
    HttpRequest r;
    r.method = "POST";
    r.url = absl::StrCat("http://127.0.0.1:", port_, "/op");
    r.body = "{}";
    r.content_type = "application/json";
    return r;
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  std::deque<Scripted> script_;
  std::vector<std::string> seen_auth_;
  std::vector<std::string> calls_;
  std::vector<absl::Duration> slept_;
};

TEST_F(CloudHttpTest, RetriesServerErrorsWithBackoffAndSignsEachAttempt) {
  script_ = {{503, "busy", ""}, {500, "oops", ""}};
  CloudHttp http = Make();
  int signed_times = 0;
  auto r = http.Call("launch", Op(), [&](HttpRequest& req) {
    req.headers["Authorization"] = absl::StrCat("Bearer t", ++signed_times);
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(slept_, ElementsAre(absl::Seconds(1), absl::Seconds(2)));
  EXPECT_THAT(seen_auth_, ElementsAre("Bearer t1", "Bearer t2", "Bearer t3"));
  EXPECT_THAT(calls_, ElementsAre("lambda/launch/5xx", "lambda/launch/5xx",
                                  "lambda/launch/ok"));
}

TEST_F(CloudHttpTest, HonoursRetryAfterOn429UpToALimit) {
  script_ = {{429, "slow down", "5"}};
  CloudHttp http = Make();
  auto r = http.Call("launch", Op());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(slept_, ElementsAre(absl::Seconds(5)));
  // Asked to wait longer than max_retry_after: the 429 is the answer.
  script_ = {{429, "come back tomorrow", "86400"}};
  slept_.clear();
  auto r2 = http.Call("launch", Op());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->status, 429);
  EXPECT_TRUE(slept_.empty());
}

TEST_F(CloudHttpTest, NeverRetriesARequestThatWasWrong) {
  script_ = {{400, R"({"error":{"code":"global/invalid-parameters"}})", ""}};
  CloudHttp http = Make();
  auto r = http.Call("launch", Op());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(slept_.empty());
  EXPECT_THAT(calls_, ElementsAre("lambda/launch/4xx"));
}

TEST_F(CloudHttpTest, ACustomRetryRuleCoversThrottlingThatComesAs400) {
  script_ = {{400, "<Code>RequestLimitExceeded</Code>", ""}};
  CloudHttp http = Make();
  auto r =
      http.Call("RunInstances", Op(), nullptr, [](const HttpResponse& res) {
        return res.body.find("RequestLimitExceeded") != std::string::npos;
      });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(slept_.size(), 1u);
}

TEST_F(CloudHttpTest, NetworkFailuresAreRetriedThenUnavailableWithoutSecrets) {
  CloudHttp http = Make(3);
  http.redactor().Add("secret-key-123");
  HttpRequest r = Op();
  server_.stop();  // nothing listens any more
  r.url = absl::StrCat("http://127.0.0.1:", port_, "/op?key=secret-key-123");
  auto res = http.Call("launch", r);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(res.status().message(), Not(HasSubstr("secret-key-123")));
  EXPECT_THAT(res.status().message(), HasSubstr("lambda launch"));
  EXPECT_EQ(slept_.size(), 2u);
  EXPECT_THAT(calls_,
              ElementsAre("lambda/launch/network", "lambda/launch/network",
                          "lambda/launch/network"));
}

TEST_F(CloudHttpTest, ASigningFailureStopsTheCall) {
  CloudHttp http = Make();
  auto r = http.Call("launch", Op(), [](HttpRequest&) {
    return absl::UnauthenticatedError("no credentials");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(calls_.empty());
}

TEST(CloudErrorTest, CarriesScopeCodeAndPlaceInPayloadAndMessage) {
  CloudErrorInfo info;
  info.scope = CloudErrorScope::kZone;
  info.cloud_code = "ZONE_RESOURCE_POOL_EXHAUSTED";
  info.region = "us-central1";
  info.zone = "us-central1-a";
  const absl::Status s =
      CloudError(absl::StatusCode::kResourceExhausted, "gcp", info,
                 "The zone does not have enough resources");
  EXPECT_EQ(s.message(),
            "gcp us-central1/us-central1-a: ZONE_RESOURCE_POOL_EXHAUSTED: The "
            "zone does not have enough resources");
  std::optional<CloudErrorInfo> back = CloudErrorInfoOf(s);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->scope, CloudErrorScope::kZone);
  EXPECT_EQ(back->cloud_code, "ZONE_RESOURCE_POOL_EXHAUSTED");
  EXPECT_EQ(back->zone, "us-central1-a");
  EXPECT_FALSE(back->quota);
  EXPECT_FALSE(CloudErrorInfoOf(absl::InternalError("x")));
}

TEST(RetryAfterTest, SecondsAndHttpDates) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  EXPECT_EQ(ParseRetryAfter("12", now), absl::Seconds(12));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:13:40 GMT", now),
            absl::Seconds(20));
  EXPECT_FALSE(ParseRetryAfter("soon", now));
  EXPECT_FALSE(ParseRetryAfter("-3", now));
}

TEST(RedactorTest, KeepsEachSecretOnceAndOnlyTheLastRotatingOnes) {
  Redactor r;
  r.Add("api-key-1234");
  r.Add("api-key-1234");
  EXPECT_EQ(r.size(), 1u);
  for (size_t i = 0; i < Redactor::kRotatingKept + 5; ++i) {
    r.AddRotating(absl::StrCat("token-", i, "-abcdef"));
    r.AddRotating(absl::StrCat("token-", i, "-abcdef"));  // no duplicate
  }
  EXPECT_EQ(r.size(), 1u + Redactor::kRotatingKept);
  const std::string newest =
      absl::StrCat("token-", Redactor::kRotatingKept + 4, "-abcdef");
  EXPECT_EQ(r(absl::StrCat("key api-key-1234 token ", newest)),
            "key [redacted] token [redacted]");
  // The permanent key is never pushed out by tokens.
  EXPECT_EQ(r("api-key-1234"), "[redacted]");
  // The oldest token was dropped.
  EXPECT_EQ(r("token-0-abcdef"), "token-0-abcdef");
  r.Add("abc");  // too short to look for
  EXPECT_EQ(r.size(), 1u + Redactor::kRotatingKept);
}

}  // namespace
}  // namespace navarch
