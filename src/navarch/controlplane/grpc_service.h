// The gRPC transport: thin. Each handler hands the request to the fleet core
// and finishes the call when the core's `done` runs (after the commit), so no
// gRPC thread ever blocks on storage.
#ifndef NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_
#define NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_

#include "absl/synchronization/mutex.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.grpc.pb.h"
#include "navarch/fleet/fleet_service.h"

namespace navarch {

class GrpcService final : public ControlPlaneService::CallbackService {
 public:
  GrpcService(FleetService& fleet, Logger log)
      : fleet_(fleet), log_(std::move(log)) {}

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

 private:
  // Counts a call in flight; false (and the call is finished UNAVAILABLE)
  // while draining.
  bool Begin(grpc::ServerUnaryReactor* reactor);
  void End();
  template <typename T>
  Done<T> Finisher(grpc::ServerUnaryReactor* reactor, T* resp);
  template <typename T>
  grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx,
                                      absl::StatusOr<T> r, T* resp);

  FleetService& fleet_;
  Logger log_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_GRPC_SERVICE_H_
