#include "navarch/controlplane/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace navarch {
namespace {

// Splits "host:port"; an empty or wildcard host binds every IPv4 interface,
// "[::]" every IPv6 one (and IPv4 too where the kernel maps them).
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return false;
  }
  if (host->empty()) *host = "0.0.0.0";
  if (absl::StartsWith(*host, "[") && absl::EndsWith(*host, "]")) {
    *host = host->substr(1, host->size() - 2);
  }
  return true;
}

std::string ReportedAddress(const std::string& host, int port) {
  if (host == "0.0.0.0" || host == "::")
    return absl::StrCat("127.0.0.1:", port);
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

void PlainText(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "text/plain; charset=utf-8");
}

time_t WholeSeconds(absl::Duration d) {
  return static_cast<time_t>(std::max<int64_t>(1, absl::ToInt64Seconds(d)));
}

}  // namespace

HttpServer::HttpServer(FleetService& fleet, Store& store,
                       const Authenticator& auth, MetricsRegistry& registry,
                       RpcMetrics& rpc, Clock& clock, Logger log,
                       PoolManager* pools)
    : store_(store),
      auth_(auth),
      registry_(registry),
      log_(log),
      ctx_{auth, rpc, clock, log},
      rest_(fleet, ctx_, pools),
      connect_(fleet, ctx_, pools) {}

HttpServer::~HttpServer() { Stop(); }

bool HttpServer::Allow(Access access, const httplib::Request& req,
                       httplib::Response& res) {
  absl::StatusOr<Identity> id = auth_.Authenticate(CredentialsOf(req), access);
  if (id.ok()) return true;
  WriteError(res, id.status());
  return false;
}

void HttpServer::AddRoutes() {
  httplib::Server& s = *server_;
  const Access probe =
      auth_.protect_probes() ? Access::kAuthenticated : Access::kPublic;
  const Access metrics =
      auth_.protect_metrics() ? Access::kAuthenticated : Access::kPublic;
  s.Get("/healthz",
        [this, probe](const httplib::Request& req, httplib::Response& res) {
          if (Allow(probe, req, res)) PlainText(res, 200, "ok\n");
        });
  s.Get("/readyz",
        [this, probe](const httplib::Request& req, httplib::Response& res) {
          if (!Allow(probe, req, res)) return;
          if (draining_) {
            PlainText(res, 503, "not ready: shutting down\n");
            return;
          }
          if (absl::Status ping = store_.Ping(); !ping.ok()) {
            PlainText(res, 503,
                      absl::StrCat("not ready: store: ", ping.message(), "\n"));
            return;
          }
          PlainText(res, 200, "ready\n");
        });
  s.Get("/metrics",
        [this, metrics](const httplib::Request& req, httplib::Response& res) {
          if (!Allow(metrics, req, res)) return;
          res.set_content(registry_.Render(), kMetricsContentType);
        });
  rest_.Register(s);
  connect_.Register(s);

  // Compressed bodies are refused before they are read: httplib would
  // inflate them past the size limit, which only bounds the wire bytes.
  s.set_pre_routing_handler([](const httplib::Request& req,
                               httplib::Response& res) {
    // A request without Content-Length or chunked encoding has no body (RFC
    // 9112 section 6.3), as `curl -X POST` sends it; httplib 0.11 would wait
    // for the connection to close instead. The request object is httplib's
    // own, mutable one, handed to us as const.
    if (!req.has_header("Content-Length") &&
        !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    const std::string encoding = absl::AsciiStrToLower(
        absl::StripAsciiWhitespace(req.get_header_value("Content-Encoding")));
    if (!encoding.empty() && encoding != "identity") {
      res.set_header("Accept-Encoding", "identity");
      WriteError(res, absl::UnimplementedError(absl::StrCat(
                          "compressed request bodies (", encoding.substr(0, 32),
                          ") are not supported")));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib's own refusals (no route, too large, unreadable) get the same
  // JSON error body as ours; responses that have a body already keep it.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        const int status = res.status;
        absl::Status error;
        if (status == 404) {
          error = absl::NotFoundError(absl::StrCat(
              "no such endpoint: ", req.method, " ", req.path.substr(0, 256)));
        } else if (status == 413) {
          error = absl::ResourceExhaustedError("request body too large");
        } else if (status == 414 || status == 431) {
          error =
              absl::ResourceExhaustedError("request line or headers too large");
        } else if (status >= 500) {
          error = absl::InternalError("internal error");
        } else {
          error = absl::InvalidArgumentError("malformed request");
        }
        WriteError(res, error);
        res.status = status;  // keep httplib's status (413, 405, ...)
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler([this](const httplib::Request&,
                                 httplib::Response& res, std::exception_ptr) {
    log_.Error("HTTP handler threw");
    WriteError(res, absl::InternalError("internal error"));
  });
}

absl::Status HttpServer::Start(const HttpServerOptions& options) {
  std::string host;
  int port = 0;
  if (!SplitAddress(options.address, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid HTTP address ", options.address));
  }
  if (options.tls != nullptr) {
    const TlsMaterial tls = *options.tls;
    auto ssl = std::make_unique<httplib::SSLServer>(
        [tls](SSL_CTX& ctx) { return ConfigureServerContext(tls, &ctx); });
    if (!ssl->is_valid()) {
      return absl::FailedPreconditionError(
          "cannot set up TLS for the HTTP listener");
    }
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const size_t threads = static_cast<size_t>(std::max(1, options.threads));
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  server_->set_read_timeout(WholeSeconds(options.read_timeout));
  server_->set_write_timeout(WholeSeconds(options.write_timeout));
  server_->set_keep_alive_timeout(WholeSeconds(options.keep_alive_timeout));
  server_->set_keep_alive_max_count(
      static_cast<size_t>(std::max(1, options.max_requests_per_connection)));
  server_->set_payload_max_length(options.max_body_bytes);
  rest_.set_max_response_bytes(options.max_response_bytes);
  connect_.set_max_response_bytes(options.max_response_bytes);
  // httplib's default sets SO_REUSEPORT, which would let a second control
  // plane share the port silently; SO_REUSEADDR only allows a quick restart.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  });
  AddRoutes();

  int bound = -1;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
  } else if (server_->bind_to_port(host, port)) {
    bound = port;
  }
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.address,
        " (HTTP): the address is already in use or not available on this "
        "host"));
  }
  address_ = ReportedAddress(host, bound);
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    absl::MutexLock lock(&mu_);
    listen_returned_ = true;
  });
  // httplib's stop() is a no-op until the accept loop has started; wait for
  // it so that a Stop() right after Start() cannot be lost.
  absl::MutexLock lock(&mu_);
  while (!server_->is_running() && !listen_returned_) {
    mu_.AwaitWithTimeout(absl::Condition(&listen_returned_),
                         absl::Milliseconds(1));
  }
  if (listen_returned_) {
    return absl::UnavailableError(
        absl::StrCat("the HTTP listener on ", address_, " stopped at once"));
  }
  log_.Info("HTTP listening",
            {{"http_address", address_}, {"tls", options.tls != nullptr}});
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (stopped_ || server_ == nullptr) return;
  stopped_ = true;
  draining_ = true;
  // Streams hold workers until they end; stop() waits for the workers.
  connect_.CloseStreams();
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace navarch
