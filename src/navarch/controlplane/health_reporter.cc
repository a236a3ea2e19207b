#include "navarch/controlplane/health_reporter.h"

#include <string>

namespace navarch {

HealthReporter::HealthReporter(grpc::HealthCheckServiceInterface& health,
                               Store& store, Logger log)
    : health_(health), store_(store), log_(std::move(log)) {}

void HealthReporter::SetLocked(bool serving) {
  // Both names explicitly: the per-service one exists only once set.
  health_.SetServingStatus("", serving);
  health_.SetServingStatus(kControlPlaneServiceName, serving);
  serving_ = serving;
}

void HealthReporter::Check() {
  // The ping runs outside the lock: a slow store must not hold up
  // SetDraining (and with it the shutdown).
  const absl::Status ping = store_.Ping();
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  const bool was_set = serving_.has_value();
  const bool changed = !was_set || *serving_ != ping.ok();
  if (!changed) return;
  SetLocked(ping.ok());
  if (!ping.ok()) {
    log_.Warn("gRPC health: NOT_SERVING (the store does not answer)",
              {{"error", ping}});
  } else if (was_set) {
    log_.Info("gRPC health: SERVING again (the store answers)");
  }
}

void HealthReporter::SetDraining() {
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  draining_ = true;
  SetLocked(false);
}

std::optional<bool> HealthReporter::serving() {
  absl::MutexLock lock(&mu_);
  return serving_;
}

}  // namespace navarch
