// Counts and latencies of API calls, whatever the transport: gRPC, Connect
// and REST record into the same two families, labelled by protocol, method
// and outcome.
#ifndef NAVARCH_CONTROLPLANE_RPC_METRICS_H_
#define NAVARCH_CONTROLPLANE_RPC_METRICS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/controlplane/metrics.h"

namespace navarch {

// The canonical code as Connect spells it ("ok", "not_found", "canceled").
absl::string_view StatusCodeName(absl::StatusCode code);

class RpcMetrics {
 public:
  explicit RpcMetrics(MetricsRegistry& registry);

  // A finished unary call. `protocol`: "grpc", "connect" or "rest".
  void Record(absl::string_view protocol, absl::string_view method,
              absl::StatusCode code, absl::Duration latency);
  // A server stream that opened (OK) or was refused; streams live for hours,
  // so their lifetime is not a latency and is not observed.
  void RecordStream(absl::string_view protocol, absl::string_view method,
                    absl::StatusCode code);

  double Count(absl::string_view protocol, absl::string_view method,
               absl::StatusCode code);

 private:
  CounterFamily& requests_;
  HistogramFamily& latency_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_RPC_METRICS_H_
