#include "navarch/agent/grpc_client.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "grpc/support/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "navarch/api/grpc_status.h"

namespace navarch::agent {

absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view server) {
  absl::string_view s = absl::StripAsciiWhitespace(server);
  ServerAddress out;
  if (absl::ConsumePrefix(&s, "https://")) {
    out.tls = true;
  } else {
    absl::ConsumePrefix(&s, "http://");
  }
  while (absl::ConsumeSuffix(&s, "/")) {
  }
  if (s.empty() || absl::StrContains(s, "/") || absl::StrContains(s, " ") ||
      absl::StrContains(s, "://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad control plane address \"", server,
        "\": expected host:port, http://host:port or https://host:port"));
  }
  bool has_port;
  if (s.front() == '[') {
    has_port = absl::StrContains(s, "]:");
  } else {
    has_port = std::count(s.begin(), s.end(), ':') == 1;
  }
  out.target =
      has_port ? std::string(s) : absl::StrCat(s, out.tls ? ":443" : ":50051");
  if (absl::EndsWith(out.target, ":")) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad control plane address \"", server, "\": empty port"));
  }
  return out;
}

// A stream's call context and its end. Owned by the handle (and briefly by
// the client's destructor), never by the reactor: the context holds a
// reference to the channel, and the last channel reference must not be
// dropped on one of gRPC's callback threads (the channel's destruction joins
// those threads and frees their completion queue under them).
struct GrpcControlPlaneClient::StreamState {
  grpc::ClientContext ctx;
  // Notified by the reactor as the very last thing it does.
  absl::Notification done;

  // Cancelling a call that already finished does nothing.
  void Cancel() { ctx.TryCancel(); }
  void Wait() { done.WaitForNotification(); }
};

namespace {

class WatchReactor final : public grpc::ClientReadReactor<NodeCommand> {
 public:
  WatchReactor(GrpcControlPlaneClient::StreamState* state,
               std::function<void(const NodeCommand&)> on_command,
               std::function<void(absl::Status)> done)
      : state_(state),
        on_command_(std::move(on_command)),
        done_(std::move(done)) {}

  void Start(ControlPlaneService::Stub* stub, const WatchCommandsRequest& req) {
    req_ = req;
    stub->async()->WatchCommands(&state_->ctx, &req_, this);
    StartRead(&command_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    on_command_(command_);
    StartRead(&command_);
  }

  void OnDone(const grpc::Status& status) override {
    done_(FromGrpcStatus(status));
    absl::Notification* finished = &state_->done;
    delete this;
    // From here on the handle may destroy the state.
    finished->Notify();
  }

 private:
  GrpcControlPlaneClient::StreamState* state_;  // outlives us: see Wait()
  std::function<void(const NodeCommand&)> on_command_;
  std::function<void(absl::Status)> done_;
  WatchCommandsRequest req_;
  NodeCommand command_;
};

class GrpcCommandStream final : public CommandStream {
 public:
  explicit GrpcCommandStream(
      std::shared_ptr<GrpcControlPlaneClient::StreamState> state)
      : state_(std::move(state)) {}
  ~GrpcCommandStream() override {
    state_->Cancel();
    state_->Wait();
  }

 private:
  std::shared_ptr<GrpcControlPlaneClient::StreamState> state_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcControlPlaneClient>>
GrpcControlPlaneClient::Create(GrpcClientOptions options) {
  auto address = ParseServerAddress(options.server);
  if (!address.ok()) return address.status();
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff grows to two minutes; an agent whose
  // control plane restarted should be back within seconds.
  int max_ms = static_cast<int>(std::max<int64_t>(
      500, absl::ToInt64Milliseconds(options.max_reconnect_backoff)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(500, max_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(500, max_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  args.SetUserAgentPrefix(options.user_agent);
  const bool tls_files = !options.tls_ca_file.empty() ||
                         !options.tls_cert_file.empty() ||
                         !options.tls_key_file.empty();
  if (tls_files && absl::StartsWithIgnoreCase(options.server, "http://")) {
    return absl::InvalidArgumentError(
        "TLS files were given but the server address is http:// (plaintext); "
        "use https:// or host:port");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs both --tls-cert-file and --tls-key-file");
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [path, out, what] :
       {std::tuple{&options.tls_ca_file, &ssl.pem_root_certs, "CA bundle"},
        std::tuple{&options.tls_cert_file, &ssl.pem_cert_chain, "certificate"},
        std::tuple{&options.tls_key_file, &ssl.pem_private_key, "key"}}) {
    if (path->empty()) continue;
    std::ifstream in(*path, std::ios::binary);
    std::ostringstream data;
    if (in) data << in.rdbuf();
    if (!in || data.str().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read the TLS ", what, " ", *path));
    }
    *out = data.str();
  }
  std::shared_ptr<grpc::ChannelCredentials> creds =
      address->tls || tls_files ? grpc::SslCredentials(ssl)
                                : grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateCustomChannel(address->target, creds, args);
  return std::unique_ptr<GrpcControlPlaneClient>(
      new GrpcControlPlaneClient(std::move(options), address->target,
                                 ControlPlaneService::NewStub(channel)));
}

GrpcControlPlaneClient::GrpcControlPlaneClient(
    GrpcClientOptions options, std::string target,
    std::unique_ptr<ControlPlaneService::Stub> stub)
    : options_(std::move(options)),
      target_(std::move(target)),
      stub_(std::move(stub)) {
  absl::MutexLock lock(&token_mu_);
  token_ = options_.auth_token;
}

GrpcControlPlaneClient::~GrpcControlPlaneClient() {
  std::vector<std::shared_ptr<StreamState>> live;
  {
    absl::MutexLock lock(&mu_);
    for (auto& w : streams_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Cancel();
  for (auto& s : live) s->Wait();
}

void GrpcControlPlaneClient::Prepare(grpc::ClientContext* ctx,
                                     bool deadline) const {
  std::string token;
  {
    absl::MutexLock lock(&token_mu_);
    token = token_;
  }
  if (!token.empty()) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  if (deadline) {
    // A relative deadline: gRPC anchors it on its own monotonic clock, so the
    // agent's (possibly fake) Clock plays no part in network timeouts.
    ctx->set_deadline(gpr_time_from_millis(
        absl::ToInt64Milliseconds(options_.rpc_timeout), GPR_TIMESPAN));
  }
}

namespace {

template <typename Resp, typename Call>
absl::StatusOr<Resp> Unary(Call call) {
  Resp resp;
  grpc::Status s = call(&resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

}  // namespace

absl::StatusOr<RegisterNodeResponse> GrpcControlPlaneClient::RegisterNode(
    const RegisterNodeRequest& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  absl::StatusOr<RegisterNodeResponse> resp =
      Unary<RegisterNodeResponse>([&](RegisterNodeResponse* r) {
        return stub_->RegisterNode(&ctx, req, r);
      });
  if (resp.ok() && !resp->node_token().empty()) {
    {
      absl::MutexLock lock(&token_mu_);
      token_ = resp->node_token();
    }
    if (options_.on_node_token) options_.on_node_token(resp->node_token());
  }
  return resp;
}

absl::StatusOr<HeartbeatResponse> GrpcControlPlaneClient::SendHeartbeat(
    const HeartbeatRequest& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  return Unary<HeartbeatResponse>(
      [&](HeartbeatResponse* r) { return stub_->SendHeartbeat(&ctx, req, r); });
}

absl::StatusOr<ReportHealthResponse> GrpcControlPlaneClient::ReportHealth(
    const ReportHealthRequest& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  return Unary<ReportHealthResponse>([&](ReportHealthResponse* r) {
    return stub_->ReportHealth(&ctx, req, r);
  });
}

absl::StatusOr<GetNodeCommandsResponse> GrpcControlPlaneClient::GetNodeCommands(
    const GetNodeCommandsRequest& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  return Unary<GetNodeCommandsResponse>([&](GetNodeCommandsResponse* r) {
    return stub_->GetNodeCommands(&ctx, req, r);
  });
}

absl::StatusOr<AckCommandResponse> GrpcControlPlaneClient::AckCommand(
    const AckCommandRequest& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx, true);
  return Unary<AckCommandResponse>(
      [&](AckCommandResponse* r) { return stub_->AckCommand(&ctx, req, r); });
}

std::unique_ptr<CommandStream> GrpcControlPlaneClient::WatchCommands(
    const WatchCommandsRequest& req,
    std::function<void(const NodeCommand&)> on_command,
    std::function<void(absl::Status)> done) {
  auto state = std::make_shared<StreamState>();
  // A stream lives as long as the control plane keeps it: no deadline.
  Prepare(&state->ctx, false);
  {
    absl::MutexLock lock(&mu_);
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                  [](const std::weak_ptr<StreamState>& w) {
                                    return w.expired();
                                  }),
                   streams_.end());
    streams_.push_back(state);
  }
  auto* reactor =
      new WatchReactor(state.get(), std::move(on_command), std::move(done));
  reactor->Start(stub_.get(), req);
  return std::make_unique<GrpcCommandStream>(std::move(state));
}

}  // namespace navarch::agent
