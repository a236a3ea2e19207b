// HttpListener over real loopback sockets: admission, head and body limits,
// deadlines, the probe lane, keep-alive and pipelining, 405. Deadlines here are
// real (the poller waits on sockets), so they are short: 100s of ms.
#include "navarch/net/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int ConnectFrom(int port, const char* source = nullptr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (source != nullptr) {
    inet_pton(AF_INET, source, &addr.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return -1;
    }
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Send(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(s.size());
}

// Reads until the peer closes or `wait` passes; what arrived.
std::string ReadAll(int fd, std::chrono::milliseconds wait) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + wait;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return out;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Whether the peer closed the connection within `wait`.
bool ClosedWithin(int fd, std::chrono::milliseconds wait) {
  const auto end = std::chrono::steady_clock::now() + wait;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return true;
    }
  }
  return false;
}

class HttpListenerTest : public ::testing::Test {
 protected:
  void Start(HttpListenerOptions options = {},
             HttpListener::BodyGate gate = nullptr) {
    listener_ = std::make_unique<HttpListener>(
        Logger(sink_), std::move(gate),
        [](httplib::Response& res, const absl::Status& s) {
          res.status = 400;
          res.set_content(absl::StrCat("error: ", s.message()), "text/plain");
        });
    HttpRouter& r = listener_->router();
    r.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    r.Get("/block", [this](const httplib::Request&, httplib::Response& res) {
      blocked_.Notify();
      release_.WaitForNotification();
      res.set_content("unblocked", "text/plain");
    });
    r.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(absl::StrCat("got ", req.body.size()), "text/plain");
    });
    options.address = "127.0.0.1:0";
    ASSERT_TRUE(listener_->Start(options).ok());
    const std::string& a = listener_->address();
    ASSERT_TRUE(absl::SimpleAtoi(a.substr(a.rfind(':') + 1), &port_));
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(5, 0);
  }
  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (listener_) listener_->Stop();
  }

  RealClock clock_;
  std::ostringstream log_;
  std::shared_ptr<LogSink> sink_ = std::make_shared<LogSink>(
      &log_, LogFormat::kText, LogLevel::kDebug, &clock_);
  absl::Notification blocked_;
  absl::Notification release_;
  std::unique_ptr<HttpListener> listener_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpListenerTest, ServesKeepAliveAndPipelinedRequests) {
  Start();
  client_->set_keep_alive(true);
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Get("/healthz");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "ok");
  }
  EXPECT_EQ(listener_->stats().connections_accepted, 1);  // one, kept alive
  int fd = ConnectFrom(port_);
  ASSERT_TRUE(Send(fd,
                   "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"
                   "abc"
                   "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "\r\n"));
  const std::string got = ReadAll(fd, std::chrono::seconds(3));
  EXPECT_THAT(got, HasSubstr("\r\n\r\nok"));
  EXPECT_THAT(got, HasSubstr("got 3"));
  EXPECT_NE(got.rfind("\r\n\r\nok"), got.find("\r\n\r\nok"));  // two oks
  close(fd);
}

TEST_F(HttpListenerTest, AMethodAPathDoesNotServeIs405WithAllow) {
  Start();
  auto r = client_->Post("/healthz", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET, HEAD");
  auto missing = client_->Get("/nowhere");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpListenerTest, AHeadThatTricklesGets408AtItsDeadline) {
  HttpListenerOptions o;
  o.head_timeout = absl::Milliseconds(300);
  Start(o);
  int fd = ConnectFrom(port_);
  ASSERT_TRUE(Send(fd, "GET /healthz HTTP/1.1\r\n"));
  const auto start = std::chrono::steady_clock::now();
  std::string got;
  // One header line every 50 ms: each read is quick, the head never ends.
  for (int i = 0; i < 40 && got.empty(); ++i) {
    if (!Send(fd, absl::StrCat("X-Slow-", i, ": 1\r\n"))) break;
    got = ReadAll(fd, std::chrono::milliseconds(50));
  }
  got += ReadAll(fd, std::chrono::milliseconds(500));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(got, StartsWith("HTTP/1.1 408"));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_EQ(listener_->stats().head_timeouts, 1);
  close(fd);
}

TEST_F(HttpListenerTest, OversizedHeadsAre431) {
  HttpListenerOptions o;
  o.max_head_bytes = 1024;
  Start(o);
  int fd = ConnectFrom(port_);
  Send(fd, "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(2048, 'a'));
  EXPECT_THAT(ReadAll(fd, std::chrono::seconds(3)), StartsWith("HTTP/1.1 431"));
  close(fd);
}

TEST_F(HttpListenerTest, ConnectionsAreCappedPerClientAddressAndInAll) {
  HttpListenerOptions o;
  o.max_connections_per_client = 3;
  o.max_connections = 5;
  Start(o);
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) fds.push_back(ConnectFrom(port_));
  // Admission happens on the poller: a request on each proves it.
  for (int fd : fds) {
    Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(ReadAll(fd, std::chrono::milliseconds(300)),
                StartsWith("HTTP/1.1 200"));
  }
  int fourth = ConnectFrom(port_);
  EXPECT_THAT(ReadAll(fourth, std::chrono::seconds(2)),
              StartsWith("HTTP/1.1 503"));
  close(fourth);
  // Another client address is still admitted, up to the total.
  int other = ConnectFrom(port_, "127.0.0.2");
  ASSERT_GE(other, 0);
  Send(other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadAll(other, std::chrono::milliseconds(300)),
              StartsWith("HTTP/1.1 200"));
  int fifth = ConnectFrom(port_, "127.0.0.3");
  int sixth = ConnectFrom(port_, "127.0.0.4");
  Send(fifth, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadAll(fifth, std::chrono::milliseconds(300)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(ReadAll(sixth, std::chrono::seconds(2)),
              StartsWith("HTTP/1.1 503"));
  EXPECT_EQ(listener_->stats().refused_connection_limit, 2);
  for (int fd : {fds[0], fds[1], fds[2], other, fifth, sixth}) close(fd);
}

TEST_F(HttpListenerTest, ProbesAnswerWhileEveryWorkerIsBusy) {
  HttpListenerOptions o;
  o.threads = 1;
  Start(o);
  std::thread blocked([this] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    c.Get("/block");
  });
  blocked_.WaitForNotification();
  std::thread waiting([this] {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    auto r = c.Post("/echo", "x", "text/plain");
    EXPECT_TRUE(r);  // served once the worker is free again
  });
  for (int i = 0; i < 200 && listener_->stats().requests_waiting == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(listener_->stats().requests_waiting, 1);
  const auto start = std::chrono::steady_clock::now();
  auto r = client_->Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_THAT(log_.str(), HasSubstr("all HTTP workers are busy"));
  release_.Notify();
  blocked.join();
  waiting.join();
}

// A chunked body is cut at the limit while it is read: 413, the connection
// closed, and the memory the stream could have taken never taken.
TEST_F(HttpListenerTest, ChunkedBodiesOverTheLimitAre413WhileRead) {
  HttpListenerOptions o;
  o.max_body_bytes = 64 << 10;
  Start(o);
  int fd = ConnectFrom(port_);
  ASSERT_TRUE(Send(fd,
                   "POST /echo HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = absl::StrCat("4000\r\n", std::string(0x4000, 'z'),
                                         "\r\n");  // 16 KiB a chunk
  // The server answers at the limit and then drains what is still coming
  // for a moment, without keeping it, so the client reads the answer.
  size_t sent = 0;
  while (sent < (16u << 20) && Send(fd, chunk)) sent += 0x4000;
  EXPECT_THAT(ReadAll(fd, std::chrono::seconds(3)), StartsWith("HTTP/1.1 413"));
  EXPECT_EQ(listener_->stats().bodies_too_large, 1);
  close(fd);
  // A body within the limit, chunked, is read whole.
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Post(
      "/echo",
      [](size_t offset, httplib::DataSink& sink) {
        sink.write(std::string(1000, 'a').data(), 1000);
        if (offset + 1000 >= 3000) sink.done();
        return true;
      },
      "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "got 3000");
}

TEST_F(HttpListenerTest, TheBodyGateRunsBeforeTheBodyIsRead) {
  int gated = 0;
  Start({}, [&gated](const httplib::Request& req) {
    ++gated;
    return req.get_header_value("Authorization") == "yes"
               ? absl::OkStatus()
               : absl::UnauthenticatedError("no token");
  });
  // Expect: 100-continue gets the refusal instead of "100 Continue".
  int fd = ConnectFrom(port_);
  ASSERT_TRUE(Send(fd,
                   "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                   "Expect: 100-continue\r\n\r\n"));
  const std::string got = ReadAll(fd, std::chrono::seconds(3));
  EXPECT_THAT(got, StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(got, HasSubstr("no token"));
  close(fd);
  // A chunked body from a refused client is drained and dropped, not kept.
  fd = ConnectFrom(port_);
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_THAT(ReadAll(fd, std::chrono::seconds(2)), HasSubstr("no token"));
  close(fd);
  auto ok =
      client_->Post("/echo", {{"Authorization", "yes"}}, "abc", "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body, "got 3");
  auto empty = client_->Post("/echo", "", "text/plain");  // no body: no gate
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->body, "got 0");
  EXPECT_EQ(gated, 3);
}

TEST_F(HttpListenerTest, AmbiguousFramingIsRefused) {
  Start();
  int fd = ConnectFrom(port_);
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
       "Transfer-Encoding: chunked\r\n\r\nabc");
  EXPECT_THAT(ReadAll(fd, std::chrono::seconds(2)), HasSubstr("conflicting"));
  close(fd);
  fd = ConnectFrom(port_);
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
       "\r\n");
  EXPECT_THAT(ReadAll(fd, std::chrono::seconds(2)),
              HasSubstr("is not supported"));
  close(fd);
}

TEST_F(HttpListenerTest, IdleKeepAliveConnectionsAreClosed) {
  HttpListenerOptions o;
  o.keep_alive_timeout = absl::Milliseconds(200);
  Start(o);
  int fd = ConnectFrom(port_);
  Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadAll(fd, std::chrono::milliseconds(100)),
              StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(2)));
  close(fd);
  for (int i = 0; i < 100 && listener_->stats().connections_open > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(listener_->stats().connections_open, 0);
}

TEST_F(HttpListenerTest, StopClosesSlowAndIdleConnections) {
  Start();
  int slow = ConnectFrom(port_);
  Send(slow, "GET /healthz HTTP/1.1\r\n");
  int idle = ConnectFrom(port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  listener_->Stop();
  EXPECT_TRUE(ClosedWithin(slow, std::chrono::seconds(1)));
  EXPECT_TRUE(ClosedWithin(idle, std::chrono::seconds(1)));
  close(slow);
  close(idle);
}

TEST_F(HttpListenerTest, ATakenPortIsAClearError) {
  Start();
  HttpListener second(Logger(sink_), nullptr,
                      [](httplib::Response&, const absl::Status&) {});
  HttpListenerOptions o;
  o.address = listener_->address();
  absl::Status s = second.Start(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("already in use"));
}

}  // namespace
}  // namespace navarch
