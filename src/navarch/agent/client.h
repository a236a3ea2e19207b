// The agent's view of the control plane: the node-agent RPCs, nothing else.
// GrpcControlPlaneClient talks to a real server; tests (and the simulator,
// which runs agents in-process) implement it over whatever they have.
#ifndef NAVARCH_AGENT_CLIENT_H_
#define NAVARCH_AGENT_CLIENT_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

// A live WatchCommands stream. Destroying it cancels the stream and waits
// until its `done` callback has returned, so nothing the callbacks capture is
// used afterwards.
class CommandStream {
 public:
  virtual ~CommandStream() = default;
};

// Every method may block (network) and is thread-safe. Errors use canonical
// codes: UNAVAILABLE / DEADLINE_EXCEEDED for a control plane that cannot be
// reached, NOT_FOUND for a node it does not know, UNIMPLEMENTED for an RPC it
// lacks (an upstream control plane has no WatchCommands or AckCommand).
class ControlPlaneClient {
 public:
  virtual ~ControlPlaneClient() = default;

  virtual absl::StatusOr<RegisterNodeResponse> RegisterNode(
      const RegisterNodeRequest& req) = 0;
  virtual absl::StatusOr<HeartbeatResponse> SendHeartbeat(
      const HeartbeatRequest& req) = 0;
  virtual absl::StatusOr<ReportHealthResponse> ReportHealth(
      const ReportHealthRequest& req) = 0;
  virtual absl::StatusOr<GetNodeCommandsResponse> GetNodeCommands(
      const GetNodeCommandsRequest& req) = 0;
  virtual absl::StatusOr<AckCommandResponse> AckCommand(
      const AckCommandRequest& req) = 0;

  // Opens a command stream. `on_command` runs for each command received (on
  // a client thread; it must not block), then `done` exactly once with the
  // reason the stream ended (CANCELLED after the handle is destroyed). Both
  // may run before this returns.
  virtual std::unique_ptr<CommandStream> WatchCommands(
      const WatchCommandsRequest& req,
      std::function<void(const NodeCommand&)> on_command,
      std::function<void(absl::Status)> done) = 0;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_CLIENT_H_
