#include "navarch/controlplane/rpc_metrics.h"

#include <string>

namespace navarch {

absl::string_view StatusCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kCancelled:
      return "canceled";
    case absl::StatusCode::kUnknown:
      return "unknown";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "already_exists";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kOutOfRange:
      return "out_of_range";
    case absl::StatusCode::kUnimplemented:
      return "unimplemented";
    case absl::StatusCode::kInternal:
      return "internal";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDataLoss:
      return "data_loss";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    default:
      return "unknown";
  }
}

RpcMetrics::RpcMetrics(MetricsRegistry& registry)
    : requests_(registry.AddCounter(
          "navarch_rpc_requests_total",
          "API calls finished (unary) or opened (streams), by protocol (grpc, "
          "connect, rest), method and status code.",
          {"protocol", "method", "code"})),
      latency_(registry.AddHistogram(
          "navarch_rpc_duration_seconds",
          "Time from receiving a unary API call to its answer, including the "
          "store commit for changes.",
          {"protocol", "method", "code"})) {}

void RpcMetrics::Record(absl::string_view protocol, absl::string_view method,
                        absl::StatusCode code, absl::Duration latency) {
  LabelValues labels{std::string(protocol), std::string(method),
                     std::string(StatusCodeName(code))};
  requests_.Add(labels);
  latency_.Observe(labels, absl::ToDoubleSeconds(latency));
}

void RpcMetrics::RecordStream(absl::string_view protocol,
                              absl::string_view method, absl::StatusCode code) {
  requests_.Add({std::string(protocol), std::string(method),
                 std::string(StatusCodeName(code))});
}

double RpcMetrics::Count(absl::string_view protocol, absl::string_view method,
                         absl::StatusCode code) {
  return requests_.Value({std::string(protocol), std::string(method),
                          std::string(StatusCodeName(code))});
}

}  // namespace navarch
