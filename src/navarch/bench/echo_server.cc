#include "navarch/bench/echo_server.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_builder.h"
#include "navarch/fleet/validation.h"

namespace navarch::bench {

grpc::ServerUnaryReactor* EchoService::RegisterNode(
    grpc::CallbackServerContext* ctx, const RegisterNodeRequest*,
    RegisterNodeResponse* resp) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  resp->set_success(true);
  resp->set_message("registration successful");
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* EchoService::SendHeartbeat(
    grpc::CallbackServerContext* ctx, const HeartbeatRequest*,
    HeartbeatResponse* resp) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  resp->set_acknowledged(true);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* EchoService::ReportHealth(
    grpc::CallbackServerContext* ctx, const ReportHealthRequest*,
    ReportHealthResponse* resp) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  resp->set_acknowledged(true);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::StatusOr<std::unique_ptr<EchoServer>> EchoServer::Start(
    const std::string& address) {
  std::unique_ptr<EchoServer> echo(new EchoServer());
  echo->service_ = std::make_unique<EchoService>();
  const std::string listen =
      absl::StartsWith(address, ":") ? absl::StrCat("[::]", address) : address;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(echo->service_.get());
  // The control plane's settings (controlplane/server.cc), so that the two
  // differ only in what the handlers do.
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
  builder.SetMaxSendMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  echo->server_ = builder.BuildAndStart();
  if (echo->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address,
        ": the address is already in use or not available on this host"));
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "[::]" || host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  echo->address_ = absl::StrCat(host, ":", port);
  return echo;
}

EchoServer::~EchoServer() { Shutdown(); }

void EchoServer::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown();
  server_->Wait();
  server_.reset();
}

}  // namespace navarch::bench
