// The control plane, wired: store, fleet core, controllers, the gRPC and HTTP
// listeners with their authentication, TLS and metrics.
// apps/control-plane/main.cc only parses flags, installs signal handling and
// calls this.
#ifndef NAVARCH_CONTROLPLANE_SERVER_H_
#define NAVARCH_CONTROLPLANE_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/controllers/periodic.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/grpc_service.h"
#include "navarch/controlplane/health_reporter.h"
#include "navarch/controlplane/http_server.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/provider_api.h"
#include "navarch/controlplane/provider_metrics.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/controlplane/tls.h"
#include "navarch/controlplane/worker.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/health/evaluator.h"
#include "navarch/notifier/dispatcher.h"
#include "navarch/notifier/notifier.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/provider/registry.h"
#include "navarch/store/store.h"

namespace navarch {

// ":50051" (Go style: every interface) -> "[::]:50051"; others unchanged.
std::string GrpcListenAddress(const std::string& address);

class ControlPlaneServer {
 public:
  // `config` must have been through ResolveConfig().
  ControlPlaneServer(Config config, Clock& clock, Logger log);
  ~ControlPlaneServer();

  // Reads the token secrets and TLS files, opens the store, loads the fleet,
  // starts the controllers and listens (gRPC, then HTTP). A taken port fails
  // at once with UNAVAILABLE naming the address; a missing secret or a bad
  // certificate with FAILED_PRECONDITION naming the setting.
  absl::Status Start();

  // Stops accepting calls, finishes the ones in flight (up to `grace`), stops
  // the controllers, flushes and closes the store. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

  // Loads server.health_policy again (SIGHUP). A valid policy replaces the
  // old one atomically; an invalid one is rejected, the old one stays, and
  // the error is returned (and logged).
  absl::Status ReloadPolicy();

  // "host:port" the gRPC listener is bound to (the real port when 0 was asked).
  const std::string& grpc_address() const { return grpc_address_; }
  // "host:port" of the HTTP listener, likewise.
  const std::string& http_address() const { return http_address_; }
  FleetService& fleet() { return *fleet_; }
  // The largest list answered without page_size over any transport
  // (paging.h); tests make it small. Call before Start.
  void set_max_response_bytes(size_t bytes) { max_response_bytes_ = bytes; }
  MetricsRegistry& metrics() { return *metrics_; }

 private:
  // How often the gRPC health status is brought up to date.
  static constexpr absl::Duration kHealthCheckInterval = absl::Seconds(1);

  // The steps of Start, in order. Each leaves what it built in members.
  // Policy, TLS material and tokens: nothing opens or listens yet.
  absl::Status LoadSecrets();
  // The metrics registry and the store.
  absl::Status OpenStorage();
  // The fleet core (and the pool worker it may ask for ticks).
  absl::Status StartFleet();
  // The gRPC listener with health and reflection; UNAVAILABLE when the port
  // is taken.
  absl::Status StartGrpc();
  absl::Status StartHttp();
  // Reconciliation, the first pool tick, the periodic controllers.
  void StartControllers();
  // Builds the notifier and its dispatcher (before the fleet: the fleet
  // reports its commits to them).
  absl::Status StartNotifier();
  // Builds the providers and the pool manager from the config.
  void StartPools();
  // Follows what the fleet committed: notices for the notifier, a pool tick
  // when a node turns UNHEALTHY. Runs on the store's commit thread.
  void OnEventsCommitted(const std::vector<Event>& events);
  void LogSecurity();

  Config config_;
  Clock& clock_;
  Logger log_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<ProviderCallMetrics> provider_metrics_;
  std::unique_ptr<Authenticator> auth_;
  std::optional<TlsMaterial> tls_;
  std::unique_ptr<Store> store_;
  PolicyEvaluator evaluator_;
  std::unique_ptr<FleetService> fleet_;
  // Pools (null when none is configured or none can be managed). Built
  // after the fleet starts; their controller stops first in Shutdown.
  std::unique_ptr<ProviderRegistry> providers_;
  // The notifier and its dispatcher exist from start-up (the fleet tells
  // the dispatcher what it committed); null when the notifier is noop.
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<NotifierDispatcher> dispatcher_;
  std::unique_ptr<PoolManager> pool_manager_;
  // Runs pool ticks off the clock thread; asked by a timer and by a node
  // turning UNHEALTHY.
  std::unique_ptr<CoalescingWorker> pool_worker_;
  // Why each provider that could not be built was not (by name).
  std::map<std::string, std::string> provider_errors_;
  // The provider RPCs (every transport); answers every configured provider,
  // built or not.
  std::unique_ptr<ProviderApi> provider_api_;
  std::unique_ptr<GrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HealthReporter> health_;
  std::unique_ptr<HttpServer> http_;
  std::vector<std::unique_ptr<PeriodicTask>> controllers_;
  std::string grpc_address_;  // to dial (127.0.0.1 for a wildcard)
  std::string http_address_;
  std::string grpc_bound_;  // as bound ("0.0.0.0:50051")
  std::string http_bound_;
  size_t max_response_bytes_ = kMaxResponseBytes;
  bool shut_down_ = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_SERVER_H_
