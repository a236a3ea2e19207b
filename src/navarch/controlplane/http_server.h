// The HTTP listener (server.http_address): probes, /metrics, REST under
// /api/v1 and the Connect protocol, over HTTP/1.1, optionally TLS.
//
//   /healthz  200 "ok" while the process serves
//   /readyz   200 "ready" when the store answers; 503 with the reason when
//             it does not, and from the start of a shutdown
//   /metrics  Prometheus text format (docs/metrics.md)
//
// HttpListener (net/http_listener.h) owns the sockets and bounds what a client
// can hold: connections in all and per address, a deadline for each request
// head and body, the body size (413, chunked or not), a worker lane of their
// own for the probes. A request with a body must authenticate from its
// headers before the body is read. cpp-httplib routes and writes responses;
// handlers block on the fleet core (which answers after the commit) but never
// hold locks of ours while they do. Compressed request bodies are refused
// (they could inflate without bound). docs/security.md lists the limits.
#ifndef NAVARCH_CONTROLPLANE_HTTP_SERVER_H_
#define NAVARCH_CONTROLPLANE_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/controlplane/agent_download.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/connect_api.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/rest_api.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/controlplane/tls.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/net/http_listener.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/store/store.h"

namespace navarch {

struct HttpServerOptions {
  std::string address = ":8080";     // host:port; port 0: any free port
  const TlsMaterial* tls = nullptr;  // null: plain HTTP
  size_t max_body_bytes = 4 << 20;
  // The largest list answered without page_size (paging.h).
  size_t max_response_bytes = kMaxResponseBytes;
  // Workers for requests whose head has arrived (plus one for probes).
  int threads = 32;
  int max_connections = 1024;
  int max_connections_per_client = 128;  // 0: no per-address cap
  absl::Duration head_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(10);
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  int max_requests_per_connection = 100;
  // The agent files served under /api/v1/agent/ (agent_download.h).
  AgentDownloadOptions agent;
};

// The listener's options for `options` (TLS, limits); the follower's HTTP
// server (follower_http.h) uses the same.
HttpListenerOptions ListenerOptionsOf(const HttpServerOptions& options);

// /healthz, /readyz and /metrics on `router`, open or authenticated as
// `auth` says (auth.protect_probes, auth.protect_metrics). `not_ready` says
// why the server cannot answer now ("" when it can): /readyz is then 503
// with the reason. The follower's HTTP server (follower_http.h) uses the
// same.
void AddProbeRoutes(HttpRouter& router, const Authenticator& auth,
                    MetricsRegistry& registry,
                    std::function<std::string()> not_ready);

class HttpServer {
 public:
  // Everything passed in must outlive the server. `pools` may be null (no
  // pools managed), `providers` too (the provider routes answer 501).
  HttpServer(FleetService& fleet, Store& store, const Authenticator& auth,
             MetricsRegistry& registry, RpcMetrics& rpc, Clock& clock,
             Logger log, PoolManager* pools = nullptr,
             ProviderApi* providers = nullptr,
             const ClusterStatus* cluster = nullptr);
  ~HttpServer();  // Stop()s.

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (UNAVAILABLE naming the address when taken) and serves on a thread
  // of its own. Call once.
  absl::Status Start(const HttpServerOptions& options);
  // /readyz answers 503 from now on, so load balancers move away while the
  // control plane finishes its calls.
  void SetDraining() { draining_ = true; }
  // Stops listening, finishes the requests in flight and joins the workers.
  // Idempotent.
  void Stop();

  // "host:port" to reach it at (the real port when 0 was asked; 127.0.0.1
  // for a wildcard host).
  const std::string& address() const { return listener_.local_address(); }
  // "host:port" bound, wildcard included ("0.0.0.0:8080"): what the log says.
  const std::string& bound_address() const { return listener_.address(); }
  HttpListenerStats stats() const { return listener_.stats(); }

 private:
  void AddRoutes(const HttpServerOptions& options);
  // navarch_http_* families from the listener's counters.
  void AddListenerMetrics();

  Store& store_;
  const Authenticator& auth_;
  MetricsRegistry& registry_;
  Logger log_;
  HttpApiContext ctx_;
  RestApi rest_;
  ConnectApi connect_;
  std::unique_ptr<AgentDownloads> agent_;
  HttpListener listener_;
  // The metrics collector outlives the server in the registry: it reads the
  // listener through this, which the destructor empties.
  struct StatsSource {
    absl::Mutex mu;
    const HttpListener* listener ABSL_GUARDED_BY(mu) = nullptr;
  };
  std::shared_ptr<StatsSource> stats_source_ = std::make_shared<StatsSource>();
  std::atomic<bool> draining_{false};
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_HTTP_SERVER_H_
