// The transport's limit: a ControlPlaneService whose RegisterNode,
// SendHeartbeat and ReportHealth answer success at once, with no logic and no
// storage, built with the same gRPC library and server settings as the
// control plane (controlplane/server.cc). Heartbeat throughput against it is
// what gRPC alone allows on the machine; the control plane's is compared
// against it.
#ifndef NAVARCH_BENCH_ECHO_SERVER_H_
#define NAVARCH_BENCH_ECHO_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"
#include "navarch/control_plane.grpc.pb.h"

namespace navarch::bench {

class EchoService final : public ControlPlaneService::CallbackService {
 public:
  grpc::ServerUnaryReactor* RegisterNode(grpc::CallbackServerContext* ctx,
                                         const RegisterNodeRequest* req,
                                         RegisterNodeResponse* resp) override;
  grpc::ServerUnaryReactor* SendHeartbeat(grpc::CallbackServerContext* ctx,
                                          const HeartbeatRequest* req,
                                          HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* ReportHealth(grpc::CallbackServerContext* ctx,
                                         const ReportHealthRequest* req,
                                         ReportHealthResponse* resp) override;

  int64_t calls() const { return calls_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> calls_{0};
};

class EchoServer {
 public:
  // Listens on `address` ("host:port", ":port" for every interface; port 0
  // picks a free one). UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(
      const std::string& address);
  ~EchoServer();

  // "host:port" actually bound, with a connectable host.
  const std::string& address() const { return address_; }
  int64_t calls() const { return service_->calls(); }
  void Shutdown();

 private:
  EchoServer() = default;
  std::unique_ptr<EchoService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_ECHO_SERVER_H_
