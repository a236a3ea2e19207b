// ControlPlaneServer with replicas on PostgreSQL (docs/deployment.md): a
// standby listens as a follower, forwarding every gRPC call and HTTP request
// to the leader, announces itself in the database every lease round, and on
// winning the lease serves on the same ports.
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_builder.h"
#include "navarch/base/status.h"
#include "navarch/controlplane/server.h"
#include "navarch/controlplane/undo_stack.h"
#include "navarch/fleet/validation.h"

namespace navarch {
namespace {

// "host:port" as the other replicas dial it: a wildcard host is this
// machine's name.
std::string Advertised(const std::string& bound) {
  const size_t colon = bound.rfind(':');
  std::string host = bound.substr(0, colon);
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
      return absl::StrCat("localhost", bound.substr(colon));
    }
    host = name;
  }
  return absl::StrCat(host, bound.substr(colon));
}

// `address` with its port replaced by `bound`'s when it asked for port 0,
// so that the leader's listeners take over the follower's ports.
std::string PinPort(const std::string& address, const std::string& bound) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || address.substr(colon + 1) != "0") {
    return address;
  }
  return absl::StrCat(address.substr(0, colon), bound.substr(bound.rfind(':')));
}

}  // namespace

ClusterSelf ControlPlaneServer::Self() const {
  ClusterSelf self;
  self.replica_id = lease_options_.replica_id;
  self.version = NAVARCH_VERSION;
  self.started_at = started_at_;
  if (!grpc_bound_.empty()) self.grpc_address = Advertised(grpc_bound_);
  if (!http_bound_.empty()) self.http_address = Advertised(http_bound_);
  return self;
}

absl::Status ControlPlaneServer::StartStandby() {
  UndoStack undo;
  undo.Push([this] { store_->Close(); });
  NAVARCH_RETURN_IF_ERROR(StartFollower());
  undo.Push([this] { StopFollower(); });
  const ClusterSelf self = Self();
  lease_options_.grpc_address = self.grpc_address;
  lease_options_.http_address = self.http_address;
  lease_ = std::make_unique<PostgresLeaderLease>(lease_options_);
  cluster_ = std::make_unique<ClusterStatus>(self, lease_.get());
  ElectorOptions elector;
  elector.lease = config_.ha.lease_duration;
  elector.on_elected = [this](int64_t epoch) { TakeOver(epoch); };
  elector.on_lost = [this](const std::string& why) { Fatal(why); };
  elector_ = std::make_unique<LeaderElector>(
      clock_, *lease_, std::move(elector),
      log_.With({{"replica", self.replica_id}}));
  undo.Release();
  log_.Info("standby: following the leader, waiting for the lease",
            {{"store", store_->Name()},
             {"lease", config_.ha.lease_duration},
             {"grpc_address", grpc_bound_},
             {"http_address", http_bound_}});
  elector_->Start();
  return absl::OkStatus();
}

absl::Status ControlPlaneServer::StartFollower() {
  GrpcForwarder::Options fo;
  fo.replica_id = lease_options_.replica_id;
  fo.upstream = [this] { return LeaderChannel(); };
  fo.log = log_.With({{"component", "forwarder"}});
  forwarder_ = std::make_unique<GrpcForwarder>(std::move(fo));
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      ListenGrpc([this](grpc::ServerBuilder& b) {
        b.RegisterCallbackGenericService(forwarder_.get());
      });
  if (!server.ok()) return server.status();
  follower_grpc_ = std::move(*server);
  config_.server.address = PinPort(config_.server.address, grpc_bound_);

  FollowerHttpOptions ho;
  ho.replica_id = lease_options_.replica_id;
  ho.leader = [this] { return LeaderHttpUrl(); };
  ho.ca_file = config_.server.tls.client_ca_file;
  follower_http_ = std::make_unique<FollowerHttp>(
      *auth_, *store_, *metrics_, log_.With({{"component", "follower"}}),
      std::move(ho));
  if (absl::Status s = follower_http_->Start(HttpOptions()); !s.ok()) {
    StopFollower();
    return s;
  }
  http_address_ = follower_http_->address();
  http_bound_ = follower_http_->bound_address();
  config_.server.http_address =
      PinPort(config_.server.http_address, http_bound_);
  return absl::OkStatus();
}

void ControlPlaneServer::StopFollower() {
  if (forwarder_ != nullptr) forwarder_->CancelAll();
  if (follower_grpc_ != nullptr) {
    follower_grpc_->Shutdown(
        absl::ToChronoTime(clock_.Now() + absl::Milliseconds(100)));
    follower_grpc_->Wait();
    follower_grpc_.reset();
  }
  if (follower_http_ != nullptr) {
    follower_http_->Stop();
    follower_http_.reset();
  }
}

std::shared_ptr<grpc::Channel> ControlPlaneServer::LeaderChannel() {
  if (elector_ == nullptr) return nullptr;
  const LeaseState lease = elector_->last_seen();
  if (lease.held || lease.remaining <= absl::ZeroDuration() ||
      lease.holder_grpc_address.empty()) {
    return nullptr;
  }
  absl::MutexLock lock(&leader_mu_);
  if (lease.holder_grpc_address != leader_target_) {
    std::shared_ptr<grpc::ChannelCredentials> creds =
        grpc::InsecureChannelCredentials();
    if (tls_) {
      // The leader's certificate is checked against the client CA bundle
      // (or the system's roots); under mTLS this replica presents its own.
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = tls_->client_ca_pem;
      if (tls_->mutual()) {
        ssl.pem_cert_chain = tls_->cert_chain_pem;
        ssl.pem_private_key = tls_->private_key_pem;
      }
      creds = grpc::SslCredentials(ssl);
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(kMaxResponseBytes));
    args.SetMaxSendMessageSize(static_cast<int>(kMaxMessageBytes));
    if (leader_channel_ != nullptr) {
      retired_channels_.push_back(std::move(leader_channel_));
    }
    leader_target_ = lease.holder_grpc_address;
    leader_channel_ = grpc::CreateCustomChannel(leader_target_, creds, args);
    log_.Info("forwarding to the leader",
              {{"leader", lease.holder}, {"grpc_address", leader_target_}});
  }
  return leader_channel_;
}

std::string ControlPlaneServer::LeaderHttpUrl() {
  if (elector_ == nullptr) return "";
  const LeaseState lease = elector_->last_seen();
  if (lease.held || lease.remaining <= absl::ZeroDuration() ||
      lease.holder_http_address.empty()) {
    return "";
  }
  return absl::StrCat(tls_ ? "https://" : "http://", lease.holder_http_address);
}

}  // namespace navarch
