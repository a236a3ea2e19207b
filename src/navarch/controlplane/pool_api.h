// The pool RPCs, transport-free: gRPC, Connect and REST answer through these,
// so they agree on every field and error.
#ifndef NAVARCH_CONTROLPLANE_POOL_API_H_
#define NAVARCH_CONTROLPLANE_POOL_API_H_

#include "absl/status/statusor.h"
#include "navarch/control_plane.pb.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {

PoolInfo ToPoolInfo(const PoolStatus& s);

// `pools` is null when the control plane manages no pools: UNIMPLEMENTED then.
// Thread-safe as PoolManager is.
absl::StatusOr<ListPoolsResponse> ListPools(PoolManager* pools);
absl::StatusOr<GetPoolResponse> GetPool(PoolManager* pools,
                                        const GetPoolRequest& req);
// Sets the target and answers the pool with it (the change itself happens at
// the pool manager's next tick).
absl::StatusOr<ResetPoolBreakerResponse> ResetPoolBreaker(
    PoolManager* pools, const ResetPoolBreakerRequest& req, const Actor& actor);
absl::StatusOr<ScalePoolResponse> ScalePool(PoolManager* pools,
                                            const ScalePoolRequest& req,
                                            const Actor& actor);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_POOL_API_H_
