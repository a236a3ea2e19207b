#include "navarch/controlplane/grpc_forwarder.h"

#include <grpcpp/generic/generic_stub.h>

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace navarch {
namespace forwarder_internal {

class Relay;

// The calls being relayed, and the counters. Outlives the forwarder while
// calls to the leader finish.
class Registry {
 public:
  explicit Registry(Logger log) : log_(std::move(log)) {}

  const Logger& log() const { return log_; }
  void Add(Relay* relay) ABSL_LOCKS_EXCLUDED(mu_);
  // Before the relay is deleted (CancelAll then no longer reaches it).
  void Remove(Relay* relay) ABSL_LOCKS_EXCLUDED(mu_);
  // After the relay is deleted.
  void Deleted() { alive_.fetch_sub(1); }
  void CancelAll(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Relays not yet deleted: once 0, no relay holds a channel or the
  // registry any more.
  int64_t in_flight() const { return alive_.load(); }
  int64_t forwarded() const { return forwarded_.load(); }

 private:
  const Logger log_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<Relay*> relays_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> forwarded_{0};
  std::atomic<int64_t> alive_{0};
};

namespace {

// Headers gRPC and HTTP/2 set themselves; copying them would clash.
bool IsTransportHeader(absl::string_view key) {
  return key.empty() || key[0] == ':' || absl::StartsWith(key, "grpc-") ||
         key == "te" || key == "content-type" || key == "user-agent" ||
         key == "host" || key == "content-length" || key == "connection" ||
         key == "accept-encoding" || key == "transfer-encoding";
}

absl::string_view View(const grpc::string_ref& s) {
  return absl::string_view(s.data(), s.size());
}

// Answers a call at once with `status`.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One relayed call: the server reactor for the client's call (downstream)
// and, inside it, the client reactor for the call to the leader (upstream).
// Both sides' reactions run on gRPC threads concurrently; all state is under
// mu_, and gRPC operations are started under it too (gRPC never runs a
// reaction inside the operation that starts it, so this cannot deadlock).
//
// Safety rules: an upstream operation starts only while its hold is kept
// (so upstream OnDone cannot have run); a downstream operation starts only
// before Finish is asked for (so downstream OnDone cannot have run). The
// object deletes itself once both sides' OnDone ran.
class Relay final : public grpc::ServerGenericBidiReactor {
 public:
  Relay(grpc::GenericCallbackServerContext* ctx,
        std::shared_ptr<grpc::Channel> channel, const std::string& replica_id,
        std::shared_ptr<Registry> registry);

  // Ends the call with `status` and cancels the call to the leader.
  void Cancel(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  // Downstream reactions.
  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnSendInitialMetadataDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The call to the leader; its reactions go to the relay.
  class Upstream final
      : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(Relay* relay) : relay_(relay) {}
    void OnReadInitialMetadataDone(bool ok) override {
      relay_->UpInitialMetadata(ok);
    }
    void OnReadDone(bool ok) override { relay_->UpReadDone(ok); }
    void OnWriteDone(bool ok) override { relay_->UpWriteDone(ok); }
    void OnDone(const grpc::Status& s) override { relay_->UpDone(s); }

   private:
    Relay* const relay_;
  };

  void UpInitialMetadata(bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void UpReadDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void UpWriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void UpDone(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  void CopyClientMetadata(const std::string& replica_id);
  // Stop reading from / writing to the leader (releases that side's hold).
  void StopUpReadsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopUpWritesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks to end the downstream call (the first status asked for wins); it
  // ends once no downstream write is in flight.
  void FinishDownLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishDownLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called by each side's OnDone, last and without mu_: the second call
  // deletes this. (The first caller must not touch this or mu_ afterwards,
  // hence an atomic rather than a flag under mu_.)
  void SideDone();

  grpc::GenericCallbackServerContext* const ctx_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::shared_ptr<Registry> registry_;
  grpc::ClientContext up_ctx_;
  Upstream up_{this};

  absl::Mutex mu_;
  grpc::ByteBuffer request_ ABSL_GUARDED_BY(mu_);   // client → leader
  grpc::ByteBuffer response_ ABSL_GUARDED_BY(mu_);  // leader → client
  bool up_read_hold_ ABSL_GUARDED_BY(mu_) = true;
  bool up_write_hold_ ABSL_GUARDED_BY(mu_) = true;
  // Downstream send-initial-metadata and write operations in flight.
  int down_ops_ ABSL_GUARDED_BY(mu_) = 0;
  bool finish_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  // Set when the relay itself cancels the call to the leader.
  bool cancelled_here_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> sides_left_{2};
};

Relay::Relay(grpc::GenericCallbackServerContext* ctx,
             std::shared_ptr<grpc::Channel> channel,
             const std::string& replica_id, std::shared_ptr<Registry> registry)
    : ctx_(ctx), channel_(std::move(channel)), registry_(std::move(registry)) {
  CopyClientMetadata(replica_id);
  if (ctx_->deadline() != std::chrono::system_clock::time_point::max()) {
    up_ctx_.set_deadline(ctx_->deadline());
  }
  grpc::GenericStub stub(channel_);
  {
    absl::MutexLock lock(&mu_);
    stub.PrepareBidiStreamingCall(&up_ctx_, ctx_->method(), grpc::StubOptions(),
                                  &up_);
    up_.AddMultipleHolds(2);  // the read side and the write side
    up_.StartCall();
    StartRead(&request_);
  }
  // Only now may CancelAll reach this call (and never under mu_: CancelAll
  // holds the registry's lock, then takes mu_).
  registry_->Add(this);
}

void Relay::CopyClientMetadata(const std::string& replica_id) {
  for (const auto& [key, value] : ctx_->client_metadata()) {
    if (IsTransportHeader(View(key))) continue;
    up_ctx_.AddMetadata(std::string(View(key)), std::string(View(value)));
  }
  up_ctx_.AddMetadata(kForwardedByHeader, replica_id);
}

void Relay::Cancel(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  cancelled_here_ = true;
  up_ctx_.TryCancel();
  StopUpReadsLocked();
  StopUpWritesLocked();
  FinishDownLocked(status);
}

void Relay::OnReadDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (!up_write_hold_) return;  // the leader takes no more messages
  if (ok) {
    up_.StartWrite(&request_);
  } else {  // the client half-closed (or went away: OnCancel follows)
    up_.StartWritesDone();
    StopUpWritesLocked();
  }
}

void Relay::UpWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (ok && !finish_wanted_ && up_write_hold_) {
    StartRead(&request_);
  } else {
    // The call to the leader ended; its status comes with UpDone.
    StopUpWritesLocked();
  }
}

void Relay::UpInitialMetadata(bool ok) {
  absl::MutexLock lock(&mu_);
  if (finish_wanted_) return;
  if (ok) {
    for (const auto& [key, value] : up_ctx_.GetServerInitialMetadata()) {
      if (IsTransportHeader(View(key))) continue;
      ctx_->AddInitialMetadata(std::string(View(key)),
                               std::string(View(value)));
    }
    ++down_ops_;
    StartSendInitialMetadata();
  }
  // The first message is read only now, so it cannot overtake the metadata.
  if (up_read_hold_) up_.StartRead(&response_);
}

void Relay::OnSendInitialMetadataDone(bool /*ok*/) {
  absl::MutexLock lock(&mu_);
  --down_ops_;
  MaybeFinishDownLocked();
}

void Relay::UpReadDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (ok && !finish_wanted_) {
    ++down_ops_;
    StartWrite(&response_);
  } else {
    StopUpReadsLocked();  // the leader's stream ended: UpDone follows
  }
}

void Relay::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  --down_ops_;
  if (ok && up_read_hold_) {
    up_.StartRead(&response_);
  } else if (!ok) {
    // The client is gone; so is the point of the call to the leader.
    cancelled_here_ = true;
    up_ctx_.TryCancel();
    StopUpReadsLocked();
    StopUpWritesLocked();
    FinishDownLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
  }
  MaybeFinishDownLocked();
}

void Relay::UpDone(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (!finish_wanted_) {
      for (const auto& [key, value] : up_ctx_.GetServerTrailingMetadata()) {
        if (IsTransportHeader(View(key))) continue;
        ctx_->AddTrailingMetadata(std::string(View(key)),
                                  std::string(View(value)));
      }
      if (status.error_code() == grpc::StatusCode::CANCELLED &&
          !cancelled_here_) {
        // The leader went away (shut down, or the connection broke).
        registry_->log().Warn(
            "call to the leader broke",
            {{"method", ctx_->method()}, {"error", status.error_message()}});
        FinishDownLocked(grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            absl::StrCat("call to the leader ended: ", status.error_message(),
                         "; retry")));
      } else {
        FinishDownLocked(status);
      }
    }
  }
  SideDone();
}

void Relay::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_here_ = true;
  up_ctx_.TryCancel();
  StopUpReadsLocked();
  StopUpWritesLocked();
  FinishDownLocked(grpc::Status::CANCELLED);
}

void Relay::OnDone() { SideDone(); }

void Relay::StopUpReadsLocked() {
  if (!up_read_hold_) return;
  up_read_hold_ = false;
  up_.RemoveHold();
}

void Relay::StopUpWritesLocked() {
  if (!up_write_hold_) return;
  up_write_hold_ = false;
  up_.RemoveHold();
}

void Relay::FinishDownLocked(grpc::Status status) {
  if (finish_wanted_) return;
  finish_wanted_ = true;
  finish_status_ = std::move(status);
  MaybeFinishDownLocked();
}

void Relay::MaybeFinishDownLocked() {
  if (!finish_wanted_ || finish_called_ || down_ops_ > 0) return;
  finish_called_ = true;
  Finish(finish_status_);
}

void Relay::SideDone() {
  if (sides_left_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Unregister first: CancelAll may be using this object until then.
  std::shared_ptr<Registry> registry = registry_;
  registry->Remove(this);
  delete this;
  registry->Deleted();
}

void Registry::Add(Relay* relay) {
  forwarded_.fetch_add(1);
  alive_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  relays_.insert(relay);
}

void Registry::Remove(Relay* relay) {
  absl::MutexLock lock(&mu_);
  relays_.erase(relay);
}

void Registry::CancelAll(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  for (Relay* relay : relays_) relay->Cancel(status);
}

}  // namespace forwarder_internal

GrpcForwarder::GrpcForwarder(Options options)
    : options_(std::move(options)),
      log_(options_.log.value_or(NullLogger())
               .With({{"component", "grpc_forwarder"},
                      {"replica", options_.replica_id}})),
      registry_(std::make_shared<forwarder_internal::Registry>(log_)) {}

GrpcForwarder::~GrpcForwarder() = default;

grpc::ServerGenericBidiReactor* GrpcForwarder::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  if (auto it = md.find(kForwardedByHeader); it != md.end()) {
    log_.Warn(
        "forwarding loop: refused a call another replica forwarded",
        {{"method", ctx->method()},
         {"forwarded_by", std::string(forwarder_internal::View(it->second))}});
    return new forwarder_internal::Refusal(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("forwarding loop: ", options_.replica_id,
                     " got a call already forwarded by ",
                     forwarder_internal::View(it->second), "; retry")));
  }
  std::shared_ptr<grpc::Channel> channel =
      options_.upstream ? options_.upstream() : nullptr;
  if (channel == nullptr) {
    return new forwarder_internal::Refusal(grpc::Status(
        grpc::StatusCode::UNAVAILABLE, "no leader elected yet; retry"));
  }
  return new forwarder_internal::Relay(ctx, std::move(channel),
                                       options_.replica_id, registry_);
}

void GrpcForwarder::CancelAll() {
  registry_->CancelAll(grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      "this replica stopped forwarding (it became the leader); retry"));
}

int64_t GrpcForwarder::in_flight() const { return registry_->in_flight(); }

int64_t GrpcForwarder::forwarded() const { return registry_->forwarded(); }

}  // namespace navarch
