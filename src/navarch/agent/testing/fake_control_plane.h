// An in-memory control plane for agent tests and benchmarks: answers the
// node-agent RPCs like the real one (or like upstream's, or like one that is
// down or lost its data) and records everything it was sent.
#ifndef NAVARCH_AGENT_TESTING_FAKE_CONTROL_PLANE_H_
#define NAVARCH_AGENT_TESTING_FAKE_CONTROL_PLANE_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/client.h"

namespace navarch::agent::testing {

class FakeControlPlane final : public ControlPlaneClient {
 public:
  FakeControlPlane();
  ~FakeControlPlane() override;

  // ---- Behaviour.
  // Every call fails with UNAVAILABLE (and open streams end) while down.
  void SetDown(bool down);
  // Forgets every node (a control plane restarted without its data): calls
  // about them get NOT_FOUND until they register again.
  void ForgetNodes();
  // Behaves like the upstream Go control plane: no WatchCommands, no
  // AckCommand, commands_ack_supported false.
  void SetUpstream(bool upstream);
  // WatchCommands answers UNIMPLEMENTED although acks are supported (a proxy
  // that does not pass server streams).
  void SetStreamUnimplemented(bool unimplemented);
  // The next ReportHealth calls fail with `status` (`count` times).
  void FailReports(absl::Status status, int count);
  void SetIntervals(int heartbeat_seconds, int health_seconds);
  // Issues a command: streamed at once to a watching agent, else kept for
  // GetNodeCommands (and for the next stream, until acknowledged).
  void Issue(const NodeCommand& command);
  // Ends open command streams with `status`.
  void EndStreams(absl::Status status);

  // ---- What the agent sent.
  int registrations() const;
  std::vector<RegisterNodeRequest> register_requests() const;
  std::vector<HeartbeatRequest> heartbeats() const;
  std::vector<ReportHealthRequest> reports() const;
  std::vector<HealthEvent> events()
      const;  // of every accepted report, in order
  std::vector<AckCommandRequest> acks() const;
  int polls() const;
  int streams_opened() const;
  int open_streams() const;
  int calls() const;

  // ---- ControlPlaneClient.
  absl::StatusOr<RegisterNodeResponse> RegisterNode(
      const RegisterNodeRequest& req) override;
  absl::StatusOr<HeartbeatResponse> SendHeartbeat(
      const HeartbeatRequest& req) override;
  absl::StatusOr<ReportHealthResponse> ReportHealth(
      const ReportHealthRequest& req) override;
  absl::StatusOr<GetNodeCommandsResponse> GetNodeCommands(
      const GetNodeCommandsRequest& req) override;
  absl::StatusOr<AckCommandResponse> AckCommand(
      const AckCommandRequest& req) override;
  std::unique_ptr<CommandStream> WatchCommands(
      const WatchCommandsRequest& req,
      std::function<void(const NodeCommand&)> on_command,
      std::function<void(absl::Status)> done) override;

 private:
  struct Stream {
    std::function<void(const NodeCommand&)> on_command;
    std::function<void(absl::Status)> done;
    bool ended = false;
  };
  class Handle;
  absl::Status Gate(const std::string& node_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends stream `id` with `status` (outside the lock).
  void End(int id, absl::Status status);

  mutable absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_unimplemented_ ABSL_GUARDED_BY(mu_) = false;
  int heartbeat_seconds_ ABSL_GUARDED_BY(mu_) = 30;
  int health_seconds_ ABSL_GUARDED_BY(mu_) = 60;
  absl::Status report_failure_ ABSL_GUARDED_BY(mu_);
  int report_failures_left_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> nodes_ ABSL_GUARDED_BY(mu_);
  std::vector<RegisterNodeRequest> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::vector<ReportHealthRequest> reports_ ABSL_GUARDED_BY(mu_);
  std::vector<AckCommandRequest> acks_ ABSL_GUARDED_BY(mu_);
  std::vector<NodeCommand> pending_ ABSL_GUARDED_BY(mu_);  // not yet polled
  std::map<std::string, NodeCommand> unacked_ ABSL_GUARDED_BY(mu_);
  std::map<int, std::shared_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  int next_stream_ ABSL_GUARDED_BY(mu_) = 1;
  int streams_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int polls_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace navarch::agent::testing

#endif  // NAVARCH_AGENT_TESTING_FAKE_CONTROL_PLANE_H_
