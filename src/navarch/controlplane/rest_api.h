// REST JSON under /api/v1, in the same shape as the CLI's `-o json`
// (upstream field names, enum names, RFC 3339 times; lists are arrays):
//
//   GET  /api/v1/nodes[?provider=&region=&zone=&pool=&status=&health=
//                      &label=k=v&page_size=&page_token=]
//   GET  /api/v1/nodes/{id}
//   POST /api/v1/nodes/{id}/{cordon|uncordon|drain|terminate}
//        [{"reason": "..."}]
//   GET  /api/v1/instances[?provider=&region=&state=&pool=&page_size=
//                          &page_token=]
//   GET  /api/v1/instances/{id}
//   GET  /api/v1/pools, GET /api/v1/pools/{name}
//   POST /api/v1/pools/{name}/scale, POST /api/v1/pools/{name}/reset-breaker
//   GET  /api/v1/providers, GET /api/v1/providers/{name}/instance-types
//   GET  /api/v1/events[?node=&pool=&kind=&since=&until=&page_size=
//                       &page_token=]
//
// Lists page (AIP-158): the body stays a JSON array; the next page's URL is
// in `Link: <...>; rel="next"` (RFC 8288) and its token in
// X-Next-Page-Token.
//
// docs/api.md is the reference.
#ifndef NAVARCH_CONTROLPLANE_REST_API_H_
#define NAVARCH_CONTROLPLANE_REST_API_H_

#include <string>

#include "absl/status/statusor.h"
#include "httplib.h"
#include "navarch/controlplane/http_api.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/provider_api.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/net/http_listener.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {

class RestApi {
 public:
  // `pools` may be null (no pools managed): the pool routes answer 501;
  // `providers` too: the provider routes answer 501.
  RestApi(FleetService& fleet, const HttpApiContext& ctx, PoolManager* pools,
          ProviderApi* providers = nullptr);

  void Register(HttpRouter& server);
  // The largest list answered without page_size (paging.h). Set before
  // Register.
  void set_max_response_bytes(size_t bytes) { max_response_bytes_ = bytes; }

 private:
  // A route's handler: runs `handler(req, res, caller)` as one API call
  // named `method` that needs `access`.
  template <typename Handler>
  httplib::Server::Handler Route(const char* method, Access access,
                                 Handler handler);
  void RegisterNodes(HttpRouter& server);
  void RegisterInstances(HttpRouter& server);
  void RegisterPools(HttpRouter& server);
  void RegisterProviders(HttpRouter& server);

  absl::Status ListNodes(const httplib::Request& req, httplib::Response& res);
  absl::Status GetNode(const std::string& id, httplib::Response& res);
  absl::Status NodeCommand(const httplib::Request& req, httplib::Response& res,
                           const std::string& id, NodeCommandType type,
                           const Identity& caller);
  absl::Status ListInstances(const httplib::Request& req,
                             httplib::Response& res);
  absl::Status ListEvents(const httplib::Request& req, httplib::Response& res);
  absl::Status ScalePool(const httplib::Request& req, httplib::Response& res,
                         const std::string& name, const Identity& caller);

  FleetService& fleet_;
  HttpApiContext ctx_;
  PoolManager* pools_;
  ProviderApi* providers_;
  size_t max_response_bytes_ = kMaxResponseBytes;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_REST_API_H_
