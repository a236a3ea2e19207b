#include "navarch/controlplane/http_api.h"

#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/controlplane/tls.h"

namespace navarch {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

void WriteJson(httplib::Response& res, const nlohmann::json& body,
               int http_status) {
  res.status = http_status;
  // Invalid UTF-8 in a stored string must not turn into an exception here.
  res.set_content(
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
          "\n",
      "application/json");
}

void WriteError(httplib::Response& res, const absl::Status& status) {
  nlohmann::json body = {{"code", std::string(StatusCodeName(status.code()))},
                         {"message", std::string(status.message())}};
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"navarch\"");
  }
  WriteJson(res, body, HttpStatusFor(status.code()));
}

Credentials CredentialsOf(const httplib::Request& req) {
  Credentials c;
  c.authorization = req.get_header_value("Authorization");
  if (req.ssl != nullptr) {
    c.certificate_names = PeerCertificateNames(req.ssl);
    c.has_certificate = !c.certificate_names.empty();
  }
  return c;
}

void RunApiCall(const HttpApiContext& ctx, const ApiCallSpec& spec,
                const httplib::Request& req, httplib::Response& res,
                const std::function<absl::Status(const Identity&)>& handler) {
  const absl::Duration start = ctx.clock.SteadyNow();
  absl::Status status;
  absl::StatusOr<Identity> id =
      ctx.auth.Authenticate(CredentialsOf(req), spec.access);
  if (!id.ok()) {
    status = id.status();
  } else if (spec.authorize) {
    status = ctx.auth.Authorize(*id, spec.access, spec.method, "");
  }
  if (status.ok()) {
    try {
      status = handler(*id);
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("internal error: ", e.what()));
    }
  }
  if (!status.ok()) WriteError(res, status);
  const absl::Duration latency = ctx.clock.SteadyNow() - start;
  ctx.metrics.Record(spec.protocol, spec.method, status.code(), latency);
  if (status.code() == absl::StatusCode::kInternal ||
      status.code() == absl::StatusCode::kUnknown ||
      status.code() == absl::StatusCode::kDataLoss) {
    ctx.log.Warn("API call failed", {{"protocol", spec.protocol},
                                     {"method", spec.method},
                                     {"error", status}});
  } else {
    ctx.log.Debug("API call",
                  {{"protocol", spec.protocol},
                   {"method", spec.method},
                   {"code", StatusCodeName(status.code())},
                   {"actor", id.ok() ? id->actor : std::string("-")},
                   {"latency", latency}});
  }
}

}  // namespace navarch
