#include "navarch/cli/client.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "grpc/support/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/slice.h"
#include "navarch/base/duration.h"

namespace navarch::cli {
namespace {

constexpr absl::string_view kService = "navarch.ControlPlaneService";
// Large fleets list many nodes in one answer; gRPC's 4 MiB default would cut
// a few thousand detailed nodes short.
constexpr int kMaxReceiveBytes = 256 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", flag, " ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, " is not a PEM file"));
  }
  return ss.str();
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Whether `hostport` already names a port: "h:1", "[::1]:1"; a bare IPv6
// address ("::1") does not.
bool HasPort(absl::string_view hostport) {
  if (absl::StartsWith(hostport, "[")) {
    size_t close = hostport.find(']');
    return close != absl::string_view::npos &&
           absl::StartsWith(hostport.substr(close + 1), ":");
  }
  size_t colon = hostport.rfind(':');
  return colon != absl::string_view::npos &&
         hostport.find(':') == colon;  // more than one: bare IPv6
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const ConnectionOptions& o, bool tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  if (o.cert_file.empty() != o.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--cert-file and --key-file go together (client certificate and its "
        "key)");
  }
  std::string cert, key;
  if (!o.cert_file.empty()) {
    auto c = ReadPem(o.cert_file, "--cert-file");
    if (!c.ok()) return c.status();
    auto k = ReadPem(o.key_file, "--key-file");
    if (!k.ok()) return k.status();
    cert = std::move(*c);
    key = std::move(*k);
  }
  if (o.insecure_skip_verify) {
    // Encrypted, but anyone can pose as the server: for test clusters with
    // self-signed certificates only.
    grpc::experimental::TlsChannelCredentialsOptions opts;
    opts.set_verify_server_certs(false);
    opts.set_check_call_host(false);
    opts.set_certificate_verifier(
        std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    if (!cert.empty()) {
      opts.set_certificate_provider(
          std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
              std::vector<grpc::experimental::IdentityKeyCertPair>{
                  {key, cert}}));
      opts.watch_identity_key_cert_pairs();
    }
    return grpc::experimental::TlsCredentials(opts);
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.ca_file.empty()) {
    auto ca = ReadPem(o.ca_file, "--ca-file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = std::move(*ca);
  }
  ssl.pem_cert_chain = std::move(cert);
  ssl.pem_private_key = std::move(key);
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view server,
                                                 bool tls_flags) {
  ServerAddress out;
  absl::string_view rest = absl::StripAsciiWhitespace(server);
  out.display = std::string(absl::StripSuffix(rest, "/"));
  std::string default_port = "50051";
  std::string lower = absl::AsciiStrToLower(rest);
  if (absl::StartsWith(lower, "https://")) {
    rest.remove_prefix(8);
    out.tls = true;
    default_port = "443";
  } else if (absl::StartsWith(lower, "http://")) {
    rest.remove_prefix(7);
    default_port = "80";
  } else if (lower.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported scheme in server address \"", server,
        "\" (use host:port, http://host:port or https://host:port)"));
  }
  rest = absl::StripSuffix(rest, "/");
  if (rest.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("server address \"", server,
                     "\" has a path; give only the host and port"));
  }
  if (rest.empty()) {
    return absl::InvalidArgumentError("the server address is empty");
  }
  if (HasPort(rest)) {
    absl::string_view port = rest.substr(rest.rfind(':') + 1);
    if (!AllDigits(port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid port in server address \"", server, "\""));
    }
    out.target = std::string(rest);
  } else if (rest.find(':') != absl::string_view::npos &&
             !absl::StartsWith(rest, "[")) {
    out.target = absl::StrCat("[", rest, "]:", default_port);  // bare IPv6
  } else {
    out.target = absl::StrCat(rest, ":", default_port);
  }
  out.tls = out.tls || tls_flags;
  return out;
}

absl::Status Explain(const grpc::Status& status, absl::string_view method,
                     absl::string_view server, absl::string_view timeout,
                     bool token_given) {
  auto code = static_cast<absl::StatusCode>(status.error_code());
  const std::string& msg = status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(
          "cannot reach the control plane at ", server, ": ", msg,
          " (is it running? set --server, NAVARCH_SERVER or --context)"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      // The server's own deadline (a cloud that did not answer it) says
      // what ran out; gRPC's client-side one says only this.
      if (!msg.empty() && msg != "Deadline Exceeded") {
        return absl::DeadlineExceededError(msg);
      }
      return absl::DeadlineExceededError(
          absl::StrCat("the control plane at ", server,
                       " did not answer within ", timeout, " (see --timeout)"));
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(
          token_given ? "authentication failed: the control plane rejected "
                        "the token (set --token or NAVARCH_AUTH_TOKEN)"
                      : "authentication failed: the control plane requires a "
                        "token (set --token or NAVARCH_AUTH_TOKEN)");
    case grpc::StatusCode::PERMISSION_DENIED:
      // The server's message names the caller and the role it needs
      // ("viewer:grafana may not call IssueCommand (needs operator)").
      return absl::PermissionDeniedError(absl::StrCat(
          "permission denied: ",
          msg.empty() ? absl::StrCat("the token's role does not allow ", method)
                      : msg));
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::UnimplementedError(
          absl::StrCat("the control plane at ", server, " does not serve ",
                       method, " (it may be older than this navarch)"));
    default:
      return absl::Status(code,
                          msg.empty() ? absl::StrCat(method, " failed") : msg);
  }
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const ConnectionOptions& options) {
  bool tls_flags = !options.ca_file.empty() || !options.cert_file.empty() ||
                   !options.key_file.empty() || options.insecure_skip_verify;
  auto address = ParseServerAddress(options.server, tls_flags);
  if (!address.ok()) return address.status();
  auto creds = Credentials(options, address->tls);
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  auto channel = grpc::CreateCustomChannel(address->target, *creds, args);
  return std::make_unique<Client>(std::move(channel), options,
                                  address->display);
}

Client::Client(std::shared_ptr<grpc::Channel> channel,
               ConnectionOptions options, std::string display)
    : channel_(std::move(channel)),
      stub_(ControlPlaneService::NewStub(channel_)),
      options_(std::move(options)),
      display_(std::move(display)) {}

void Client::Prepare(grpc::ClientContext* ctx) const {
  // gRPC's own monotonic clock: a relative deadline needs no wall clock.
  ctx->set_deadline(gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_millis(absl::ToInt64Milliseconds(options_.timeout),
                           GPR_TIMESPAN)));
  if (!options_.token.empty()) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
}

absl::Status Client::Explain(const grpc::Status& status,
                             absl::string_view method) const {
  return cli::Explain(status, method, display_,
                      FormatGoDuration(options_.timeout),
                      !options_.token.empty());
}

template <typename Req, typename Resp>
absl::StatusOr<Resp> Client::Call(absl::string_view method,
                                  grpc::Status (ControlPlaneService::Stub::*fn)(
                                      grpc::ClientContext*, const Req&, Resp*),
                                  const Req& req) {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  Resp resp;
  grpc::Status status = (stub_.get()->*fn)(&ctx, req, &resp);
  if (!status.ok()) return Explain(status, method);
  return resp;
}

absl::StatusOr<ListNodesResponse> Client::ListNodes(
    const ListNodesRequest& req) {
  // Page by page, so a fleet of any size fits gRPC's message limit. An
  // upstream server ignores the paging fields and answers everything at once
  // (no next_page_token): the loop ends after one call.
  ListNodesRequest page = req;
  if (page.page_size() == 0) page.set_page_size(2000);
  ListNodesResponse all;
  while (true) {
    absl::StatusOr<ListNodesResponse> resp =
        Call("ListNodes", &ControlPlaneService::Stub::ListNodes, page);
    if (!resp.ok()) return resp.status();
    for (NodeInfo& n : *resp->mutable_nodes()) *all.add_nodes() = std::move(n);
    if (resp->next_page_token().empty()) break;
    page.set_page_token(resp->next_page_token());
  }
  return all;
}

absl::StatusOr<GetNodeResponse> Client::GetNode(const GetNodeRequest& req) {
  return Call("GetNode", &ControlPlaneService::Stub::GetNode, req);
}

absl::StatusOr<IssueCommandResponse> Client::IssueCommand(
    const IssueCommandRequest& req) {
  return Call("IssueCommand", &ControlPlaneService::Stub::IssueCommand, req);
}

absl::StatusOr<ListPoolsResponse> Client::ListPools(
    const ListPoolsRequest& req) {
  return Call("ListPools", &ControlPlaneService::Stub::ListPools, req);
}

absl::StatusOr<GetPoolResponse> Client::GetPool(const GetPoolRequest& req) {
  return Call("GetPool", &ControlPlaneService::Stub::GetPool, req);
}

absl::StatusOr<ScalePoolResponse> Client::ScalePool(
    const ScalePoolRequest& req) {
  return Call("ScalePool", &ControlPlaneService::Stub::ScalePool, req);
}

absl::StatusOr<ResetPoolBreakerResponse> Client::ResetPoolBreaker(
    const ResetPoolBreakerRequest& req) {
  return Call("ResetPoolBreaker", &ControlPlaneService::Stub::ResetPoolBreaker,
              req);
}

absl::StatusOr<GetClusterResponse> Client::GetCluster(
    const GetClusterRequest& req) {
  return Call("GetCluster", &ControlPlaneService::Stub::GetCluster, req);
}

absl::StatusOr<ListProvidersResponse> Client::ListProviders(
    const ListProvidersRequest& req) {
  return Call("ListProviders", &ControlPlaneService::Stub::ListProviders, req);
}

absl::StatusOr<ListInstanceTypesResponse> Client::ListInstanceTypes(
    const ListInstanceTypesRequest& req) {
  return Call("ListInstanceTypes",
              &ControlPlaneService::Stub::ListInstanceTypes, req);
}

absl::StatusOr<ListInstancesResponse> Client::ListInstances(
    const ListInstancesRequest& req) {
  return Call("ListInstances", &ControlPlaneService::Stub::ListInstances, req);
}

namespace {

// Calls `list` page after page, moving the items `items` picks out of each
// answer into one vector.
template <typename Req, typename Resp, typename Item, typename List,
          typename Items>
absl::StatusOr<std::vector<Item>> FollowPages(Req req, int page_size, List list,
                                              Items items) {
  req.set_page_size(page_size);
  std::vector<Item> out;
  while (true) {
    absl::StatusOr<Resp> page = list(req);
    if (!page.ok()) return page.status();
    for (Item& item : *items(*page)) out.push_back(std::move(item));
    if (page->next_page_token().empty()) return out;
    // A server that hands back the token it was given would loop forever.
    if (page->next_page_token() == req.page_token()) {
      return absl::InternalError(
          "the server returned the same page token twice; stopping");
    }
    req.set_page_token(page->next_page_token());
  }
}

}  // namespace

absl::StatusOr<std::vector<NodeInfo>> Client::ListAllNodes(ListNodesRequest req,
                                                           int page_size) {
  return FollowPages<ListNodesRequest, ListNodesResponse, NodeInfo>(
      std::move(req), page_size,
      [this](const ListNodesRequest& r) { return ListNodes(r); },
      [](ListNodesResponse& r) { return r.mutable_nodes(); });
}

absl::StatusOr<std::vector<InstanceInfo>> Client::ListAllInstances(
    ListInstancesRequest req, int page_size) {
  return FollowPages<ListInstancesRequest, ListInstancesResponse, InstanceInfo>(
      std::move(req), page_size,
      [this](const ListInstancesRequest& r) { return ListInstances(r); },
      [](ListInstancesResponse& r) { return r.mutable_instances(); });
}

absl::StatusOr<GetInstanceResponse> Client::GetInstance(
    const GetInstanceRequest& req) {
  return Call("GetInstance", &ControlPlaneService::Stub::GetInstance, req);
}

absl::StatusOr<ListEventsResponse> Client::ListEvents(
    const ListEventsRequest& req) {
  return Call("ListEvents", &ControlPlaneService::Stub::ListEvents, req);
}

absl::Status Client::Probe(absl::string_view method,
                           std::string* server_version) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  Prepare(&ctx);
  // Zero bytes: the encoding of a message with every field at its default.
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  grpc::Status result;
  absl::Notification done;
  generic.UnaryCall(&ctx, absl::StrCat("/", kService, "/", method),
                    grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      result = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  if (server_version != nullptr) {
    const auto& headers = ctx.GetServerInitialMetadata();
    auto it = headers.find("navarch-version");
    server_version->clear();
    if (it != headers.end()) {
      server_version->assign(it->second.data(), it->second.size());
    }
  }
  if (!result.ok()) return Explain(result, method);
  return absl::OkStatus();
}

}  // namespace navarch::cli
