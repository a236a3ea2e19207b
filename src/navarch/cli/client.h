// The CLI's connection to the control plane: address forms, TLS, the bearer
// token, the deadline, and errors turned into sentences an operator can act
// on. One Client per command run; not thread-safe (the CLI is one thread).
#ifndef NAVARCH_CLI_CLIENT_H_
#define NAVARCH_CLI_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "navarch/control_plane.grpc.pb.h"

namespace navarch::cli {

// Items per page when the CLI follows a list's pages.
inline constexpr int kListPageSize = 1000;

struct ConnectionOptions {
  // "host:port", "http://host:port" (plaintext) or "https://host[:port]"
  // (TLS), as upstream's --server takes it.
  std::string server = "localhost:50051";
  // Sent as "authorization: Bearer <token>" on every call when not empty.
  std::string token;
  absl::Duration timeout = absl::Seconds(30);
  std::string ca_file;    // PEM roots to verify the server with
  std::string cert_file;  // PEM client certificate (mTLS), with key_file
  std::string key_file;
  bool insecure_skip_verify = false;
};

// Where to dial and whether to speak TLS. `display` is what error messages
// call the server (the --server text without a trailing slash).
struct ServerAddress {
  std::string target;
  bool tls = false;
  std::string display;
};

// A scheme picks TLS and a default port (http: 80, https: 443); without a
// scheme the default port is Navarch's 50051. TLS is also on when any TLS
// flag is given. A path after the address is an error (gRPC has none).
absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view server,
                                                 bool tls_flags);

// Turns a failed call into what the operator should read, keeping the code:
// the server's own message for the control plane's errors ("node gpu-7 not
// found"); a plain sentence for transport and authentication failures.
absl::Status Explain(const grpc::Status& status, absl::string_view method,
                     absl::string_view server, absl::string_view timeout,
                     bool token_given);

class Client {
 public:
  // Builds the channel; reads the TLS files. Does not dial yet.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ConnectionOptions& options);
  // Over an existing channel (tests).
  Client(std::shared_ptr<grpc::Channel> channel, ConnectionOptions options,
         std::string display);

  absl::StatusOr<ListNodesResponse> ListNodes(const ListNodesRequest& req);
  absl::StatusOr<GetNodeResponse> GetNode(const GetNodeRequest& req);
  absl::StatusOr<IssueCommandResponse> IssueCommand(
      const IssueCommandRequest& req);
  absl::StatusOr<ListInstancesResponse> ListInstances(
      const ListInstancesRequest& req);
  absl::StatusOr<GetInstanceResponse> GetInstance(
      const GetInstanceRequest& req);
  absl::StatusOr<ListEventsResponse> ListEvents(const ListEventsRequest& req);
  // Every node (instance) `req` selects, asked for `page_size` at a time and
  // following next_page_token to the end (AIP-158), so a fleet of any size
  // lists without hitting a message limit. An upstream server, which knows
  // no paging, answers everything at once with no token: one call.
  absl::StatusOr<std::vector<NodeInfo>> ListAllNodes(ListNodesRequest req,
                                                     int page_size);
  absl::StatusOr<std::vector<InstanceInfo>> ListAllInstances(
      ListInstancesRequest req, int page_size);
  absl::StatusOr<ListPoolsResponse> ListPools(const ListPoolsRequest& req);
  absl::StatusOr<GetPoolResponse> GetPool(const GetPoolRequest& req);
  absl::StatusOr<ScalePoolResponse> ScalePool(const ScalePoolRequest& req);
  absl::StatusOr<ResetPoolBreakerResponse> ResetPoolBreaker(
      const ResetPoolBreakerRequest& req);
  absl::StatusOr<ListProvidersResponse> ListProviders(
      const ListProvidersRequest& req);
  absl::StatusOr<GetClusterResponse> GetCluster(const GetClusterRequest& req);
  absl::StatusOr<ListInstanceTypesResponse> ListInstanceTypes(
      const ListInstanceTypesRequest& req);

  // Calls `method` (e.g. "ListPools") of navarch.ControlPlaneService with an
  // empty request and discards the answer: tells whether the server serves a
  // method this client has no messages for. Only for read-only methods, since
  // an empty request must be harmless. When `server_version` is given, it
  // receives the version the server names in its "navarch-version" response
  // header (empty if it names none: an upstream or older server).
  absl::Status Probe(absl::string_view method,
                     std::string* server_version = nullptr);

  // The server as the operator named it.
  const std::string& display() const { return display_; }

 private:
  void Prepare(grpc::ClientContext* ctx) const;
  absl::Status Explain(const grpc::Status& status,
                       absl::string_view method) const;

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(absl::string_view method,
                            grpc::Status (ControlPlaneService::Stub::*fn)(
                                grpc::ClientContext*, const Req&, Resp*),
                            const Req& req);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
  ConnectionOptions options_;
  std::string display_;
};

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_CLIENT_H_
