#include "navarch/net/http_client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/net/testing/test_http_server.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

TEST(ParseUrlTest, SplitsEveryPart) {
  auto u = ParseUrl("https://sched.example.com:8443/v1/queue?p=gpu#frag");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "sched.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/v1/queue?p=gpu");
}

TEST(ParseUrlTest, DefaultsPortAndPath) {
  auto u = ParseUrl("http://localhost");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/");
  auto s = ParseUrl("HTTPS://h?x=1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->port, 443);
  EXPECT_EQ(s->target, "/?x=1");
  auto v6 = ParseUrl("http://[::1]:9090/api");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9090);
}

TEST(ParseUrlTest, RejectsWhatItCannotUse) {
  for (const char* bad : {"localhost:80", "ftp://h/", "http://", "http://:80/",
                          "http://h:0/", "http://h:99999/", "http://h:x/",
                          "http://user:pw@h/", "http://[::1/"}) {
    EXPECT_EQ(ParseUrl(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(AddQueryParamTest, UsesTheRightSeparatorAndEncodes) {
  EXPECT_EQ(AddQueryParam("http://h/s", "node_id", "gpu 1/a"),
            "http://h/s?node_id=gpu%201%2Fa");
  // Upstream appended "?" even when the URL had a query already.
  EXPECT_EQ(AddQueryParam("http://h/s?token=x", "node_id", "n"),
            "http://h/s?token=x&node_id=n");
  EXPECT_EQ(AddQueryParam("http://h/s?", "a", "b"), "http://h/s?a=b");
}

class HttpDoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    http_.server().Get(
        "/json", [](const httplib::Request& req, httplib::Response& res) {
          res.set_content(
              "{\"auth\":\"" + req.get_header_value("Authorization") + "\"}",
              "application/json");
        });
    http_.server().Post(
        "/echo", [](const httplib::Request& req, httplib::Response& res) {
          res.status = 201;
          res.set_content(req.get_header_value("Content-Type") + "|" + req.body,
                          "text/plain");
        });
    http_.server().Get("/big",
                       [](const httplib::Request&, httplib::Response& res) {
                         res.set_content(std::string(10000, 'x'), "text/plain");
                       });
    // Answers only once the test lets it (after the client gave up).
    http_.server().Get(
        "/slow", [this](const httplib::Request&, httplib::Response& res) {
          release_slow_.WaitForNotificationWithTimeout(absl::Seconds(10));
          res.set_content("late", "text/plain");
        });
    // Sends part of its body, then stalls until the test ends.
    http_.server().Get(
        "/trickle", [this](const httplib::Request&, httplib::Response& res) {
          res.set_chunked_content_provider(
              "text/plain", [this](size_t offset, httplib::DataSink& sink) {
                if (offset == 0) {
                  sink.write("x", 1);
                  trickle_started_.Notify();
                  return true;
                }
                release_slow_.WaitForNotificationWithTimeout(absl::Seconds(30));
                sink.done();
                return true;
              });
        });
    http_.Start();
  }
  void TearDown() override { release_slow_.Notify(); }
  std::string Url(const std::string& path) { return http_.Url(path); }
  absl::Notification release_slow_;
  absl::Notification trickle_started_;
  testing::TestHttpServer http_;
};

TEST_F(HttpDoTest, GetSendsHeaders) {
  HttpRequest req;
  req.url = Url("/json");
  req.headers["Authorization"] = "Bearer s3";
  auto r = HttpDo(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"auth\":\"Bearer s3\"}");
  EXPECT_EQ(r->headers["content-type"], "application/json");
}

TEST_F(HttpDoTest, PostSendsBodyAndContentType) {
  HttpRequest req;
  req.method = "POST";
  req.url = Url("/echo");
  req.body = "{\"a\":1}";
  req.content_type = "application/json";
  auto r = HttpDo(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "application/json|{\"a\":1}");
}

TEST_F(HttpDoTest, StatusCodesAreResponsesNotErrors) {
  HttpRequest req;
  req.url = Url("/missing");
  auto r = HttpDo(req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
}

TEST_F(HttpDoTest, BoundsTheResponse) {
  HttpRequest req;
  req.url = Url("/big");
  req.max_response_bytes = 1000;
  EXPECT_EQ(HttpDo(req).status().code(), absl::StatusCode::kResourceExhausted);
  req.max_response_bytes = 20000;
  EXPECT_TRUE(HttpDo(req).ok());
}

TEST_F(HttpDoTest, TimesOut) {
  HttpRequest req;
  req.url = Url("/slow");
  req.timeout = absl::Milliseconds(200);
  auto r = HttpDo(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(Url("/slow")));
  EXPECT_THAT(r.status().message(), HasSubstr("timed out"));
}

// httplib's timeouts bound each read, not the call: a server that keeps
// sending a byte now and then held a request for as long as it liked. The
// deadline is on the injected clock, so advancing it ends the call at once
// however long the server would go on.
TEST_F(HttpDoTest, TheDeadlineCoversTheWholeCallNotEachRead) {
  HttpRequest req;
  req.url = Url("/trickle");
  req.timeout = absl::Seconds(20);  // each read would wait this long
  FakeClock clock;
  req.clock = &clock;
  std::atomic<bool> done{false};
  absl::StatusOr<HttpResponse> r;
  const absl::Duration start = RealClock::Default().SteadyNow();
  std::thread call([&] {
    r = HttpDo(req);
    done = true;
  });
  trickle_started_.WaitForNotification();
  while (!done) {
    clock.Advance(absl::Seconds(1));
    std::this_thread::yield();
  }
  call.join();
  EXPECT_LT(RealClock::Default().SteadyNow() - start, absl::Seconds(10));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_THAT(r.status().message(),
              HasSubstr("timed out: no complete response within 20s"));
}

// A loopback port that nothing listens on: bound, never listened, closed.
int UnusedLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// It used to read "GET ...: Connection", which says nothing.
TEST(HttpDoRefusedTest, ConnectionRefusedSaysSo) {
  HttpRequest req;
  req.url = absl::StrCat("http://127.0.0.1:", UnusedLoopbackPort(), "/q");
  req.timeout = absl::Seconds(2);
  auto r = HttpDo(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(),
              HasSubstr(absl::StrCat("GET ", req.url, ": connection refused")));
}

TEST(HttpDoRefusedTest, BadUrlIsInvalidArgument) {
  HttpRequest req;
  req.url = "gopher://x/";
  EXPECT_EQ(HttpDo(req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace navarch
