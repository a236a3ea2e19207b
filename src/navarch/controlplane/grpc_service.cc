#include "navarch/controlplane/grpc_service.h"

#include <algorithm>
#include <deque>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "grpc/grpc_security_constants.h"
#include "navarch/api/grpc_status.h"
#include "navarch/controlplane/node_bootstrap.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/pool_api.h"

namespace navarch {
namespace {

// The bearer token and, under mTLS, the names of the verified client
// certificate (common name, DNS subject alternative names).
Credentials GrpcCredentials(grpc::CallbackServerContext* ctx) {
  Credentials c;
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    c.authorization.assign(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property :
         {GRPC_X509_CN_PROPERTY_NAME, GRPC_PEER_DNS_PROPERTY_NAME}) {
      for (const grpc::string_ref& v : auth->FindPropertyValues(property)) {
        std::string name(v.data(), v.size());
        if (!name.empty() &&
            std::find(c.certificate_names.begin(), c.certificate_names.end(),
                      name) == c.certificate_names.end()) {
          c.certificate_names.push_back(std::move(name));
        }
      }
    }
    c.has_certificate = !c.certificate_names.empty();
  }
  return c;
}

// A command stream refused before it began.
class RejectedStream final : public grpc::ServerWriteReactor<NodeCommand> {
 public:
  explicit RejectedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// A node's live command stream. The fleet core may call `Deliver` from any
// thread at any time, also after the stream ended, so it reaches the reactor
// only through `Link`, which forgets the reactor in OnDone.
class CommandStream final : public grpc::ServerWriteReactor<NodeCommand> {
 public:
  struct Link {
    absl::Mutex mu;
    CommandStream* stream ABSL_GUARDED_BY(mu);
  };

  CommandStream(FleetService& fleet, std::string node_id)
      : fleet_(fleet),
        node_id_(std::move(node_id)),
        link_(std::make_shared<Link>()) {
    absl::MutexLock lock(&link_->mu);
    link_->stream = this;
  }

  // Registers with the fleet core; the returned status says whether the
  // stream opened (when not, it is finished with that status).
  absl::Status Start() {
    std::weak_ptr<Link> weak = link_;
    auto handle = fleet_.Watch(
        node_id_,
        [weak](const NodeCommand& c) {
          if (auto link = weak.lock()) {
            absl::MutexLock lock(&link->mu);
            if (link->stream != nullptr) {
              // The stream's link_ is `link`: tells -Wthread-safety that the
              // mutex Enqueue needs is the one held (and checks it).
              link->stream->link_->mu.AssertHeld();
              link->stream->Enqueue(c);
            }
          }
        },
        [weak] {
          if (auto link = weak.lock()) {
            absl::MutexLock lock(&link->mu);
            if (link->stream != nullptr) {
              link->stream->link_->mu.AssertHeld();  // As above.
              link->stream->End(
                  grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "command stream closed by the control plane"));
            }
          }
        });
    absl::MutexLock lock(&link_->mu);
    if (!handle.ok()) {
      End(ToGrpcStatus(handle.status()));
      return handle.status();
    }
    handle_ = *handle;
    watching_ = true;
    return absl::OkStatus();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&link_->mu);
    queue_.pop_front();
    writing_ = false;
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    WriteNext();
  }

  void OnCancel() override {
    absl::MutexLock lock(&link_->mu);
    End(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&link_->mu);
      link_->stream = nullptr;
    }
    if (watching_) fleet_.Unwatch(node_id_, handle_);
    delete this;
  }

 private:
  void Enqueue(const NodeCommand& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (finished_) return;
    queue_.push_back(c);
    WriteNext();
  }

  void WriteNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (writing_ || finished_ || queue_.empty()) return;
    writing_ = true;
    StartWrite(&queue_.front());
  }

  void End(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(link_->mu) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  FleetService& fleet_;
  const std::string node_id_;
  std::shared_ptr<Link> link_;
  std::deque<NodeCommand> queue_;  // front is being written while writing_
  bool writing_ = false;
  bool finished_ = false;
  bool watching_ = false;
  uint64_t handle_ = 0;
};

}  // namespace

bool GrpcService::Begin(grpc::CallbackServerContext* ctx, const char* method,
                        const std::string& node_id, Call* call) {
  call->reactor = ctx->DefaultReactor();
  call->method = method;
  call->start = clock_.SteadyNow();
  absl::StatusOr<Identity> caller =
      auth_.Check(GrpcCredentials(ctx), *MethodAccess(method), method, node_id);
  if (!caller.ok()) {
    Finish(*call, caller.status());
    return false;
  }
  call->caller = *std::move(caller);
  // `navarch version` reads the server's version here; only callers past
  // authentication learn it.
  ctx->AddInitialMetadata("navarch-version", NAVARCH_VERSION);
  {
    absl::MutexLock lock(&mu_);
    if (!draining_) {
      ++in_flight_;
      return true;
    }
  }
  Finish(*call, absl::UnavailableError("control plane is shutting down"));
  return false;
}

void GrpcService::End() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void GrpcService::Finish(const Call& call, const absl::Status& status) {
  // Recorded before the answer leaves, so a client that reads the metrics
  // right after its call sees it counted.
  metrics_.Record("grpc", call.method, status.code(),
                  clock_.SteadyNow() - call.start);
  call.reactor->Finish(ToGrpcStatus(status));
}

bool GrpcService::Drain(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  auto idle = [this]()
                  ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
}

// Finishes the call with the core's answer, moving a success into `resp`.
// The call must have been counted by Begin.
template <typename T>
Done<T> GrpcService::Finisher(Call call, T* resp) {
  return [this, call = std::move(call), resp](absl::StatusOr<T> r) {
    if (r.ok()) *resp = std::move(*r);
    Finish(call, r.status());
    End();
  };
}

template <typename T>
grpc::ServerUnaryReactor* GrpcService::FinishNow(const Call& call,
                                                 absl::StatusOr<T> r, T* resp) {
  Finisher(call, resp)(std::move(r));
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::RegisterNode(
    grpc::CallbackServerContext* ctx, const RegisterNodeRequest* req,
    RegisterNodeResponse* resp) {
  Call call;
  if (!Begin(ctx, "RegisterNode", req->node_id(), &call)) return call.reactor;
  const Identity caller = call.caller;
  // An empty node id with a bootstrap token: the instance's id.
  absl::StatusOr<std::string> node_id = RegisteringNodeId(fleet_, caller, *req);
  if (!node_id.ok()) {
    return FinishNow(
        call, absl::StatusOr<RegisterNodeResponse>(node_id.status()), resp);
  }
  RegisterNodeRequest assigned;
  if (*node_id != req->node_id()) {
    assigned = *req;
    assigned.set_node_id(*node_id);
  }
  // The fleet reads the request before RegisterNode returns.
  fleet_.RegisterNode(
      *node_id != req->node_id() ? assigned : *req,
      [this, caller, node_id = *node_id, finish = Finisher(call, resp)](
          absl::StatusOr<RegisterNodeResponse> r) mutable {
        if (r.ok()) HandNodeToken(auth_, caller, node_id, *r);
        finish(std::move(r));
      });
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::ReportHealth(
    grpc::CallbackServerContext* ctx, const ReportHealthRequest* req,
    ReportHealthResponse* resp) {
  Call call;
  if (!Begin(ctx, "ReportHealth", req->node_id(), &call)) return call.reactor;
  fleet_.ReportHealth(*req, Finisher(call, resp));
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::SendHeartbeat(
    grpc::CallbackServerContext* ctx, const HeartbeatRequest* req,
    HeartbeatResponse* resp) {
  Call call;
  if (!Begin(ctx, "SendHeartbeat", req->node_id(), &call)) return call.reactor;
  fleet_.SendHeartbeat(*req, Finisher(call, resp));
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::GetNodeCommands(
    grpc::CallbackServerContext* ctx, const GetNodeCommandsRequest* req,
    GetNodeCommandsResponse* resp) {
  Call call;
  if (!Begin(ctx, "GetNodeCommands", req->node_id(), &call)) {
    return call.reactor;
  }
  fleet_.GetNodeCommands(*req, Finisher(call, resp));
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::ListNodes(
    grpc::CallbackServerContext* ctx, const ListNodesRequest* req,
    ListNodesResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListNodes", "", &call)) return call.reactor;
  absl::StatusOr<ListNodesResponse> r = fleet_.ListNodes(*req);
  if (r.ok()) {
    absl::Status s = CheckUnpagedAnswer(*r, req->page_size(), r->nodes_size(),
                                        "nodes", max_response_bytes_);
    if (!s.ok()) r = s;
  }
  return FinishNow(call, std::move(r), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetNode(grpc::CallbackServerContext* ctx,
                                               const GetNodeRequest* req,
                                               GetNodeResponse* resp) {
  Call call;
  if (!Begin(ctx, "GetNode", "", &call)) return call.reactor;
  return FinishNow(call, fleet_.GetNode(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::IssueCommand(
    grpc::CallbackServerContext* ctx, const IssueCommandRequest* req,
    IssueCommandResponse* resp) {
  Call call;
  if (!Begin(ctx, "IssueCommand", "", &call)) return call.reactor;
  // The token's name, so the event log says which operator asked.
  const Actor actor{call.caller.actor};
  fleet_.IssueCommand(*req, actor, Finisher(call, resp));
  return call.reactor;
}

grpc::ServerUnaryReactor* GrpcService::ListInstances(
    grpc::CallbackServerContext* ctx, const ListInstancesRequest* req,
    ListInstancesResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListInstances", "", &call)) return call.reactor;
  absl::StatusOr<ListInstancesResponse> r = fleet_.ListInstances(*req);
  if (r.ok()) {
    absl::Status s =
        CheckUnpagedAnswer(*r, req->page_size(), r->instances_size(),
                           "instances", max_response_bytes_);
    if (!s.ok()) r = s;
  }
  return FinishNow(call, std::move(r), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetInstance(
    grpc::CallbackServerContext* ctx, const GetInstanceRequest* req,
    GetInstanceResponse* resp) {
  Call call;
  if (!Begin(ctx, "GetInstance", "", &call)) return call.reactor;
  return FinishNow(call, fleet_.GetInstance(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::AckCommand(
    grpc::CallbackServerContext* ctx, const AckCommandRequest* req,
    AckCommandResponse* resp) {
  Call call;
  if (!Begin(ctx, "AckCommand", req->node_id(), &call)) return call.reactor;
  fleet_.AckCommand(*req, Finisher(call, resp));
  return call.reactor;
}

grpc::ServerWriteReactor<NodeCommand>* GrpcService::WatchCommands(
    grpc::CallbackServerContext* ctx, const WatchCommandsRequest* req) {
  absl::StatusOr<Identity> caller = auth_.Check(
      GrpcCredentials(ctx), Access::kNode, "WatchCommands", req->node_id());
  if (!caller.ok()) {
    metrics_.RecordStream("grpc", "WatchCommands", caller.status().code());
    return new RejectedStream(ToGrpcStatus(caller.status()));
  }
  auto* stream = new CommandStream(fleet_, req->node_id());
  metrics_.RecordStream("grpc", "WatchCommands", stream->Start().code());
  return stream;
}

grpc::ServerUnaryReactor* GrpcService::ListEvents(
    grpc::CallbackServerContext* ctx, const ListEventsRequest* req,
    ListEventsResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListEvents", "", &call)) return call.reactor;
  return FinishNow(call, fleet_.ListEvents(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::ListPools(
    grpc::CallbackServerContext* ctx, const ListPoolsRequest* req,
    ListPoolsResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListPools", "", &call)) return call.reactor;
  return FinishNow(call, navarch::ListPools(pools_), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetPool(grpc::CallbackServerContext* ctx,
                                               const GetPoolRequest* req,
                                               GetPoolResponse* resp) {
  Call call;
  if (!Begin(ctx, "GetPool", "", &call)) return call.reactor;
  return FinishNow(call, navarch::GetPool(pools_, *req), resp);
}

grpc::ServerUnaryReactor* GrpcService::ResetPoolBreaker(
    grpc::CallbackServerContext* ctx, const ResetPoolBreakerRequest* req,
    ResetPoolBreakerResponse* resp) {
  Call call;
  if (!Begin(ctx, "ResetPoolBreaker", "", &call)) return call.reactor;
  return FinishNow(
      call, navarch::ResetPoolBreaker(pools_, *req, Actor{call.caller.actor}),
      resp);
}

grpc::ServerUnaryReactor* GrpcService::ScalePool(
    grpc::CallbackServerContext* ctx, const ScalePoolRequest* req,
    ScalePoolResponse* resp) {
  Call call;
  if (!Begin(ctx, "ScalePool", "", &call)) return call.reactor;
  return FinishNow(
      call, navarch::ScalePool(pools_, *req, Actor{call.caller.actor}), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetCluster(
    grpc::CallbackServerContext* ctx, const GetClusterRequest*,
    GetClusterResponse* resp) {
  Call call;
  if (!Begin(ctx, "GetCluster", "", &call)) return call.reactor;
  // One short query of the database (two rows and the replicas).
  return FinishNow(call, navarch::GetCluster(cluster_), resp);
}

grpc::ServerUnaryReactor* GrpcService::ListProviders(
    grpc::CallbackServerContext* ctx, const ListProvidersRequest* req,
    ListProvidersResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListProviders", "", &call)) return call.reactor;
  if (providers_ == nullptr) {
    return FinishNow(
        call, absl::StatusOr<ListProvidersResponse>(ProvidersNotServed()),
        resp);
  }
  return FinishNow(call, providers_->ListProviders(), resp);
}

// The provider is asked on a thread of its own (provider_api.h); the call
// finishes when it answers or its deadline passes, no gRPC thread waiting.
grpc::ServerUnaryReactor* GrpcService::ListInstanceTypes(
    grpc::CallbackServerContext* ctx, const ListInstanceTypesRequest* req,
    ListInstanceTypesResponse* resp) {
  Call call;
  if (!Begin(ctx, "ListInstanceTypes", "", &call)) return call.reactor;
  if (providers_ == nullptr) {
    return FinishNow(
        call, absl::StatusOr<ListInstanceTypesResponse>(ProvidersNotServed()),
        resp);
  }
  providers_->ListInstanceTypes(*req, Finisher(call, resp));
  return call.reactor;
}

}  // namespace navarch
