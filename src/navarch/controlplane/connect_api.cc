#include "navarch/controlplane/connect_api.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "navarch/base/status.h"
#include "navarch/controlplane/connect_stream.h"
#include "navarch/controlplane/node_bootstrap.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/pool_api.h"

namespace navarch {
namespace {

enum class Codec { kJson, kProto };

// "application/json; charset=utf-8" -> "application/json".
std::string MediaType(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(t));
}

// The node a request is about: its node_id field, when it has one.
std::string NodeIdOf(const google::protobuf::Message& m) {
  const google::protobuf::FieldDescriptor* f =
      m.GetDescriptor()->FindFieldByName("node_id");
  if (f == nullptr || f->is_repeated() ||
      f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
    return "";
  }
  return m.GetReflection()->GetString(m, f);
}

absl::Status Parse(Codec codec, const std::string& body,
                   google::protobuf::Message* m) {
  if (codec == Codec::kProto) {
    if (!m->ParseFromString(body)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid binary protobuf for ", m->GetTypeName()));
    }
    return absl::OkStatus();
  }
  // An empty JSON body is the empty message, as for binary protobuf.
  absl::string_view json = absl::StripAsciiWhitespace(body);
  if (json.empty()) json = "{}";
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), m, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON for ", m->GetTypeName(), ": ",
                     std::string(status.message())));
  }
  return absl::OkStatus();
}

absl::Status Write(Codec codec, const google::protobuf::Message& m,
                   httplib::Response& res) {
  std::string out;
  if (codec == Codec::kProto) {
    if (!m.SerializeToString(&out)) {
      return absl::InternalError("cannot serialize the response");
    }
    res.set_content(out, "application/proto");
    return absl::OkStatus();
  }
  // protojson's defaults, as connect-go writes: lowerCamelCase names, enum
  // names, default values left out.
  google::protobuf::util::JsonPrintOptions options;
  auto status = google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the response: ",
                                            std::string(status.message())));
  }
  res.set_content(out, "application/json");
  return absl::OkStatus();
}

template <typename T, typename Call>
absl::StatusOr<T> Wait(Call call) {
  return Await<T>(std::move(call));
}

}  // namespace

template <typename Req, typename Resp>
void ConnectApi::Add(
    const std::string& name,
    std::function<absl::StatusOr<Resp>(const Req&, const Identity&)> call) {
  Method m;
  m.access = *MethodAccess(name);
  m.new_request = [] { return std::make_unique<Req>(); };
  m.call = [call = std::move(call)](const google::protobuf::Message& request,
                                    const Identity& caller)
      -> absl::StatusOr<std::unique_ptr<google::protobuf::Message>> {
    absl::StatusOr<Resp> r = call(static_cast<const Req&>(request), caller);
    if (!r.ok()) return r.status();
    return std::make_unique<Resp>(std::move(*r));
  };
  methods_[name] = std::move(m);
}

ConnectApi::ConnectApi(FleetService& fleet, const HttpApiContext& ctx,
                       PoolManager* pools, ProviderApi* providers)
    : fleet_(fleet), ctx_(ctx), pools_(pools), providers_(providers) {
  FleetService& f = fleet_;
  const Authenticator& auth = ctx_.auth;
  Add<RegisterNodeRequest, RegisterNodeResponse>(
      "RegisterNode",
      [&f, &auth](const RegisterNodeRequest& r, const Identity& caller)
          -> absl::StatusOr<RegisterNodeResponse> {
        // An empty node id with a bootstrap token: the instance's id.
        absl::StatusOr<std::string> id = RegisteringNodeId(f, caller, r);
        if (!id.ok()) return id.status();
        RegisterNodeRequest req = r;
        req.set_node_id(*id);
        absl::StatusOr<RegisterNodeResponse> resp = Wait<RegisterNodeResponse>(
            [&](auto done) { f.RegisterNode(req, std::move(done)); });
        if (resp.ok()) HandNodeToken(auth, caller, *id, *resp);
        return resp;
      });
  Add<ReportHealthRequest, ReportHealthResponse>(
      "ReportHealth", [&f](const ReportHealthRequest& r, const Identity&) {
        return Wait<ReportHealthResponse>(
            [&](auto done) { f.ReportHealth(r, std::move(done)); });
      });
  Add<HeartbeatRequest, HeartbeatResponse>(
      "SendHeartbeat", [&f](const HeartbeatRequest& r, const Identity&) {
        return Wait<HeartbeatResponse>(
            [&](auto done) { f.SendHeartbeat(r, std::move(done)); });
      });
  Add<GetNodeCommandsRequest, GetNodeCommandsResponse>(
      "GetNodeCommands",
      [&f](const GetNodeCommandsRequest& r, const Identity&) {
        return Wait<GetNodeCommandsResponse>(
            [&](auto done) { f.GetNodeCommands(r, std::move(done)); });
      });
  Add<AckCommandRequest, AckCommandResponse>(
      "AckCommand", [&f](const AckCommandRequest& r, const Identity&) {
        return Wait<AckCommandResponse>(
            [&](auto done) { f.AckCommand(r, std::move(done)); });
      });
  AddOperatorMethods();
}

void ConnectApi::AddOperatorMethods() {
  FleetService& f = fleet_;
  PoolManager* pools = pools_;
  Add<IssueCommandRequest, IssueCommandResponse>(
      "IssueCommand",
      [&f](const IssueCommandRequest& r, const Identity& caller) {
        return Wait<IssueCommandResponse>([&](auto done) {
          f.IssueCommand(r, Actor{caller.actor}, std::move(done));
        });
      });
  Add<ListNodesRequest, ListNodesResponse>(
      "ListNodes",
      [this](const ListNodesRequest& r,
             const Identity&) -> absl::StatusOr<ListNodesResponse> {
        NAVARCH_ASSIGN_OR_RETURN(ListNodesResponse resp, fleet_.ListNodes(r));
        NAVARCH_RETURN_IF_ERROR(CheckUnpagedAnswer(resp, r.page_size(),
                                                   resp.nodes_size(), "nodes",
                                                   max_response_bytes_));
        return resp;
      });
  Add<GetNodeRequest, GetNodeResponse>(
      "GetNode",
      [&f](const GetNodeRequest& r, const Identity&) { return f.GetNode(r); });
  Add<ListInstancesRequest, ListInstancesResponse>(
      "ListInstances",
      [this](const ListInstancesRequest& r,
             const Identity&) -> absl::StatusOr<ListInstancesResponse> {
        NAVARCH_ASSIGN_OR_RETURN(ListInstancesResponse resp,
                                 fleet_.ListInstances(r));
        NAVARCH_RETURN_IF_ERROR(
            CheckUnpagedAnswer(resp, r.page_size(), resp.instances_size(),
                               "instances", max_response_bytes_));
        return resp;
      });
  Add<GetInstanceRequest, GetInstanceResponse>(
      "GetInstance", [&f](const GetInstanceRequest& r, const Identity&) {
        return f.GetInstance(r);
      });
  Add<ListEventsRequest, ListEventsResponse>(
      "ListEvents", [&f](const ListEventsRequest& r, const Identity&) {
        return f.ListEvents(r);
      });
  Add<ListPoolsRequest, ListPoolsResponse>(
      "ListPools", [pools](const ListPoolsRequest&, const Identity&) {
        return navarch::ListPools(pools);
      });
  Add<GetPoolRequest, GetPoolResponse>(
      "GetPool", [pools](const GetPoolRequest& r, const Identity&) {
        return navarch::GetPool(pools, r);
      });
  Add<ResetPoolBreakerRequest, ResetPoolBreakerResponse>(
      "ResetPoolBreaker",
      [pools](const ResetPoolBreakerRequest& r, const Identity& caller) {
        return navarch::ResetPoolBreaker(pools, r, Actor{caller.actor});
      });
  Add<ScalePoolRequest, ScalePoolResponse>(
      "ScalePool", [pools](const ScalePoolRequest& r, const Identity& caller) {
        return navarch::ScalePool(pools, r, Actor{caller.actor});
      });
  AddProviderMethods();
}

void ConnectApi::AddProviderMethods() {
  const ClusterStatus* cluster = ctx_.cluster;
  Add<GetClusterRequest, GetClusterResponse>(
      "GetCluster", [cluster](const GetClusterRequest&, const Identity&) {
        return GetCluster(cluster);
      });
  ProviderApi* providers = providers_;
  Add<ListProvidersRequest, ListProvidersResponse>(
      "ListProviders",
      [providers](const ListProvidersRequest&,
                  const Identity&) -> absl::StatusOr<ListProvidersResponse> {
        if (providers == nullptr) return ProvidersNotServed();
        return providers->ListProviders();
      });
  // Blocks this HTTP worker until the provider answers or its deadline
  // passes; the provider itself runs on a thread of its own.
  Add<ListInstanceTypesRequest, ListInstanceTypesResponse>(
      "ListInstanceTypes",
      [providers](const ListInstanceTypesRequest& r, const Identity&)
          -> absl::StatusOr<ListInstanceTypesResponse> {
        if (providers == nullptr) return ProvidersNotServed();
        return providers->ListInstanceTypes(r);
      });
}

void ConnectApi::Register(HttpRouter& server) {
  server.Post(R"(/navarch\.ControlPlaneService/([A-Za-z]{1,64}))",
              [this](const httplib::Request& req, httplib::Response& res) {
                Handle(req, res);
              });
}

void ConnectApi::Handle(const httplib::Request& req, httplib::Response& res) {
  const std::string name = req.matches[1].str();
  auto it = methods_.find(name);
  if (name == "WatchCommands") {
    ServeConnectWatch(fleet_, ctx_, closing_, req, res);
    return;
  }
  if (it == methods_.end()) {
    // An unknown name is not a metric label: anyone could mint new series.
    RunApiCall(ctx_, {"connect", "unknown", Access::kPublic}, req, res,
               [&](const Identity&) {
                 return absl::UnimplementedError(
                     absl::StrCat("unknown method navarch."
                                  "ControlPlaneService/",
                                  name));
               });
    return;
  }
  const Method& method = it->second;
  const std::string media = MediaType(req.get_header_value("Content-Type"));
  Codec codec = Codec::kJson;
  if (media == "application/proto") {
    codec = Codec::kProto;
  } else if (media != "application/json") {
    // The Connect protocol answers a codec it does not know with 415.
    res.set_header("Accept-Post", "application/json, application/proto");
    WriteJson(res,
              {{"code", "invalid_argument"},
               {"message", absl::StrCat("unsupported content type \"", media,
                                        "\": use application/json or "
                                        "application/proto")}},
              415);
    ctx_.metrics.Record("connect", name, absl::StatusCode::kInvalidArgument,
                        absl::ZeroDuration());
    return;
  }
  RunApiCall(
      ctx_, {"connect", name, method.access, /*authorize=*/false}, req, res,
      [&](const Identity& caller) -> absl::Status {
        if (req.has_header("Connect-Protocol-Version") &&
            req.get_header_value("Connect-Protocol-Version") != "1") {
          return absl::InvalidArgumentError(
              "unsupported Connect-Protocol-Version (this server speaks 1)");
        }
        std::unique_ptr<google::protobuf::Message> request =
            method.new_request();
        if (absl::Status s = Parse(codec, req.body, request.get()); !s.ok()) {
          return s;
        }
        if (absl::Status s = ctx_.auth.Authorize(caller, method.access, name,
                                                 NodeIdOf(*request));
            !s.ok()) {
          return s;
        }
        absl::StatusOr<std::unique_ptr<google::protobuf::Message>> response =
            method.call(*request, caller);
        if (!response.ok()) return response.status();
        return Write(codec, **response, res);
      });
}

}  // namespace navarch
