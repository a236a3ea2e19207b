#include "navarch/controlplane/grpc_service.h"

#include <deque>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "navarch/api/grpc_status.h"

namespace navarch {
namespace {

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

  void Start() {
    std::weak_ptr<Link> weak = link_;
    auto handle = fleet_.Watch(
        node_id_,
        [weak](const NodeCommand& c) {
          if (auto link = weak.lock()) {
            absl::MutexLock lock(&link->mu);
            if (link->stream != nullptr) link->stream->Enqueue(c);
          }
        },
        [weak] {
          if (auto link = weak.lock()) {
            absl::MutexLock lock(&link->mu);
            if (link->stream != nullptr) {
              link->stream->End(
                  grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "command stream closed by the control plane"));
            }
          }
        });
    absl::MutexLock lock(&link_->mu);
    if (!handle.ok()) {
      End(ToGrpcStatus(handle.status()));
    } else {
      handle_ = *handle;
      watching_ = true;
    }
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

bool GrpcService::Begin(grpc::ServerUnaryReactor* reactor) {
  {
    absl::MutexLock lock(&mu_);
    if (!draining_) {
      ++in_flight_;
      return true;
    }
  }
  reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "control plane is shutting down"));
  return false;
}

void GrpcService::End() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

bool GrpcService::Drain(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  auto idle = [this]()
                  ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
}

// Finishes `reactor` with the core's answer, moving a success into `resp`.
// The call must have been counted by Begin.
template <typename T>
Done<T> GrpcService::Finisher(grpc::ServerUnaryReactor* reactor, T* resp) {
  return [this, reactor, resp](absl::StatusOr<T> r) {
    if (r.ok()) {
      *resp = std::move(*r);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(ToGrpcStatus(r.status()));
    }
    End();
  };
}

template <typename T>
grpc::ServerUnaryReactor* GrpcService::FinishNow(
    grpc::CallbackServerContext* ctx, absl::StatusOr<T> r, T* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  Finisher(reactor, resp)(std::move(r));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::RegisterNode(
    grpc::CallbackServerContext* ctx, const RegisterNodeRequest* req,
    RegisterNodeResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.RegisterNode(*req, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::ReportHealth(
    grpc::CallbackServerContext* ctx, const ReportHealthRequest* req,
    ReportHealthResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.ReportHealth(*req, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::SendHeartbeat(
    grpc::CallbackServerContext* ctx, const HeartbeatRequest* req,
    HeartbeatResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.SendHeartbeat(*req, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::GetNodeCommands(
    grpc::CallbackServerContext* ctx, const GetNodeCommandsRequest* req,
    GetNodeCommandsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.GetNodeCommands(*req, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::ListNodes(
    grpc::CallbackServerContext* ctx, const ListNodesRequest* req,
    ListNodesResponse* resp) {
  return FinishNow(ctx, fleet_.ListNodes(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetNode(grpc::CallbackServerContext* ctx,
                                               const GetNodeRequest* req,
                                               GetNodeResponse* resp) {
  return FinishNow(ctx, fleet_.GetNode(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::IssueCommand(
    grpc::CallbackServerContext* ctx, const IssueCommandRequest* req,
    IssueCommandResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.IssueCommand(*req, Actor{"operator"}, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcService::ListInstances(
    grpc::CallbackServerContext* ctx, const ListInstancesRequest* req,
    ListInstancesResponse* resp) {
  return FinishNow(ctx, fleet_.ListInstances(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::GetInstance(
    grpc::CallbackServerContext* ctx, const GetInstanceRequest* req,
    GetInstanceResponse* resp) {
  return FinishNow(ctx, fleet_.GetInstance(*req), resp);
}

grpc::ServerUnaryReactor* GrpcService::AckCommand(
    grpc::CallbackServerContext* ctx, const AckCommandRequest* req,
    AckCommandResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (!Begin(reactor)) return reactor;
  fleet_.AckCommand(*req, Finisher(reactor, resp));
  return reactor;
}

grpc::ServerWriteReactor<NodeCommand>* GrpcService::WatchCommands(
    grpc::CallbackServerContext* ctx, const WatchCommandsRequest* req) {
  auto* stream = new CommandStream(fleet_, req->node_id());
  stream->Start();
  return stream;
}

grpc::ServerUnaryReactor* GrpcService::ListEvents(
    grpc::CallbackServerContext* ctx, const ListEventsRequest* req,
    ListEventsResponse* resp) {
  return FinishNow(ctx, fleet_.ListEvents(*req), resp);
}

}  // namespace navarch
