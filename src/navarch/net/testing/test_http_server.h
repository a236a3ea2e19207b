// An HTTP server on a free loopback port for tests of outbound HTTP (the
// client, webhooks, metrics sources). Register handlers on server(), then
// Start(); the destructor stops it. Test-only.
#ifndef NAVARCH_NET_TESTING_TEST_HTTP_SERVER_H_
#define NAVARCH_NET_TESTING_TEST_HTTP_SERVER_H_

#include <httplib.h>

#include <string>
#include <thread>

namespace navarch::testing {

class TestHttpServer {
 public:
  TestHttpServer() = default;
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;
  ~TestHttpServer() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  httplib::Server& server() { return server_; }

  // Binds port 0 and serves on a thread; returns once it accepts.
  void Start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs: wait for it.
    while (!server_.is_running()) std::this_thread::yield();
  }

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace navarch::testing

#endif  // NAVARCH_NET_TESTING_TEST_HTTP_SERVER_H_
