// The control plane, wired: store, fleet core, controllers, gRPC listener.
// apps/control-plane/main.cc only parses flags, installs signal handling and
// calls this.
#ifndef NAVARCH_CONTROLPLANE_SERVER_H_
#define NAVARCH_CONTROLPLANE_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/controlplane/grpc_service.h"
#include "navarch/controlplane/periodic.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/health/evaluator.h"
#include "navarch/store/store.h"

namespace navarch {

// ":50051" (Go style: every interface) -> "[::]:50051"; others unchanged.
std::string GrpcListenAddress(const std::string& address);

// How long finished events, commands and terminated instances are kept.
inline constexpr absl::Duration kHistoryRetention = absl::Hours(24 * 7);

class ControlPlaneServer {
 public:
  // `config` must have been through ResolveConfig().
  ControlPlaneServer(Config config, Clock& clock, Logger log);
  ~ControlPlaneServer();

  // Opens the store, loads the fleet, starts the controllers and listens.
  // A taken port fails at once with UNAVAILABLE naming the address.
  absl::Status Start();

  // Stops accepting calls, finishes the ones in flight (up to `grace`), stops
  // the controllers, flushes and closes the store. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

  // Loads server.health_policy again (SIGHUP). A valid policy replaces the
  // old one atomically; an invalid one is rejected, the old one stays, and
  // the error is returned (and logged).
  absl::Status ReloadPolicy();

  // "host:port" the gRPC listener is bound to (the real port when 0 was asked).
  const std::string& grpc_address() const { return grpc_address_; }
  FleetService& fleet() { return *fleet_; }

 private:
  Config config_;
  Clock& clock_;
  Logger log_;
  std::unique_ptr<Store> store_;
  PolicyEvaluator evaluator_;
  std::unique_ptr<FleetService> fleet_;
  std::unique_ptr<GrpcService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<PeriodicTask>> controllers_;
  std::string grpc_address_;
  bool shut_down_ = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_SERVER_H_
