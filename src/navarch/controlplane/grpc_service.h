// The gRPC transport: thin. Each handler checks the caller (bearer token in
// the `authorization` metadata, or the client certificate under mTLS), hands
// the request to the fleet core and finishes the call when the core's `done`
// runs (after the commit), so no gRPC thread ever blocks on storage. Every
// call is counted in the RPC metrics.
#ifndef NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_
#define NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_

#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.grpc.pb.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/cluster_status.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/provider_api.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {

class GrpcService final : public ControlPlaneService::CallbackService {
 public:
  // Everything passed in must outlive the service.
  GrpcService(FleetService& fleet, Logger log, Clock& clock,
              const Authenticator& auth, RpcMetrics& metrics)
      : fleet_(fleet),
        log_(std::move(log)),
        clock_(clock),
        auth_(auth),
        metrics_(metrics),
        max_response_bytes_(kMaxResponseBytes) {}

  // Graceful stop, first half: from now on new calls fail with UNAVAILABLE;
  // returns once every call in flight has finished (true) or `grace` passed
  // (false). gRPC's own Shutdown waits for idle client connections to go
  // away too, which can take the whole grace period; this does not.
  bool Drain(absl::Duration grace);

  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* ctx,
                                         const RegisterNodeRequest* req,
                                         RegisterNodeResponse* resp) override;
  grpc::ServerUnaryReactor* ReportHealth(grpc::CallbackServerContext* ctx,
                                         const ReportHealthRequest* req,
                                         ReportHealthResponse* resp) override;
  grpc::ServerUnaryReactor* SendHeartbeat(grpc::CallbackServerContext* ctx,
                                          const HeartbeatRequest* req,
                                          HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* GetNodeCommands(
      grpc::CallbackServerContext* ctx, const GetNodeCommandsRequest* req,
      GetNodeCommandsResponse* resp) override;
  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx,
                                      const ListNodesRequest* req,
                                      ListNodesResponse* resp) override;
  grpc::ServerUnaryReactor* GetNode(grpc::CallbackServerContext* ctx,
                                    const GetNodeRequest* req,
                                    GetNodeResponse* resp) override;
  grpc::ServerUnaryReactor* IssueCommand(grpc::CallbackServerContext* ctx,
                                         const IssueCommandRequest* req,
                                         IssueCommandResponse* resp) override;
  grpc::ServerUnaryReactor* ListInstances(grpc::CallbackServerContext* ctx,
                                          const ListInstancesRequest* req,
                                          ListInstancesResponse* resp) override;
  grpc::ServerUnaryReactor* GetInstance(grpc::CallbackServerContext* ctx,
                                        const GetInstanceRequest* req,
                                        GetInstanceResponse* resp) override;
  grpc::ServerUnaryReactor* AckCommand(grpc::CallbackServerContext* ctx,
                                       const AckCommandRequest* req,
                                       AckCommandResponse* resp) override;
  grpc::ServerWriteReactor<NodeCommand>* WatchCommands(
      grpc::CallbackServerContext* ctx,
      const WatchCommandsRequest* req) override;
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* ctx,
                                       const ListEventsRequest* req,
                                       ListEventsResponse* resp) override;
  grpc::ServerUnaryReactor* ListPools(grpc::CallbackServerContext* ctx,
                                      const ListPoolsRequest* req,
                                      ListPoolsResponse* resp) override;
  grpc::ServerUnaryReactor* GetPool(grpc::CallbackServerContext* ctx,
                                    const GetPoolRequest* req,
                                    GetPoolResponse* resp) override;
  grpc::ServerUnaryReactor* ResetPoolBreaker(
      grpc::CallbackServerContext* ctx, const ResetPoolBreakerRequest* req,
      ResetPoolBreakerResponse* resp) override;
  grpc::ServerUnaryReactor* ScalePool(grpc::CallbackServerContext* ctx,
                                      const ScalePoolRequest* req,
                                      ScalePoolResponse* resp) override;
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* ctx,
                                       const GetClusterRequest* req,
                                       GetClusterResponse* resp) override;
  grpc::ServerUnaryReactor* ListProviders(grpc::CallbackServerContext* ctx,
                                          const ListProvidersRequest* req,
                                          ListProvidersResponse* resp) override;
  grpc::ServerUnaryReactor* ListInstanceTypes(
      grpc::CallbackServerContext* ctx, const ListInstanceTypesRequest* req,
      ListInstanceTypesResponse* resp) override;

  // The pool RPCs answer UNIMPLEMENTED until this is set (no pools managed).
  // Set before the server starts; must outlive the service.
  void set_pool_manager(PoolManager* pools) { pools_ = pools; }
  // The provider RPCs answer UNIMPLEMENTED until this is set. Set before
  // the server starts; must outlive the service.
  void set_provider_api(ProviderApi* providers) { providers_ = providers; }
  void set_cluster(const ClusterStatus* cluster) { cluster_ = cluster; }
  // The largest list answered without page_size (paging.h); larger ones are
  // RESOURCE_EXHAUSTED. Set before the server starts.
  void set_max_response_bytes(size_t bytes) { max_response_bytes_ = bytes; }

 private:
  // One unary call: what it is, when it began, who made it.
  struct Call {
    grpc::ServerUnaryReactor* reactor;
    const char* method;
    absl::Duration start;
    Identity caller;
  };

  // Checks the caller and counts the call in flight. False when the call was
  // finished already: UNAVAILABLE while draining, or the caller's
  // UNAUTHENTICATED / PERMISSION_DENIED.
  bool Begin(grpc::CallbackServerContext* ctx, const char* method,
             const std::string& node_id, Call* call);
  void End();
  // Finishes the call with `status` and records it.
  void Finish(const Call& call, const absl::Status& status);
  template <typename T>
  Done<T> Finisher(Call call, T* resp);
  template <typename T>
  grpc::ServerUnaryReactor* FinishNow(const Call& call, absl::StatusOr<T> r,
                                      T* resp);

  FleetService& fleet_;
  Logger log_;
  Clock& clock_;
  const Authenticator& auth_;
  RpcMetrics& metrics_;
  PoolManager* pools_ = nullptr;
  ProviderApi* providers_ = nullptr;
  const ClusterStatus* cluster_ = nullptr;
  size_t max_response_bytes_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_
