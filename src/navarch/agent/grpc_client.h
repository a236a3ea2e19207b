// ControlPlaneClient over gRPC, with the reconnection behaviour an agent
// needs: calls fail fast while the control plane is down (the agent retries
// on its own schedule), and the channel tries to reconnect at least every few
// seconds, so a restarted control plane is found quickly.
#ifndef NAVARCH_AGENT_GRPC_CLIENT_H_
#define NAVARCH_AGENT_GRPC_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/agent/client.h"
#include "navarch/control_plane.grpc.pb.h"

namespace navarch::agent {

struct ServerAddress {
  std::string target;  // for grpc::CreateChannel: "host:port"
  bool tls = false;
};

// Accepts "host:port", "http://host:port" (upstream's style; plaintext) and
// "https://host:port" (TLS with the system's roots). A missing port means
// 50051 (443 with https). INVALID_ARGUMENT for anything else.
absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view server);

struct GrpcClientOptions {
  std::string server;      // as ParseServerAddress accepts
  std::string auth_token;  // sent as "authorization: Bearer <token>" when set
  // TLS. Any of these turns TLS on (also for a bare "host:port"; an explicit
  // "http://" with them is an error). ca_file: PEM roots to trust instead of
  // the system's. cert_file + key_file: the agent's client certificate, for
  // a control plane with server.tls.client_ca_file (mTLS); a certificate
  // naming this node (common name or DNS name = node id) authenticates it
  // without a token.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  absl::Duration rpc_timeout = absl::Seconds(10);
  // Longest pause of the channel between connection attempts.
  absl::Duration max_reconnect_backoff = absl::Seconds(5);
  std::string user_agent = "navarch-node-agent";
  // Called with the node token a RegisterNode answer carries (the agent
  // registered with a bootstrap token, docs/security.md), on the calling
  // thread before RegisterNode returns; from then on the client sends that
  // token instead of auth_token. The agent keeps it for its next start.
  std::function<void(const std::string& node_token)> on_node_token;
};

class GrpcControlPlaneClient final : public ControlPlaneClient {
 public:
  static absl::StatusOr<std::unique_ptr<GrpcControlPlaneClient>> Create(
      GrpcClientOptions options);
  // Cancels open command streams and waits for them to finish. Destroy the
  // streams' handles first (the agent does): see StreamState.
  ~GrpcControlPlaneClient() override;

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

  const std::string& target() const { return target_; }

  // Shared between a stream's handle, its reactor and this client.
  struct StreamState;

 private:
  GrpcControlPlaneClient(GrpcClientOptions options, std::string target,
                         std::unique_ptr<ControlPlaneService::Stub> stub);
  void Prepare(grpc::ClientContext* ctx, bool deadline) const;

  GrpcClientOptions options_;
  mutable absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);  // Sent as the bearer.
  std::string target_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;

  absl::Mutex mu_;
  std::vector<std::weak_ptr<StreamState>> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_GRPC_CLIENT_H_
