// navarch_provider_requests_total and
// navarch_provider_request_duration_seconds: every HTTP attempt a cloud
// provider makes (CloudHttp reports each one).
#ifndef NAVARCH_CONTROLPLANE_PROVIDER_METRICS_H_
#define NAVARCH_CONTROLPLANE_PROVIDER_METRICS_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {

class ProviderCallMetrics final : public CloudCallObserver {
 public:
  // Registers both families in `registry`, which must outlive this.
  explicit ProviderCallMetrics(MetricsRegistry& registry);

  void OnCall(absl::string_view provider, absl::string_view operation,
              absl::string_view result, absl::Duration latency) override;

 private:
  CounterFamily& requests_;
  HistogramFamily& latency_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_PROVIDER_METRICS_H_
