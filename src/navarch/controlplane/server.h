// The control plane, wired: store, fleet core, controllers, the gRPC and HTTP
// listeners with their authentication, TLS and metrics.
// apps/control-plane/main.cc only parses flags, installs signal handling and
// calls this.
#ifndef NAVARCH_CONTROLPLANE_SERVER_H_
#define NAVARCH_CONTROLPLANE_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/controllers/periodic.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/cluster_status.h"
#include "navarch/controlplane/follower_http.h"
#include "navarch/controlplane/grpc_forwarder.h"
#include "navarch/controlplane/grpc_service.h"
#include "navarch/controlplane/health_reporter.h"
#include "navarch/controlplane/http_server.h"
#include "navarch/controlplane/leader_elector.h"
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
#include "navarch/store/postgres/leader_lease.h"
#include "navarch/store/postgres/postgres_store.h"
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
  //
  // On PostgreSQL, several replicas may share the database: Start opens the
  // store and returns at once as a standby, and the replica serves (loads
  // the fleet, listens, runs the controllers) only once it wins the leader
  // lease, on the elector's thread (leader_elector.h). on_serving says when.
  absl::Status Start();

  // Called once this control plane serves: at the end of Start, or when a
  // standby wins the lease. Set before Start.
  void set_on_serving(std::function<void()> fn) { on_serving_ = std::move(fn); }
  // Called when this replica must stop at once: it lost the leader lease
  // (another replica leads, so it must not act any more), or could not take
  // over after winning it. Default: logs and exits the process (status 75);
  // a service manager restarts it as a standby. Set before Start.
  void set_on_fatal(std::function<void(const std::string& why)> fn) {
    on_fatal_ = std::move(fn);
  }
  // Whether this replica serves (single control plane: after Start).
  bool serving() const { return serving_.load(); }

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
  // The metrics registry and the store; for PostgreSQL, the leader lease and
  // its elector too.
  absl::Status OpenStorage();
  absl::Status OpenPostgres();
  // With replicas (server_replica.cc): listens as a follower, forwarding
  // every call to the leader, then announces this replica and starts the
  // elector. A takeover stops the follower's listeners and Serve()s on the
  // same ports.
  absl::Status StartStandby();
  absl::Status StartFollower();
  void StopFollower();
  // The leader as the elector last read the lease: its gRPC channel (made
  // once per address) and its HTTP base URL; null and "" while none is
  // known, or this replica leads.
  std::shared_ptr<grpc::Channel> LeaderChannel();
  std::string LeaderHttpUrl();
  // This replica's id and the addresses the others reach it at.
  ClusterSelf Self() const;
  // Everything after the store: fleet, pools, listeners, controllers.
  absl::Status Serve();
  // The elector won the lease at `epoch`: fence the store, serve.
  void TakeOver(int64_t epoch);
  void Fatal(const std::string& why);
  // The fleet core (and the pool worker it may ask for ticks).
  absl::Status StartFleet();
  // The gRPC listener with health and reflection; UNAVAILABLE when the port
  // is taken.
  absl::Status StartGrpc();
  // Binds server.address with the TLS, message limits and keepalive policy
  // of every gRPC listener here (the leader's, a follower's), with the
  // services `add_services` registers; sets grpc_bound_ and grpc_address_.
  // UNAVAILABLE when the port is taken.
  absl::StatusOr<std::unique_ptr<grpc::Server>> ListenGrpc(
      const std::function<void(grpc::ServerBuilder&)>& add_services);
  absl::Status StartHttp();
  // The HTTP listener's address, TLS and limits from the config.
  HttpServerOptions HttpOptions() const;
  // Reconciliation, the first pool tick, the periodic controllers.
  void StartControllers();
  // Builds the notifier and its dispatcher (before the fleet: the fleet
  // reports its commits to them).
  absl::Status StartNotifier();
  // Builds the providers and the pool manager from the config.
  void StartPools();
  void BuildProviders(const ProviderContext& context);
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
  // With PostgreSQL: the store itself (inside store_, for its fence), the
  // lease, the elector, and the thread a takeover runs Serve on.
  PostgresStore* postgres_ = nullptr;
  std::unique_ptr<PostgresLeaderLease> lease_;
  std::unique_ptr<LeaderElector> elector_;
  LeaseOptions lease_options_;
  // A follower's listeners, until it takes over; the forwarder lives as
  // long as the server (calls may finish after the listener stops).
  std::unique_ptr<GrpcForwarder> forwarder_;
  std::unique_ptr<grpc::Server> follower_grpc_;
  std::unique_ptr<FollowerHttp> follower_http_;
  absl::Mutex leader_mu_;
  std::string leader_target_ ABSL_GUARDED_BY(leader_mu_);
  std::shared_ptr<grpc::Channel> leader_channel_ ABSL_GUARDED_BY(leader_mu_);
  // Channels to former leaders, kept until the server goes: a relay still
  // finishing on one must not drop its last reference on gRPC's thread.
  std::vector<std::shared_ptr<grpc::Channel>> retired_channels_
      ABSL_GUARDED_BY(leader_mu_);
  std::unique_ptr<ClusterStatus> cluster_;
  const absl::Time started_at_;
  absl::Mutex takeover_mu_;
  std::thread takeover_ ABSL_GUARDED_BY(takeover_mu_);
  std::atomic<bool> serving_{false};
  std::function<void()> on_serving_;
  std::function<void(const std::string&)> on_fatal_;
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
