// What a follower replica serves on the HTTP port (docs/deployment.md): its
// own /healthz, /readyz and /metrics, and every other request forwarded to
// the leader's HTTP address and answered with the leader's response, so a
// load balancer may send any request to any replica.
//
// /readyz is ready when the store answers and a leader is known: the
// follower can then answer (through the leader) what it is asked. Requests
// are forwarded whole (bodies and responses in memory, within the same
// limits as the leader's); Connect streams (WatchCommands over HTTP) are
// not forwarded: they answer UNAVAILABLE, and the client retries, reaching
// the leader through the balancer (agents stream over gRPC, which is
// forwarded: grpc_forwarder.h). A request already forwarded once is
// refused: two replicas that each believe the other leads must not bounce
// it between them.
#ifndef NAVARCH_CONTROLPLANE_FOLLOWER_HTTP_H_
#define NAVARCH_CONTROLPLANE_FOLLOWER_HTTP_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "navarch/base/logging.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/http_server.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/net/http_listener.h"
#include "navarch/store/store.h"

namespace navarch {

// The header a forwarded request carries: the forwarding replica's id.
inline constexpr char kForwardedByHttpHeader[] = "X-Navarch-Forwarded-By";

struct FollowerHttpOptions {
  std::string replica_id;
  // The leader's base URL ("http://host:port" or "https://..."), "" while
  // none is known. Called for every forwarded request; must be cheap.
  std::function<std::string()> leader;
  // A PEM CA bundle to verify the leader's certificate (https).
  std::string ca_file;
  absl::Duration timeout = absl::Seconds(60);
};

class FollowerHttp {
 public:
  // Everything passed in must outlive the server.
  FollowerHttp(const Authenticator& auth, Store& store,
               MetricsRegistry& registry, Logger log,
               FollowerHttpOptions options);
  ~FollowerHttp();  // Stop()s

  // Binds `server.address` with the same limits and TLS as the leader's
  // HTTP server; UNAVAILABLE naming the address when taken. Call once.
  absl::Status Start(const HttpServerOptions& server);
  void Stop();

  const std::string& address() const { return listener_.local_address(); }
  const std::string& bound_address() const { return listener_.address(); }
  int64_t forwarded() const { return forwarded_.load(); }

 private:
  void Forward(const httplib::Request& req, httplib::Response& res);

  const Authenticator& auth_;
  Store& store_;
  MetricsRegistry& registry_;
  Logger log_;
  const FollowerHttpOptions options_;
  HttpListener listener_;
  std::atomic<int64_t> forwarded_{0};
  bool started_ = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_FOLLOWER_HTTP_H_
