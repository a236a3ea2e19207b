// An HTTP/1.1 listener that a hostile client cannot exhaust: it owns the
// sockets, TLS, connection admission, deadlines and worker threads, and lets
// cpp-httplib parse requests, route them and write responses.
//
// Why not cpp-httplib's own server (Debian ships 0.11): it gives every
// connection a worker thread from the moment it is accepted, so 32 clients
// that trickle header lines freeze every endpoint, probes included; its
// timeouts are per read, not deadlines; and it reads a chunked body whole
// before any handler can look at the request. Here:
//
//   - One poller thread accepts connections and reads request heads without
//     blocking. A connection holds no worker until its whole head (request
//     line and headers, at most `max_head_bytes`) has arrived, within
//     `head_timeout` of its first byte; idle keep-alive connections go back to
//     the poller. Past the deadline: 408 and close; past the size: 431.
//   - Connections are admitted up to `max_connections` in all and
//     `max_connections_per_client` per peer address; past either, an
//     immediate 503 and close.
//   - A request with a body passes the body gate (the caller's check of its
//     headers: authentication) before a byte of the body is read, and a body
//     over `max_body_bytes` gets 413 and a closed connection while it is read,
//     chunked or not. Bodies must arrive within `body_timeout`.
//   - `threads` workers serve requests; GET requests for `priority_paths`
//     (the probes) have a worker of their own, so a busy or stuck pool never
//     makes a liveness probe fail.
//
// Memory held for requests is bounded: max_connections * max_head_bytes for
// heads, (threads + 1) * max_body_bytes for bodies.
#ifndef NAVARCH_NET_HTTP_LISTENER_H_
#define NAVARCH_NET_HTTP_LISTENER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "navarch/base/logging.h"

namespace navarch {

struct HttpListenerOptions {
  std::string address = ":8080";  // host:port; port 0: any free port
  // Sets up the TLS context (certificates, verification); empty: plain HTTP.
  std::function<bool(SSL_CTX&)> tls;
  int threads = 32;
  int max_connections = 1024;
  int max_connections_per_client = 128;  // 0: no per-address cap
  size_t max_head_bytes = 16 << 10;
  size_t max_body_bytes = 4 << 20;
  absl::Duration head_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(10);
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  int max_requests_per_connection = 100;
  std::vector<std::string> priority_paths = {"/healthz", "/readyz"};
};

// Counters since Start, for metrics and tests.
struct HttpListenerStats {
  int64_t connections_open = 0;
  int64_t connections_accepted = 0;
  int64_t refused_connection_limit = 0;  // max_connections or per client
  int64_t head_timeouts = 0;             // 408
  int64_t heads_too_large = 0;           // 431
  int64_t bodies_too_large = 0;          // 413
  int64_t requests_waiting = 0;          // heads complete, no worker yet
};

// cpp-httplib's router and request processor: register routes on it as on an
// httplib::Server (which it is); the listener feeds it one request at a time.
// Routes registered through its own Get/Post/... are remembered, so that a
// path served for other methods answers 405 with Allow.
class HttpRouter : public httplib::Server {
 public:
  HttpRouter();
  ~HttpRouter() override;

  HttpRouter& Get(const std::string& pattern, Handler handler);
  HttpRouter& Post(const std::string& pattern, Handler handler);
  HttpRouter& Put(const std::string& pattern, Handler handler);
  HttpRouter& Delete(const std::string& pattern, Handler handler);

  // The methods routed for `path`, in registration order ("GET", "POST");
  // empty when no route matches it.
  std::vector<std::string> AllowedMethods(const std::string& path) const;

  // Reads, routes and answers one request from `stream` (the head must be
  // complete in it). False when the connection cannot be used again.
  bool ServeOne(httplib::Stream& stream, bool close_connection,
                bool& connection_closed,
                const std::function<void(httplib::Request&)>& setup);
  // httplib ends streamed responses once its listening socket is gone;
  // without its accept loop that socket is this placeholder, set while the
  // listener serves.
  void SetServing(bool serving);

 private:
  int placeholder_fd_ = -1;
  void Remember(const char* method, const std::string& pattern);
  std::vector<std::pair<std::string, std::regex>> routes_;
};

class HttpListener {
 public:
  // Checks the head of a request that has a body, before the body is read:
  // an error is answered (WriteError's body via the error writer) and the
  // connection closed.
  using BodyGate = std::function<absl::Status(const httplib::Request&)>;
  // Writes an error response (the caller's JSON error shape).
  using ErrorWriter =
      std::function<void(httplib::Response&, const absl::Status&)>;

  HttpListener(Logger log, BodyGate gate, ErrorWriter write_error);
  ~HttpListener();  // Stop()s.
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Routes go here, before Start. Its pre-routing, expect-100 and error
  // handlers belong to the listener: set the error handler through
  // set_error_handler below.
  HttpRouter& router() { return router_; }
  // Runs for httplib's and the listener's refusals (404, 405, 413, 400...)
  // with no body yet.
  void set_error_handler(httplib::Server::HandlerWithResponse handler) {
    error_handler_ = std::move(handler);
  }

  // Binds (UNAVAILABLE naming the address when taken) and starts the poller
  // and the workers. Call once.
  absl::Status Start(const HttpListenerOptions& options);
  // Stops accepting, closes idle connections, lets the requests in flight
  // finish and joins every thread. Idempotent.
  void Stop();

  // "host:port" actually bound (the real port when 0 was asked); a wildcard
  // host is reported as bound ("0.0.0.0:8080", "[::]:8080").
  const std::string& address() const { return address_; }
  // An address a local client can reach it at ("127.0.0.1:8080" for a
  // wildcard).
  const std::string& local_address() const { return local_address_; }
  HttpListenerStats stats() const;

  class Impl;

 private:
  // Installs the pre-routing, expect-100 and error handlers on the router.
  void InstallHandlers();
  // Why the head of a request with a body is refused; OK to read the body.
  absl::Status CheckHead(const httplib::Request& req, int* http_status) const;
  httplib::Server::HandlerResponse OnError(const httplib::Request& req,
                                           httplib::Response& res);
  // A whole response for the poller to write: the error body, Connection:
  // close.
  std::string CannedResponse(int code, const absl::Status& why) const;

  Logger log_;
  BodyGate gate_;
  ErrorWriter write_error_;
  httplib::Server::HandlerWithResponse error_handler_;
  size_t max_body_bytes_ = 0;
  HttpRouter router_;
  std::unique_ptr<Impl> impl_;
  std::string address_;
  std::string local_address_;
};

}  // namespace navarch

#endif  // NAVARCH_NET_HTTP_LISTENER_H_
