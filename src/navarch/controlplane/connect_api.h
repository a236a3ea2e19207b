// The Connect protocol, unary: POST /navarch.ControlPlaneService/<Method>
// with an application/json (protobuf JSON mapping) or application/proto body,
// for every unary RPC of the service, so curl and upstream's Connect clients
// work. Errors are Connect error JSON with Connect's HTTP statuses; a
// malformed body is invalid_argument (400), never a 500.
//
// WatchCommands is served as a Connect server stream (connect_stream.h).
// Not served: GET requests (no method of the service is marked side-effect
// free), compressed request bodies.
#ifndef NAVARCH_CONTROLPLANE_CONNECT_API_H_
#define NAVARCH_CONTROLPLANE_CONNECT_API_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "google/protobuf/message.h"
#include "httplib.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/provider_api.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/net/http_listener.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {

inline constexpr char kConnectServicePath[] = "/navarch.ControlPlaneService/";

class ConnectApi {
 public:
  // `pools` may be null (no pools managed): the pool RPCs answer
  // unimplemented; `providers` too, for the provider RPCs.
  ConnectApi(FleetService& fleet, const HttpApiContext& ctx, PoolManager* pools,
             ProviderApi* providers = nullptr);

  // Adds the route to `server`.
  void Register(HttpRouter& server);
  // Open WatchCommands streams end (unavailable) within a second; new ones
  // too. For HttpServer::Stop.
  void CloseStreams() { closing_ = true; }
  // The largest list answered without page_size (paging.h).
  void set_max_response_bytes(size_t bytes) { max_response_bytes_ = bytes; }

 private:
  // The operator and pool RPCs (the constructor adds the node RPCs).
  void AddOperatorMethods();
  void AddProviderMethods();
  struct Method {
    Access access;
    std::function<std::unique_ptr<google::protobuf::Message>()> new_request;
    // Runs the call; blocks until the fleet core answers.
    std::function<absl::StatusOr<std::unique_ptr<google::protobuf::Message>>(
        const google::protobuf::Message& request, const Identity& caller)>
        call;
  };
  template <typename Req, typename Resp>
  void Add(
      const std::string& name,
      std::function<absl::StatusOr<Resp>(const Req&, const Identity&)> call);

  void Handle(const httplib::Request& req, httplib::Response& res);

  FleetService& fleet_;
  HttpApiContext ctx_;
  PoolManager* pools_;
  ProviderApi* providers_;
  size_t max_response_bytes_ = kMaxResponseBytes;
  std::atomic<bool> closing_{false};
  std::map<std::string, Method> methods_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_CONNECT_API_H_
