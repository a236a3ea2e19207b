#include "navarch/controlplane/http_server.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch {
namespace {

void PlainText(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "text/plain; charset=utf-8");
}

// httplib's refusals (no route, malformed) get the same JSON error body as
// ours; responses that have a body already keep it.
httplib::Server::HandlerResponse JsonErrors(const httplib::Request& req,
                                            httplib::Response& res) {
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
  const int status = res.status;
  absl::Status error;
  if (status == 404) {
    error = absl::NotFoundError(absl::StrCat("no such endpoint: ", req.method,
                                             " ", req.path.substr(0, 256)));
  } else if (status == 413) {
    error = absl::ResourceExhaustedError("request body too large");
  } else if (status == 414 || status == 431) {
    error = absl::ResourceExhaustedError("request line or headers too large");
  } else if (status >= 500) {
    error = absl::InternalError("internal error");
  } else {
    error = absl::InvalidArgumentError("malformed request");
  }
  WriteError(res, error);
  res.status = status;  // keep httplib's status (413, 414, ...)
  return httplib::Server::HandlerResponse::Handled;
}

}  // namespace

HttpServer::HttpServer(FleetService& fleet, Store& store,
                       const Authenticator& auth, MetricsRegistry& registry,
                       RpcMetrics& rpc, Clock& clock, Logger log,
                       PoolManager* pools, ProviderApi* providers,
                       const ClusterStatus* cluster)
    : store_(store),
      auth_(auth),
      registry_(registry),
      log_(log),
      ctx_{auth, rpc, clock, log, cluster},
      rest_(fleet, ctx_, pools, providers),
      connect_(fleet, ctx_, pools, providers),
      listener_(
          log,
          // Whoever sends a body must have a valid credential before a byte
          // of it is read; the route checks the role afterwards.
          [&auth](const httplib::Request& req) {
            return auth.Authenticate(CredentialsOf(req), Access::kAuthenticated)
                .status();
          },
          [](httplib::Response& res, const absl::Status& status) {
            WriteError(res, status);
          }) {}

HttpServer::~HttpServer() {
  Stop();
  absl::MutexLock lock(&stats_source_->mu);
  stats_source_->listener = nullptr;
}

void HttpServer::AddListenerMetrics() {
  registry_.AddCollector([source = stats_source_](MetricWriter& w) {
    HttpListenerStats s;
    {
      absl::MutexLock lock(&source->mu);
      if (source->listener == nullptr) return;
      s = source->listener->stats();
    }
    w.Family("navarch_http_connections", "HTTP connections open.",
             MetricType::kGauge, {});
    w.Sample({}, static_cast<double>(s.connections_open));
    w.Family("navarch_http_requests_waiting",
             "HTTP requests whose head has arrived, waiting for a worker.",
             MetricType::kGauge, {});
    w.Sample({}, static_cast<double>(s.requests_waiting));
    w.Family("navarch_http_refused_total",
             "HTTP connections and requests refused by a limit "
             "(docs/security.md).",
             MetricType::kCounter, {"reason"});
    w.Sample({"connection_limit"},
             static_cast<double>(s.refused_connection_limit));
    w.Sample({"head_timeout"}, static_cast<double>(s.head_timeouts));
    w.Sample({"head_too_large"}, static_cast<double>(s.heads_too_large));
    w.Sample({"body_too_large"}, static_cast<double>(s.bodies_too_large));
  });
}

void AddProbeRoutes(HttpRouter& router, const Authenticator& auth,
                    MetricsRegistry& registry,
                    std::function<std::string()> not_ready) {
  const Access probe =
      auth.protect_probes() ? Access::kAuthenticated : Access::kPublic;
  const Access metrics =
      auth.protect_metrics() ? Access::kAuthenticated : Access::kPublic;
  auto allow = [&auth](Access access, const httplib::Request& req,
                       httplib::Response& res) {
    absl::StatusOr<Identity> id = auth.Authenticate(CredentialsOf(req), access);
    if (!id.ok()) WriteError(res, id.status());
    return id.ok();
  };
  router.Get("/healthz", [allow, probe](const httplib::Request& req,
                                        httplib::Response& res) {
    if (allow(probe, req, res)) PlainText(res, 200, "ok\n");
  });
  router.Get("/readyz",
             [allow, probe, not_ready = std::move(not_ready)](
                 const httplib::Request& req, httplib::Response& res) {
               if (!allow(probe, req, res)) return;
               const std::string why = not_ready();
               if (why.empty()) {
                 PlainText(res, 200, "ready\n");
               } else {
                 PlainText(res, 503, absl::StrCat("not ready: ", why, "\n"));
               }
             });
  router.Get("/metrics",
             [allow, metrics, &registry](const httplib::Request& req,
                                         httplib::Response& res) {
               if (allow(metrics, req, res)) {
                 res.set_content(registry.Render(), kMetricsContentType);
               }
             });
}

void HttpServer::AddRoutes(const HttpServerOptions& options) {
  HttpRouter& s = listener_.router();
  agent_ = std::make_unique<AgentDownloads>(options.agent, ctx_);
  agent_->Register(s);
  AddProbeRoutes(s, auth_, registry_, [this]() -> std::string {
    if (draining_) return "shutting down";
    if (absl::Status ping = store_.Ping(); !ping.ok()) {
      return absl::StrCat("store: ", ping.message());
    }
    return "";
  });
  rest_.Register(s);
  connect_.Register(s);
  listener_.set_error_handler(JsonErrors);
  s.set_exception_handler([this](const httplib::Request&,
                                 httplib::Response& res, std::exception_ptr) {
    log_.Error("HTTP handler threw");
    WriteError(res, absl::InternalError("internal error"));
  });
}

HttpListenerOptions ListenerOptionsOf(const HttpServerOptions& options) {
  HttpListenerOptions o;
  o.address = options.address;
  if (options.tls != nullptr) {
    const TlsMaterial tls = *options.tls;
    o.tls = [tls](SSL_CTX& ctx) { return ConfigureServerContext(tls, &ctx); };
  }
  o.threads = options.threads;
  o.max_connections = options.max_connections;
  o.max_connections_per_client = options.max_connections_per_client;
  o.max_body_bytes = options.max_body_bytes;
  o.head_timeout = options.head_timeout;
  o.body_timeout = options.body_timeout;
  o.write_timeout = options.write_timeout;
  o.keep_alive_timeout = options.keep_alive_timeout;
  o.max_requests_per_connection = options.max_requests_per_connection;
  return o;
}

absl::Status HttpServer::Start(const HttpServerOptions& options) {
  if (started_) return absl::FailedPreconditionError("started twice");
  started_ = true;
  const HttpListenerOptions o = ListenerOptionsOf(options);
  rest_.set_max_response_bytes(options.max_response_bytes);
  connect_.set_max_response_bytes(options.max_response_bytes);
  AddRoutes(options);
  NAVARCH_RETURN_IF_ERROR(listener_.Start(o));
  {
    absl::MutexLock lock(&stats_source_->mu);
    stats_source_->listener = &listener_;
  }
  AddListenerMetrics();
  log_.Info("HTTP listening",
            {{"http_address", listener_.address()},
             {"tls", options.tls != nullptr},
             {"max_connections", static_cast<int64_t>(o.max_connections)},
             {"max_connections_per_client",
              static_cast<int64_t>(o.max_connections_per_client)}});
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (stopped_ || !started_) return;
  stopped_ = true;
  draining_ = true;
  // Streams hold workers until they end; Stop() waits for the workers.
  connect_.CloseStreams();
  listener_.Stop();
}

}  // namespace navarch
