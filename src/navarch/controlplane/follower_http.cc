#include "navarch/controlplane/follower_http.h"

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/net/http_client.h"

namespace navarch {
namespace {

// Headers of one hop, not of the request: the client's connection to us, or
// what the HTTP client sets itself.
bool HopByHop(const std::string& name) {
  static const auto* kNames = new std::set<std::string>{
      "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
      "proxy-connection", "content-length", "host", "content-type",
      // httplib's own bookkeeping.
      "remote_addr", "remote_port", "local_addr", "local_port"};
  return kNames->contains(absl::AsciiStrToLower(name));
}

}  // namespace

FollowerHttp::FollowerHttp(const Authenticator& auth, Store& store,
                           MetricsRegistry& registry, Logger log,
                           FollowerHttpOptions options)
    : auth_(auth),
      store_(store),
      registry_(registry),
      log_(std::move(log)),
      options_(std::move(options)),
      listener_(
          log_,
          [&auth](const httplib::Request& req) {
            return auth.Authenticate(CredentialsOf(req), Access::kAuthenticated)
                .status();
          },
          [](httplib::Response& res, const absl::Status& status) {
            WriteError(res, status);
          }) {}

FollowerHttp::~FollowerHttp() { Stop(); }

absl::Status FollowerHttp::Start(const HttpServerOptions& server) {
  if (started_) return absl::FailedPreconditionError("started twice");
  started_ = true;
  HttpRouter& s = listener_.router();
  AddProbeRoutes(s, auth_, registry_, [this]() -> std::string {
    if (absl::Status ping = store_.Ping(); !ping.ok()) {
      return absl::StrCat("store: ", ping.message());
    }
    if (options_.leader().empty()) return "no leader elected yet";
    return "";
  });
  auto forward = [this](const httplib::Request& req, httplib::Response& res) {
    Forward(req, res);
  };
  s.Get(".*", forward);
  s.Post(".*", forward);
  s.Put(".*", forward);
  s.Delete(".*", forward);
  NAVARCH_RETURN_IF_ERROR(listener_.Start(ListenerOptionsOf(server)));
  log_.Info("HTTP listening (follower: forwarding to the leader)",
            {{"http_address", listener_.address()}});
  return absl::OkStatus();
}

void FollowerHttp::Forward(const httplib::Request& req,
                           httplib::Response& res) {
  if (req.has_header(kForwardedByHttpHeader)) {
    WriteError(
        res,
        absl::UnavailableError(absl::StrCat(
            "forwarding loop: ", req.get_header_value(kForwardedByHttpHeader),
            " forwarded this request to ", options_.replica_id,
            ", which does not lead either; retry")));
    return;
  }
  if (absl::StartsWith(req.get_header_value("Content-Type"),
                       "application/connect+")) {
    WriteError(res, absl::UnavailableError(
                        "Connect streams are served by the leader only; "
                        "retry (through the load balancer)"));
    return;
  }
  const std::string leader = options_.leader();
  if (leader.empty()) {
    WriteError(res, absl::UnavailableError("no leader elected yet; retry"));
    return;
  }
  HttpRequest out;
  out.method = req.method;
  out.url = absl::StrCat(leader, req.target.empty() ? req.path : req.target);
  for (const auto& [name, value] : req.headers) {
    if (!HopByHop(name)) out.headers[name] = value;
  }
  out.headers[kForwardedByHttpHeader] = options_.replica_id;
  out.headers["X-Forwarded-For"] = req.remote_addr;
  out.body = req.body;
  out.content_type = req.get_header_value("Content-Type");
  out.timeout = options_.timeout;
  out.ca_file = options_.ca_file;
  out.max_response_bytes = size_t{1} << 30;  // agent packages
  absl::StatusOr<HttpResponse> answer = HttpDo(out);
  if (!answer.ok()) {
    WriteError(res, absl::UnavailableError(
                        absl::StrCat("the leader did not answer: ",
                                     answer.status().message(), "; retry")));
    return;
  }
  forwarded_.fetch_add(1);
  res.status = answer->status;
  std::string type = "application/octet-stream";
  for (const auto& [name, value] : answer->headers) {
    if (name == "content-type") {
      type = value;
    } else if (!HopByHop(name)) {
      res.set_header(name, value);
    }
  }
  res.set_content(std::move(answer->body), type);
}

void FollowerHttp::Stop() {
  if (started_) listener_.Stop();
}

}  // namespace navarch
