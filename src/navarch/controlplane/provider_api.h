// The provider RPCs, transport-free: gRPC, Connect and REST answer through
// these, so they agree on every field and error.
//
// ListInstanceTypes asks the cloud, which may take seconds or hang: the call
// runs on a thread of its own (never a gRPC or HTTP thread, never the
// clock's timer thread, never under a lock), and its answer is waited for at
// most ProviderApiOptions::call_timeout, after which the caller gets
// DEADLINE_EXCEEDED. A call still running then is abandoned, not stopped:
// like the pool manager's, it touches only its own state and the provider,
// which must outlive it.
#ifndef NAVARCH_CONTROLPLANE_PROVIDER_API_H_
#define NAVARCH_CONTROLPLANE_PROVIDER_API_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/control_plane.pb.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/provider/provider.h"
#include "navarch/provider/registry.h"

namespace navarch {

struct ProviderApiOptions {
  // How long one ListInstanceTypes call to a provider is waited for. Under
  // the CLI's default --timeout (30s), so the CLI shows this deadline's
  // message (which provider) rather than its own.
  absl::Duration call_timeout = absl::Seconds(25);
};

// One type as the API answers it: the price only where the provider knows
// it, and the abstract types that resolve to it for a provider of `type`.
ProviderInstanceType ToProviderInstanceType(const InstanceTypeInfo& info,
                                            ProviderType type);

// What the provider RPCs answer where there is no ProviderApi: UNIMPLEMENTED.
absl::Status ProvidersNotServed();

class ProviderApi {
 public:
  // `registry` and `pools` may be null: the control plane builds providers
  // only when it manages pools, and then every configured provider is listed
  // as unavailable. `unavailable` holds why a configured provider could not
  // be built, by name. Everything passed in must outlive this object (the
  // registry's providers also every call abandoned at its deadline).
  ProviderApi(const Config& config, const ProviderRegistry* registry,
              PoolManager* pools, Clock& clock,
              std::map<std::string, std::string> unavailable = {},
              ProviderApiOptions options = {});
  // Stop(), then waits for nothing: abandoned calls keep only shared state.
  ~ProviderApi();

  // Thread-safe; never calls a provider.
  absl::StatusOr<ListProvidersResponse> ListProviders();

  // Asks the provider on a thread of its own; `done` runs exactly once, on
  // that thread or on the clock's timer thread (DEADLINE_EXCEEDED after
  // call_timeout), or at once for a request that cannot be made (unknown or
  // unavailable provider). Never blocks.
  void ListInstanceTypes(const ListInstanceTypesRequest& req,
                         Done<ListInstanceTypesResponse> done);
  // The same, waiting for `done` (HTTP worker threads, tests).
  absl::StatusOr<ListInstanceTypesResponse> ListInstanceTypes(
      const ListInstanceTypesRequest& req);

  // Answers every call still waited for with UNAVAILABLE (the server is
  // shutting down), and every later one too. Idempotent.
  void Stop();

  // Provider calls whose thread still runs, abandoned ones included (tests:
  // wait for 0 before releasing a provider that hangs).
  int calls_running();
  void AwaitNoCallsRunning();

 private:
  struct Shared;

  const Config& config_;
  const ProviderRegistry* registry_;
  PoolManager* pools_;
  Clock& clock_;
  const std::map<std::string, std::string> unavailable_;
  const ProviderApiOptions options_;
  const std::shared_ptr<Shared> shared_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_PROVIDER_API_H_
