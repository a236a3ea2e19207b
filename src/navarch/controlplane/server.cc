#include "navarch/controlplane/server.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_builder.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/fleet/validation.h"
#include "navarch/store/store_factory.h"

namespace navarch {

std::string GrpcListenAddress(const std::string& address) {
  if (absl::StartsWith(address, ":")) return absl::StrCat("[::]", address);
  return address;
}

ControlPlaneServer::ControlPlaneServer(Config config, Clock& clock, Logger log)
    : config_(std::move(config)), clock_(clock), log_(std::move(log)) {}

ControlPlaneServer::~ControlPlaneServer() { Shutdown(absl::ZeroDuration()); }

absl::Status ControlPlaneServer::ReloadPolicy() {
  if (config_.server.health_policy.empty()) {
    evaluator_.SetPolicy(Policy::Default());
    log_.Info("health policy reloaded", {{"policy", "builtin default"}});
    return absl::OkStatus();
  }
  auto policy = Policy::LoadFile(config_.server.health_policy);
  if (!policy.ok()) {
    log_.Error("health policy rejected; keeping the current one",
               {{"path", config_.server.health_policy}, {"error", std::string(policy.status().message())}});
    return policy.status();
  }
  evaluator_.SetPolicy(*policy);
  log_.Info("health policy reloaded", {{"path", config_.server.health_policy},
                                       {"rules", static_cast<int64_t>((*policy)->rules().size())}});
  return absl::OkStatus();
}

absl::Status ControlPlaneServer::Start() {
  if (!config_.server.health_policy.empty()) {
    auto policy = Policy::LoadFile(config_.server.health_policy);
    if (!policy.ok()) return Annotate(policy.status(), "loading the health policy");
    evaluator_.SetPolicy(*policy);
  }
  const std::string backend(StorageBackendName(config_.storage.backend));
  auto store = OpenStore(backend, DatabasePath(config_));
  if (!store.ok()) return Annotate(store.status(), "opening the store");
  store_ = std::move(*store);

  FleetOptions options;
  options.heartbeat_interval = config_.server.heartbeat_interval;
  options.health_check_interval = config_.server.health_check_interval;
  options.heartbeat_timeout = EffectiveHeartbeatTimeout(config_.server);
  if (config_.defaults.unhealthy_after) options.unhealthy_after = *config_.defaults.unhealthy_after;
  for (const auto& [name, pool] : config_.pools) {
    options.unhealthy_after_by_pool[name] = pool.health.unhealthy_after;
  }
  fleet_ = std::make_unique<FleetService>(*store_, clock_, evaluator_, log_,
                                          options);
  NAVARCH_RETURN_IF_ERROR(fleet_->Start());

  service_ = std::make_unique<GrpcService>(*fleet_, log_);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = GrpcListenAddress(config_.server.address);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
  builder.SetMaxSendMessageSize(64 << 20);
  // Without this, a second control plane would silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Detect dead agents on idle command streams.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    fleet_->Stop();
    store_->Close();
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config_.server.address,
        ": the address is already in use or not available on this host"));
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "[::]" || host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  grpc_address_ = absl::StrCat(host, ":", port);

  // Controllers. The heartbeat monitor looks often enough to notice a silent
  // node within a sixth of the timeout.
  absl::Duration check_every = std::clamp(
      EffectiveHeartbeatTimeout(config_.server) / 6, absl::Seconds(1),
      std::max(config_.server.heartbeat_interval, absl::Seconds(1)));
  controllers_.push_back(
      std::make_unique<PeriodicTask>(clock_, check_every, [this] {
        int n = fleet_->CheckHeartbeats();
        if (n > 0) log_.Warn("node heartbeat timeout", {{"nodes", n}});
      }));
  controllers_.push_back(
      std::make_unique<PeriodicTask>(clock_, absl::Hours(1), [this] {
        auto pruned = store_->Prune(clock_.Now() - kHistoryRetention);
        if (!pruned.ok())
          log_.Warn("pruning history failed", {{"error", pruned.status()}});
      }));
  for (auto& c : controllers_) c->Start();

  log_.Info("control plane ready",
            {{"grpc_address", grpc_address_},
             {"store", store_->Name()},
             {"database", DatabasePath(config_)},
             {"nodes", static_cast<int64_t>(fleet_->node_count())},
             {"heartbeat_timeout", EffectiveHeartbeatTimeout(config_.server)},
             {"health_evaluator", evaluator_.Name()}});
  return absl::OkStatus();
}

void ControlPlaneServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || store_ == nullptr) return;
  shut_down_ = true;
  log_.Info("shutting down", {{"grace", grace}});
  for (auto& c : controllers_) c->Stop();
  if (server_ != nullptr) {
    // Streams end first; then calls in flight finish (their commits land)
    // while new ones are refused; only then does the listener go.
    fleet_->CloseWatchers();
    if (!service_->Drain(grace))
      log_.Warn("calls still in flight after the grace period");
    server_->Shutdown(
        absl::ToChronoTime(clock_.Now() + absl::Milliseconds(100)));
    server_->Wait();
  }
  if (fleet_ != nullptr) fleet_->Stop();
  store_->Close();
  log_.Info("control plane stopped");
}

}  // namespace navarch
