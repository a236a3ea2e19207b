// What the REST and Connect handlers share: one API call's life (credentials,
// authentication, the handler, the error body, metrics) and the JSON error
// shape, which is Connect's: {"code": "not_found", "message": "..."} with
// Connect's HTTP status for the code.
#ifndef NAVARCH_CONTROLPLANE_HTTP_API_H_
#define NAVARCH_CONTROLPLANE_HTTP_API_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/cluster_status.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "nlohmann/json.hpp"

namespace navarch {

// Connect's HTTP status for a code: invalid_argument, failed_precondition and
// out_of_range 400, unauthenticated 401, permission_denied 403, not_found
// 404, already_exists and aborted 409, resource_exhausted 429, canceled 499,
// unimplemented 501, unavailable 503, deadline_exceeded 504, others 500.
int HttpStatusFor(absl::StatusCode code);

// The Connect error body for `status` (not OK), with its HTTP status; 401s
// carry `WWW-Authenticate: Bearer realm="navarch"`.
void WriteError(httplib::Response& res, const absl::Status& status);
void WriteJson(httplib::Response& res, const nlohmann::json& body,
               int http_status = 200);

// The Authorization header and the verified client certificate, if any.
Credentials CredentialsOf(const httplib::Request& req);

// Everything an API call needs besides the fleet.
struct HttpApiContext {
  const Authenticator& auth;
  RpcMetrics& metrics;
  Clock& clock;
  Logger log;
  const ClusterStatus* cluster = nullptr;  // null: GetCluster answers 501
};

struct ApiCallSpec {
  absl::string_view protocol;  // "rest" or "connect"
  absl::string_view method;    // metric label and name in messages
  Access access;
  // False: only authenticate; the handler calls Authorize itself once it
  // knows the node the request is about (Connect node RPCs).
  bool authorize = true;
};

// Runs one API call: authenticates the caller (and authorizes it, see
// above), runs `handler`, which writes the response and returns OK or
// returns the error to write, and records the outcome and latency. An
// exception becomes INTERNAL, never a dropped connection.
void RunApiCall(const HttpApiContext& ctx, const ApiCallSpec& spec,
                const httplib::Request& req, httplib::Response& res,
                const std::function<absl::Status(const Identity&)>& handler);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_HTTP_API_H_
