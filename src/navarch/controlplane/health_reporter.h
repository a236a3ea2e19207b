// Keeps gRPC's health service (grpc.health.v1.Health, what Kubernetes gRPC
// probes, grpc-health-probe and load balancers ask) in step with /readyz:
// SERVING while the store answers, NOT_SERVING while it does not, and
// NOT_SERVING for good from the start of a shutdown.
//
// gRPC's own implementation serves the protocol (Check and Watch); this only
// sets its statuses, for the whole server ("") and for
// navarch.ControlPlaneService. Check() runs on a timer (the server's
// periodic task), so a Watch sees a store outage within one interval.
#ifndef NAVARCH_CONTROLPLANE_HEALTH_REPORTER_H_
#define NAVARCH_CONTROLPLANE_HEALTH_REPORTER_H_

#include <optional>

#include "absl/synchronization/mutex.h"
#include "grpcpp/health_check_service_interface.h"
#include "navarch/base/logging.h"
#include "navarch/store/store.h"

namespace navarch {

inline constexpr char kControlPlaneServiceName[] =
    "navarch.ControlPlaneService";

class HealthReporter {
 public:
  // `health` and `store` must outlive the reporter. Thread-safe.
  HealthReporter(grpc::HealthCheckServiceInterface& health, Store& store,
                 Logger log);

  // Pings the store and sets the statuses from the answer (logging a
  // change). Does nothing once draining.
  void Check();
  // NOT_SERVING from now on; later Checks change nothing.
  void SetDraining();
  // The status last set; nullopt before the first Check.
  std::optional<bool> serving();

 private:
  void SetLocked(bool serving) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::HealthCheckServiceInterface& health_;
  Store& store_;
  Logger log_;
  absl::Mutex mu_;
  std::optional<bool> serving_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_HEALTH_REPORTER_H_
