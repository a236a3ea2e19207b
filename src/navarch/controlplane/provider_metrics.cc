#include "navarch/controlplane/provider_metrics.h"

#include <string>

namespace navarch {

ProviderCallMetrics::ProviderCallMetrics(MetricsRegistry& registry)
    : requests_(registry.AddCounter(
          "navarch_provider_requests_total",
          "HTTP requests to cloud APIs, each retry counted, by provider, "
          "operation and result (ok, 4xx, 5xx, 429, network).",
          {"provider", "operation", "result"})),
      latency_(registry.AddHistogram(
          "navarch_provider_request_duration_seconds",
          "Time of each HTTP request to a cloud API, by provider and "
          "operation.",
          {"provider", "operation"})) {}

void ProviderCallMetrics::OnCall(absl::string_view provider,
                                 absl::string_view operation,
                                 absl::string_view result,
                                 absl::Duration latency) {
  requests_.Add(
      {std::string(provider), std::string(operation), std::string(result)});
  latency_.Observe({std::string(provider), std::string(operation)},
                   absl::ToDoubleSeconds(latency));
}

}  // namespace navarch
