// A follower's gRPC front: every call, whatever its method, is relayed as
// bytes to the leader and the leader's answer relayed back, so agents and the
// CLI may reach any replica (behind a load balancer).
#ifndef NAVARCH_CONTROLPLANE_GRPC_FORWARDER_H_
#define NAVARCH_CONTROLPLANE_GRPC_FORWARDER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "navarch/base/logging.h"

namespace navarch {

// The header a forwarder adds to the calls it relays; a call that arrives
// with it is refused, so two followers that each believe the other leads do
// not pass a call back and forth.
inline constexpr char kForwardedByHeader[] = "x-navarch-forwarded-by";

namespace forwarder_internal {
class Registry;
}  // namespace forwarder_internal

// Register with ServerBuilder::RegisterCallbackGenericService: it then serves
// every method the server has no service for. Each call becomes one
// bidirectional stream to the leader (at the HTTP/2 level every gRPC method
// is one), so unary and streaming methods, present and future, are relayed
// alike: the client's metadata (less the transport's own headers), its
// deadline, each message in order with one message in flight per direction,
// half-close and cancellation go up; the leader's initial metadata, messages,
// status (code, message, details) and trailing metadata come back.
//
// A call ends UNAVAILABLE (retryable: clients reconnect through the balancer
// and find the leader) when no leader is known, on a forwarding loop, when
// the connection to the leader breaks, and on CancelAll.
//
// Thread-safe. The server it is registered with must be shut down before it
// is destroyed; calls to the leader still finishing then are safe.
class GrpcForwarder final : public grpc::CallbackGenericService {
 public:
  struct Options {
    // The channel to the current leader, or nullptr when none is known. Called
    // once per call on a gRPC thread: must not block (return a cached
    // channel). The channel's message size limits are the caller's choice.
    std::function<std::shared_ptr<grpc::Channel>()> upstream;
    // This replica's id: the value of kForwardedByHeader, and in logs.
    std::string replica_id;
    std::optional<Logger> log;
  };

  explicit GrpcForwarder(Options options);
  ~GrpcForwarder() override;
  GrpcForwarder(const GrpcForwarder&) = delete;
  GrpcForwarder& operator=(const GrpcForwarder&) = delete;

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override;

  // Ends every call being relayed with UNAVAILABLE and cancels its call to
  // the leader (this replica became the leader: its clients reconnect and
  // find it). Calls that arrive later are still relayed.
  void CancelAll();

  // Calls being relayed: each counts until both its sides are torn down
  // (the call to the leader may end after the client's call). A relay holds
  // its channel until then: once this is 0, no call uses an old leader's
  // channel any more, and dropping it cannot happen on a gRPC thread.
  int64_t in_flight() const;
  // Calls relayed to a leader since start (refused ones not counted).
  int64_t forwarded() const;

 private:
  Options options_;
  Logger log_;
  // Shared with the calls, which may finish after this object is gone.
  std::shared_ptr<forwarder_internal::Registry> registry_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_GRPC_FORWARDER_H_
