#include "navarch/controlplane/server.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/controllers/controllers.h"
#include "navarch/controlplane/fleet_metrics.h"
#include "navarch/controlplane/instrumented_store.h"
#include "navarch/controlplane/node_bootstrap.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/pool_metrics.h"
#include "navarch/controlplane/process_metrics.h"
#include "navarch/controlplane/provider_metrics.h"
#include "navarch/controlplane/undo_stack.h"
#include "navarch/fleet/validation.h"
#include "navarch/notifier/webhook_notifier.h"
#include "navarch/pool/default_user_data.h"
#include "navarch/provider/aws/aws_provider.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/provider/gcp/gcp_config.h"
#include "navarch/provider/lambda/lambda_provider.h"
#include "navarch/provider/local/local_provider.h"
#include "navarch/store/store_factory.h"

namespace navarch {

std::string GrpcListenAddress(const std::string& address) {
  if (absl::StartsWith(address, ":")) return absl::StrCat("[::]", address);
  return address;
}

ControlPlaneServer::ControlPlaneServer(Config config, Clock& clock, Logger log)
    : config_(std::move(config)),
      clock_(clock),
      log_(std::move(log)),
      started_at_(clock.Now()) {}

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
               {{"path", config_.server.health_policy},
                {"error", std::string(policy.status().message())}});
    return policy.status();
  }
  evaluator_.SetPolicy(*policy);
  log_.Info("health policy reloaded",
            {{"path", config_.server.health_policy},
             {"rules", static_cast<int64_t>((*policy)->rules().size())}});
  return absl::OkStatus();
}

void ControlPlaneServer::LogSecurity() {
  const bool mtls = tls_ && tls_->mutual();
  if (!auth_->enabled()) {
    log_.Warn(mtls ? "authentication disabled: every client with a valid "
                     "certificate may call every RPC"
                   : "authentication disabled: anyone who can reach the "
                     "control plane may call every RPC",
              {{"reason", "no auth tokens configured"},
               {"config", "auth.tokens"},
               {"env_var", "NAVARCH_AUTH_TOKEN"},
               {"flag", "--auth-token"}});
    if (config_.auth.protect_metrics || config_.auth.protect_probes) {
      log_.Warn(
          "auth.protect_metrics and auth.protect_probes have no effect "
          "without tokens");
    }
  } else {
    log_.Info("authentication enabled",
              {{"tokens", static_cast<int64_t>(auth_->token_count())},
               {"client_certificates", mtls},
               {"node_tokens", auth_->node_tokens()},
               {"shared_agent_tokens", auth_->allow_shared_agent_tokens()},
               {"metrics_open", !auth_->protect_metrics()},
               {"probes_open", !auth_->protect_probes()}});
  }
  if (!tls_) {
    if (auth_->enabled()) {
      log_.Warn("TLS disabled: tokens travel in clear text",
                {{"config", "server.tls"}});
    }
  } else {
    log_.Info("TLS enabled", {{"client_certificates_required", mtls}});
  }
}

absl::Status ControlPlaneServer::StartNotifier() {
  if (config_.server.notifier.type == NotifierType::kNoop) {
    notifier_ = std::make_unique<NoopNotifier>();
    return absl::OkStatus();
  }
  NAVARCH_RETURN_IF_ERROR(
      WebhookNotifier::Validate(config_.server.notifier.webhook));
  notifier_ = std::make_unique<WebhookNotifier>(config_.server.notifier.webhook,
                                                clock_);
  NotifierDispatcherOptions dispatch;
  // Control planes restarted together still spread their retries.
  dispatch.seed = static_cast<uint64_t>(absl::ToUnixNanos(clock_.Now()));
  dispatcher_ = std::make_unique<NotifierDispatcher>(
      *notifier_, clock_,
      [this](const Notice& notice, const absl::Status& s, int attempts) {
        const std::string type(NoticeTypeName(notice.type));
        log_.Error("notifier failed; the workload system was not told",
                   {{"notifier", std::string(notifier_->name())},
                    {"notice", type},
                    {"node_id", notice.node_id},
                    {"attempts", static_cast<int64_t>(attempts)},
                    {"error", s}});
        if (fleet_ == nullptr) return;
        (void)Await<Event>([&](auto done) {
          fleet_->RecordEvent(
              "notifier.failed", notice.node_id, "", Actor{"notifier"},
              absl::StrCat(
                  notifier_->name(), " notifier could not deliver ", type,
                  " after ", attempts,
                  attempts == 1 ? " attempt: " : " attempts: ", s.message()),
              {{"notice", type}, {"attempts", absl::StrCat(attempts)}}, done);
        });
      },
      dispatch);
  dispatcher_->Start();
  metrics_->AddCollector([this](MetricWriter& w) {
    WriteSplitCounter(w, "navarch_notifier_notices_total",
                      "Notices to the workload system by type (cordon, "
                      "uncordon, drain) and outcome (ok, retried, failed, "
                      "dropped).",
                      {"notice", "outcome"}, dispatcher_->counters());
    w.Family("navarch_notifier_backlog",
             "Notices waiting to be delivered (or retried).",
             MetricType::kGauge, {});
    w.Sample({}, static_cast<double>(dispatcher_->backlog()));
  });
  log_.Info("notifier ready", {{"notifier", std::string(notifier_->name())}});
  return absl::OkStatus();
}

void ControlPlaneServer::OnEventsCommitted(const std::vector<Event>& events) {
  for (const Event& e : events) {
    if (std::optional<Notice> notice = NoticeFor(e)) {
      // The event's id and time, so every retry of the notice carries the
      // same ones and a receiver can tell a retry from a new notice.
      notice->id = absl::StrCat("event-", e.id());
      notice->time = FromTimestamp(e.time());
      if (dispatcher_ != nullptr) dispatcher_->Enqueue(*std::move(notice));
    } else if (WantsPoolTick(e) && pool_worker_ != nullptr) {
      // A pool node turned UNHEALTHY: start its replacement now, not at
      // the next autoscale tick.
      pool_worker_->Request();
    }
  }
}

namespace {

// {{.ControlPlane}} derived from server.address (often a wildcard or
// loopback) rarely reaches the control plane from a new cloud machine.
void WarnAboutUserDataAddress(const Config& config, const std::string& address,
                              bool default_user_data, const Logger& log) {
  if (!config.server.external_address.empty()) return;
  for (const auto& [name, pc] : config.pools) {
    if (pc.user_data.empty() && pc.user_data_file.empty() &&
        !(default_user_data && pc.setup_commands.empty() &&
          PoolOnCloudsOnly(config, pc))) {
      continue;
    }
    log.Warn(
        "a pool's user data gets {{.ControlPlane}} from server.address; set "
        "server.external_address to the address new machines reach",
        {{"pool", name}, {"control_plane", address}});
    return;
  }
}

}  // namespace

void ControlPlaneServer::StartPools() {
  if (config_.pools.empty()) return;
  providers_ = std::make_unique<ProviderRegistry>();
  (void)providers_->RegisterFactory(
      "fake",
      [](const ProviderConfig& pc, const ProviderContext& context)
          -> absl::StatusOr<std::unique_ptr<Provider>> {
        return std::make_unique<FakeProvider>(
            *context.clock, FakeOptionsFromConfig(pc, context.seed));
      });
  // Agents the local provider starts authenticate like any other: with
  // their node token when there is a node token key.
  std::function<std::string(const std::string&)> agent_token;
  if (auth_->enabled()) {
    auto source = AgentTokenSource(config_.auth);
    if (source.ok()) {
      agent_token = *std::move(source);
    } else {
      log_.Warn("local agents get no auth token; they will be refused",
                {{"error", source.status()}});
    }
  }
  (void)providers_->RegisterFactory(
      "local",
      [agent_token](const ProviderConfig& pc, const ProviderContext& context)
          -> absl::StatusOr<std::unique_ptr<Provider>> {
        LocalProviderOptions o = LocalOptionsFromConfig(pc, context.data_dir);
        o.server_address = context.agent_server;
        o.auth_token = agent_token;
        return std::make_unique<LocalProvider>(*context.clock, std::move(o));
      });
  // lambda (issue 16)
  (void)providers_->RegisterFactory(
      "lambda",
      [](const ProviderConfig& pc, const ProviderContext& context)
          -> absl::StatusOr<std::unique_ptr<Provider>> {
        absl::StatusOr<LambdaProviderOptions> o = LambdaOptionsFromConfig(pc);
        if (!o.ok()) return o.status();
        o->http.seed = context.seed;
        o->http.observer = context.call_observer;
        return std::make_unique<LambdaProvider>(*context.clock, *std::move(o));
      });
  (void)providers_->RegisterFactory("aws", NewAwsProvider);
  // gcp: Google Compute Engine (docs/pools.md, "GCP").
  (void)providers_->RegisterFactory(
      "gcp",
      [](const ProviderConfig& pc, const ProviderContext& context)
          -> absl::StatusOr<std::unique_ptr<Provider>> {
        absl::StatusOr<GcpProviderOptions> o =
            GcpOptionsFromConfig(pc, [](const std::string& key) {
              const char* v = std::getenv(key.c_str());
              return v == nullptr ? std::string() : std::string(v);
            });
        if (!o.ok()) return o.status();
        o->http.seed = context.seed;
        o->http.observer = context.call_observer;
        return std::make_unique<GcpProvider>(*context.clock, std::move(*o));
      });
  ProviderContext context;
  context.clock = &clock_;
  // Read only by ticks, which start after the listener has its port. With
  // replicas, the address machines reach (a load balancer in front of them
  // all): the agents must find whichever replica leads next.
  context.agent_server = [this] {
    return elector_ != nullptr ? config_.server.external_address
                               : grpc_address_;
  };
  context.data_dir = config_.server.data_dir;
  context.call_observer = provider_metrics_.get();
  BuildProviders(context);
  PoolManagerOptions options;
  options.instance_manager = config_.instance_manager;
  // Pool ticks on worker threads, each provider call with a deadline: a
  // slow cloud never holds up heartbeats, the API or the other pools.
  options.threads = true;
  // The first tick, at start, provisions min_nodes before we say "ready".
  options.first_tick_wait = absl::Minutes(1);
  options.log = log_.With({{"component", "pools"}});
  options.control_plane = AgentServerAddress(config_.server);
  options.agent_downloads = AgentHttpAddress(config_.server);
  WarnAboutUserDataAddress(config_, options.control_plane, auth_->node_tokens(),
                           log_);
  if (auth_->node_tokens()) {
    options.default_user_data = DefaultUserDataTemplate();
    options.mint_bootstrap_token =
        [auth = auth_.get()](const std::string& intent, absl::Time expiry) {
          return auth->MintBootstrapToken(intent, expiry);
        };
  }
  pool_manager_ = std::make_unique<PoolManager>(
      *fleet_, *providers_, *notifier_, clock_, config_, options);
  if (absl::Status s = pool_manager_->Init(); !s.ok()) {
    log_.Warn("some pools are not managed", {{"error", s}});
  }
}

// A provider that cannot be built (no key, a type not built yet) is left out
// of its pools, which fail over among the others (a pool with none is not
// managed), rather than refusing to start the control plane.
void ControlPlaneServer::BuildProviders(const ProviderContext& context) {
  for (const auto& [name, pc] : config_.providers) {
    absl::Status s = providers_->Build({{name, pc}}, context);
    if (!s.ok()) {
      log_.Warn("provider unavailable", {{"error", s}});
      provider_errors_[name] = std::string(s.message());
    }
  }
}

absl::Status ControlPlaneServer::LoadSecrets() {
  if (!config_.server.health_policy.empty()) {
    auto policy = Policy::LoadFile(config_.server.health_policy);
    if (!policy.ok())
      return Annotate(policy.status(), "loading the health policy");
    evaluator_.SetPolicy(*policy);
  }
  if (config_.server.tls.enabled()) {
    absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(config_.server.tls);
    if (!tls.ok()) return tls.status();
    tls_ = std::move(*tls);
  }
  absl::StatusOr<std::unique_ptr<Authenticator>> auth =
      Authenticator::Create(config_.auth, tls_ && tls_->mutual(),
                            /*getenv=*/nullptr, &clock_);
  if (!auth.ok()) return auth.status();
  auth_ = std::move(*auth);
  return absl::OkStatus();
}

namespace {

std::string DefaultReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "control-plane", ":", getpid());
}

}  // namespace

absl::Status ControlPlaneServer::OpenStorage() {
  metrics_ = std::make_unique<MetricsRegistry>();
  rpc_metrics_ = std::make_unique<RpcMetrics>(*metrics_);
  provider_metrics_ = std::make_unique<ProviderCallMetrics>(*metrics_);
  AddBuildInfo(*metrics_);
  AddProcessMetrics(*metrics_);
  lease_options_.replica_id = config_.ha.replica_id.empty()
                                  ? DefaultReplicaId()
                                  : config_.ha.replica_id;
  metrics_->AddCollector([this](MetricWriter& w) {
    // One control plane on its own leads; a replica, while it holds the
    // lease (a standby does not serve /metrics at all).
    w.Family("navarch_leader",
             "1 while this control plane leads (runs the controllers).",
             MetricType::kGauge, {});
    w.Sample({}, elector_ == nullptr || elector_->leader() ? 1.0 : 0.0);
    w.Family("navarch_leader_changes_total",
             "Times this control plane became the leader.",
             MetricType::kCounter, {});
    w.Sample({}, elector_ == nullptr
                     ? 1.0
                     : static_cast<double>(elector_->leader_changes()));
  });
  if (config_.storage.backend == StorageBackend::kPostgres)
    return OpenPostgres();
  const std::string backend(StorageBackendName(config_.storage.backend));
  auto store = OpenStore(backend, DatabasePath(config_));
  if (!store.ok()) return Annotate(store.status(), "opening the store");
  store_ =
      std::make_unique<InstrumentedStore>(std::move(*store), clock_, *metrics_);
  return absl::OkStatus();
}

absl::Status ControlPlaneServer::OpenPostgres() {
  PostgresOptions options;
  options.dsn = config_.storage.dsn;
  auto store = PostgresStore::Open(options);
  if (!store.ok()) return Annotate(store.status(), "opening the store");
  postgres_ = store->get();
  store_ =
      std::make_unique<InstrumentedStore>(std::move(*store), clock_, *metrics_);
  // The lease and its elector come with the follower's listeners
  // (StartStandby), whose addresses the replica announces.
  lease_options_.dsn = config_.storage.dsn;
  lease_options_.duration = config_.ha.lease_duration;
  lease_options_.version = NAVARCH_VERSION;
  return absl::OkStatus();
}

void ControlPlaneServer::TakeOver(int64_t epoch) {
  // Every write from here on checks the lease still carries this epoch: if
  // another replica takes over, this one cannot write any more.
  postgres_->SetFence(lease_->options().replica_id, epoch);
  absl::MutexLock lock(&takeover_mu_);
  if (takeover_.joinable() || serving_.load()) {
    Fatal("won the leader lease again after losing it");
    return;
  }
  // Serve loads the fleet and starts listening, which takes a while: off
  // the elector's thread, which keeps renewing the lease meanwhile.
  takeover_ = std::thread([this, epoch] {
    log_.Info("taking over as leader", {{"epoch", epoch}});
    // The follower's streams end (their agents come back to this replica
    // or another through the balancer); its ports are the leader's now.
    StopFollower();
    if (absl::Status s = Serve(); !s.ok()) {
      Fatal(absl::StrCat("could not take over: ", s.message()));
    }
  });
}

void ControlPlaneServer::Fatal(const std::string& why) {
  log_.Error("stopping at once", {{"why", why}});
  if (on_fatal_) {
    on_fatal_(why);
    return;
  }
  // Nothing acknowledged is lost: every acknowledgement followed a commit.
  std::_Exit(75);
}

absl::Status ControlPlaneServer::StartFleet() {
  // Made before the fleet, whose commit thread may ask it for a tick; it
  // runs only once started, after the pool manager exists.
  if (!config_.pools.empty()) {
    pool_worker_ = std::make_unique<CoalescingWorker>([this] {
      if (pool_manager_ != nullptr) pool_manager_->Tick();
    });
  }
  FleetOptions options = FleetOptionsFromConfig(config_);
  options.on_events_committed = [this](const std::vector<Event>& events) {
    OnEventsCommitted(events);
  };
  fleet_ = std::make_unique<FleetService>(*store_, clock_, evaluator_, log_,
                                          options);
  NAVARCH_RETURN_IF_ERROR(fleet_->Start());
  auth_->set_bootstrap_check([fleet = fleet_.get()](absl::string_view intent,
                                                    absl::string_view node_id) {
    return CheckBootstrap(*fleet, intent, node_id);
  });
  AddFleetMetrics(*metrics_, *fleet_);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> ControlPlaneServer::ListenGrpc(
    const std::function<void(grpc::ServerBuilder&)>& add_services) {
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = GrpcListenAddress(config_.server.address);
  builder.AddListeningPort(
      listen,
      tls_ ? GrpcServerCredentials(*tls_) : grpc::InsecureServerCredentials(),
      &port);
  add_services(builder);
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxResponseBytes));
  // Without this, a second control plane would silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Detect dead agents on idle command streams.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config_.server.address,
        ": the address is already in use or not available on this host"));
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  grpc_bound_ = absl::StrCat(host.empty() ? "0.0.0.0" : host, ":", port);
  if (host == "[::]" || host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  grpc_address_ = absl::StrCat(host, ":", port);
  return server;
}

absl::Status ControlPlaneServer::StartGrpc() {
  service_ = std::make_unique<GrpcService>(*fleet_, log_, clock_, *auth_,
                                           *rpc_metrics_);
  service_->set_pool_manager(pool_manager_.get());
  service_->set_provider_api(provider_api_.get());
  service_->set_cluster(cluster_.get());
  service_->set_max_response_bytes(max_response_bytes_);
  // grpc.health.v1.Health (gRPC's implementation; HealthReporter sets its
  // statuses) and server reflection, for probes, load balancers and grpcurl.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = ListenGrpc(
      [this](grpc::ServerBuilder& b) { b.RegisterService(service_.get()); });
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  health_ = std::make_unique<HealthReporter>(*server_->GetHealthCheckService(),
                                             *store_, log_);
  health_->Check();
  return absl::OkStatus();
}

HttpServerOptions ControlPlaneServer::HttpOptions() const {
  HttpServerOptions http;
  http.address = config_.server.http_address;
  http.tls = tls_ ? &*tls_ : nullptr;
  http.max_body_bytes = kMaxMessageBytes;
  const HttpLimitsConfig& limits = config_.server.http;
  http.threads = limits.threads;
  http.max_connections = limits.max_connections;
  http.max_connections_per_client = limits.max_connections_per_client;
  http.head_timeout = limits.head_timeout;
  http.body_timeout = limits.body_timeout;
  http.max_response_bytes = max_response_bytes_;
  return http;
}

absl::Status ControlPlaneServer::StartHttp() {
  // A configured agent file that is not there is a typo to report now, not
  // a failed bootstrap on a new machine later.
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string&>{"server.agent_binary",
                                                   config_.server.agent_binary},
        {"server.agent_package", config_.server.agent_package}}) {
    if (!path.empty() && ::access(path.c_str(), R_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          key, ": ", path, " cannot be read: ", std::strerror(errno)));
    }
  }
  http_ = std::make_unique<HttpServer>(
      *fleet_, *store_, *auth_, *metrics_, *rpc_metrics_, clock_, log_,
      pool_manager_.get(), provider_api_.get(), cluster_.get());
  HttpServerOptions http_options = HttpOptions();
  http_options.agent.binary_path = config_.server.agent_binary.empty()
                                       ? DefaultAgentBinaryPath()
                                       : config_.server.agent_binary;
  http_options.agent.package_path = config_.server.agent_package;
  if (absl::Status s = http_->Start(http_options); !s.ok()) {
    http_.reset();
    return s;
  }
  http_address_ = http_->address();
  http_bound_ = http_->bound_address();
  return absl::OkStatus();
}

void ControlPlaneServer::StartControllers() {
  // Controllers (controllers.h: the simulator runs the same ones).
  const bool pools = pool_manager_ != nullptr && pool_worker_ != nullptr;
  if (pools) {
    // Instances that outlived a crash, or were created by a provision call
    // whose answer was lost, are sorted out before the first decision.
    if (absl::Status s = pool_manager_->Reconcile(); !s.ok()) {
      log_.Warn("start-up reconciliation failed", {{"error", s}});
    }
  }
  controllers_ = MakeControllers(
      clock_, *fleet_, config_, kHistoryRetention,
      pools ? std::function<void()>([this] { pool_worker_->Request(); })
            : nullptr,
      log_);
  // The gRPC health status follows the store, as /readyz does.
  controllers_.push_back(std::make_unique<PeriodicTask>(
      clock_, kHealthCheckInterval, [this] { health_->Check(); }));
  if (pools) {
    // Upstream's first evaluation came one interval after start; ours runs
    // now, before Start returns, so min_nodes is provisioned by the time the
    // control plane says it is ready. Later ones run on the pool worker.
    pool_manager_->Tick();
    pool_worker_->Start();
  }
  for (auto& c : controllers_) c->Start();
}

absl::Status ControlPlaneServer::Start() {
  // Secrets and certificates first: a missing one fails before anything
  // opens or listens.
  NAVARCH_RETURN_IF_ERROR(LoadSecrets());
  NAVARCH_RETURN_IF_ERROR(OpenStorage());
  if (postgres_ != nullptr) return StartStandby();
  return Serve();
}

absl::Status ControlPlaneServer::Serve() {
  // From here on a failure undoes what was started, newest first.
  UndoStack undo;
  undo.Push([this] { store_->Close(); });
  NAVARCH_RETURN_IF_ERROR(StartNotifier());
  undo.Push([this] {
    if (dispatcher_ != nullptr) dispatcher_->Stop();
  });
  NAVARCH_RETURN_IF_ERROR(StartFleet());
  undo.Push([this] { fleet_->Stop(); });
  StartPools();
  if (pool_manager_ != nullptr) AddPoolMetrics(*metrics_, *pool_manager_);
  provider_api_ = std::make_unique<ProviderApi>(
      config_, providers_.get(), pool_manager_.get(), clock_, provider_errors_);
  undo.Push([this] { provider_api_->Stop(); });
  // One control plane alone is its own cluster (its addresses once bound).
  if (cluster_ == nullptr) {
    cluster_ = std::make_unique<ClusterStatus>(Self(), nullptr);
  }
  NAVARCH_RETURN_IF_ERROR(StartGrpc());
  undo.Push([this] {
    health_.reset();  // it points into the server
    server_->Shutdown();
    server_->Wait();
    server_.reset();
  });
  NAVARCH_RETURN_IF_ERROR(StartHttp());
  undo.Release();
  if (elector_ == nullptr) cluster_->set_self(Self());
  LogSecurity();
  StartControllers();
  // The addresses as bound: a wildcard says so, never a loopback address it
  // is not limited to.
  log_.Info("control plane ready",
            {{"grpc_address", grpc_bound_},
             {"http_address", http_bound_},
             {"store", store_->Name()},
             {"database", DatabasePath(config_)},
             {"nodes", static_cast<int64_t>(fleet_->node_count())},
             {"heartbeat_timeout", EffectiveHeartbeatTimeout(config_.server)},
             {"health_evaluator", evaluator_.Name()}});
  serving_ = true;
  if (on_serving_) on_serving_();
  return absl::OkStatus();
}

void ControlPlaneServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || store_ == nullptr) return;
  shut_down_ = true;
  log_.Info("shutting down", {{"grace", grace}});
  // No takeover starts now; one under way finishes first. The lease stays
  // held until the last write is done (Release below).
  if (elector_ != nullptr) elector_->Stop();
  {
    absl::MutexLock lock(&takeover_mu_);
    if (takeover_.joinable()) takeover_.join();
  }
  if (!serving_.load()) {
    StopFollower();
    store_->Close();
    if (elector_ != nullptr) elector_->Release();  // leaves the replicas
    log_.Info("control plane stopped (standby)");
    return;
  }
  for (auto& c : controllers_) c->Stop();
  // A provider call still running after the grace period is abandoned (its
  // provision intent is durable: the next start reconciles it).
  if (pool_manager_ != nullptr) pool_manager_->Stop(grace);
  if (pool_worker_ != nullptr) pool_worker_->Stop();
  // Load balancers see /readyz and the gRPC health service fail while calls
  // finish.
  if (http_ != nullptr) http_->SetDraining();
  if (health_ != nullptr) health_->SetDraining();
  // Calls waiting for a cloud's instance types answer UNAVAILABLE now, so
  // they do not hold up the drain below.
  if (provider_api_ != nullptr) provider_api_->Stop();
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
  // HTTP calls in flight finish here; they need the fleet core, so it stops
  // after them.
  if (http_ != nullptr) http_->Stop();
  if (fleet_ != nullptr) fleet_->Stop();
  if (dispatcher_ != nullptr) {
    if (size_t left = dispatcher_->backlog(); left > 0) {
      log_.Warn("notices not delivered at shutdown",
                {{"notices", static_cast<int64_t>(left)}});
    }
    dispatcher_->Stop();
  }
  store_->Close();
  // A standby takes over at once, not when the lease runs out.
  if (elector_ != nullptr) elector_->Release();
  log_.Info("control plane stopped");
}

}  // namespace navarch
