#include "navarch/controlplane/rest_api.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "navarch/api/json.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/controlplane/paging.h"
#include "navarch/controlplane/pool_api.h"
#include "navarch/net/http_client.h"

namespace navarch {
namespace {

using Params = std::set<std::string>;
using Req = const httplib::Request&;
using Res = httplib::Response&;

std::string UrlDecode(absl::string_view s) {
  std::string out;
  auto hex = [](char c) {
    return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
        absl::ascii_isxdigit(s[i + 2])) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The query of the URL, parsed here rather than taken from httplib's params:
// those also hold a form-encoded body (curl -d sends one by default), and
// httplib splits "label=team=a" at the wrong '='.
using Query = std::multimap<std::string, std::string>;

Query QueryOf(const httplib::Request& req) {
  Query q;
  const size_t mark = req.target.find('?');
  if (mark == std::string::npos) return q;
  for (absl::string_view item :
       absl::StrSplit(absl::string_view(req.target).substr(mark + 1), '&',
                      absl::SkipEmpty())) {
    const size_t eq = item.find('=');
    q.emplace(UrlDecode(item.substr(0, eq)),
              eq == absl::string_view::npos ? std::string()
                                            : UrlDecode(item.substr(eq + 1)));
  }
  return q;
}

// Unknown parameters are typos that would otherwise silently widen a query;
// a single-valued one given twice is ambiguous.
absl::Status CheckParams(const Query& query, const Params& single,
                         const Params& repeatable = {}) {
  for (const auto& [key, value] : query) {
    if (repeatable.count(key) > 0) continue;
    if (single.count(key) == 0) {
      std::vector<std::string> valid(single.begin(), single.end());
      valid.insert(valid.end(), repeatable.begin(), repeatable.end());
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown query parameter \"", key.substr(0, 64), "\" (valid: ",
          valid.empty() ? "none" : absl::StrJoin(valid, ", "), ")"));
    }
    if (query.count(key) > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter \"", key, "\" given more than once"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckParams(const httplib::Request& req, const Params& single,
                         const Params& repeatable = {}) {
  return CheckParams(QueryOf(req), single, repeatable);
}

std::string Param(const Query& query, const char* key) {
  auto it = query.find(key);
  return it == query.end() ? "" : it->second;
}

std::vector<std::string> ParamValues(const Query& query, const char* key) {
  std::vector<std::string> out;
  auto [begin, end] = query.equal_range(key);
  for (auto it = begin; it != end; ++it) out.push_back(it->second);
  return out;
}

// "healthy" or "HEALTH_STATUS_HEALTHY", any case; UNKNOWN (0) is a value
// here, unlike in names.h, because "unknown" health is something to filter on.
template <typename Enum>
absl::StatusOr<Enum> ParseEnumName(absl::string_view text,
                                   absl::string_view prefix,
                                   const google::protobuf::EnumDescriptor* d,
                                   absl::string_view what) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(upper, prefix)) upper = absl::StrCat(prefix, upper);
  if (const auto* v = d->FindValueByName(upper)) {
    return static_cast<Enum>(v->number());
  }
  std::vector<std::string> valid;
  for (int i = 0; i < d->value_count(); ++i) {
    valid.push_back(
        absl::AsciiStrToLower(absl::StripPrefix(d->value(i)->name(), prefix)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " \"", text.substr(0, 64),
                   "\" (valid: ", absl::StrJoin(valid, ", "), ")"));
}

// An RFC 3339 time, or a Go duration meaning that long before `now`.
absl::StatusOr<absl::Time> ParseTimeParam(const char* key,
                                          const std::string& text,
                                          absl::Time now) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  absl::StatusOr<absl::Duration> ago = ParseGoDuration(text);
  if (ago.ok() && *ago >= absl::ZeroDuration()) return now - *ago;
  return absl::InvalidArgumentError(
      absl::StrCat(key,
                   ": expected an RFC 3339 time (2026-01-02T15:04:05Z) "
                   "or a duration such as 1h, got \"",
                   text.substr(0, 64), "\""));
}

// The optional JSON object body of a POST; {} when empty.
absl::StatusOr<nlohmann::json> JsonBody(const httplib::Request& req,
                                        const Params& keys) {
  if (absl::StripAsciiWhitespace(req.body).empty()) {
    return nlohmann::json::object();
  }
  nlohmann::json body =
      nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("the body must be a JSON object");
  }
  for (const auto& [key, value] : body.items()) {
    if (keys.count(key) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field \"", key.substr(0, 64),
                       "\" (valid: ", absl::StrJoin(keys, ", "), ")"));
    }
  }
  return body;
}

// ?page_size= (AIP-158): a whole number from 1; the fleet core caps it per
// list. 0 when absent: every item, as upstream clients expect.
absl::StatusOr<int> PageSize(const Query& query) {
  if (query.count("page_size") == 0) return 0;
  int n = 0;
  if (!absl::SimpleAtoi(Param(query, "page_size"), &n) || n < 1) {
    return absl::InvalidArgumentError(
        "page_size: expected a whole number from 1");
  }
  return n;
}

// The array stays the body (as the CLI prints it); the next page's address
// travels in a Link header (RFC 8288, as GitHub's API does), and the bare
// token in X-Next-Page-Token for clients that build URLs themselves.
void LinkNextPage(const httplib::Request& req, const Query& query,
                  const std::string& token, httplib::Response& res) {
  if (token.empty()) return;
  res.set_header("X-Next-Page-Token", token);
  std::string next = absl::StrCat(req.path, "?");
  for (const auto& [key, value] : query) {
    if (key == "page_token") continue;
    absl::StrAppend(&next, UrlEncode(key), "=", UrlEncode(value), "&");
  }
  absl::StrAppend(&next, "page_token=", UrlEncode(token));
  res.set_header("Link", absl::StrCat("<", next, ">; rel=\"next\""));
}

}  // namespace

RestApi::RestApi(FleetService& fleet, const HttpApiContext& ctx,
                 PoolManager* pools, ProviderApi* providers)
    : fleet_(fleet), ctx_(ctx), pools_(pools), providers_(providers) {}

template <typename Handler>
httplib::Server::Handler RestApi::Route(const char* method, Access access,
                                        Handler handler) {
  return [this, method, access, handler](const httplib::Request& req,
                                         httplib::Response& res) {
    RunApiCall(
        ctx_, {"rest", method, access}, req, res,
        [&](const Identity& caller) { return handler(req, res, caller); });
  };
}

void RestApi::Register(HttpRouter& server) {
  RegisterNodes(server);
  RegisterInstances(server);
  RegisterPools(server);
  RegisterProviders(server);
  server.Get("/api/v1/events", Route("ListEvents", Access::kRead,
                                     [this](Req req, Res res, const Identity&) {
                                       return ListEvents(req, res);
                                     }));
}

void RestApi::RegisterNodes(HttpRouter& server) {
  server.Get("/api/v1/nodes", Route("ListNodes", Access::kRead,
                                    [this](Req req, Res res, const Identity&) {
                                      return ListNodes(req, res);
                                    }));
  server.Get(R"(/api/v1/nodes/([^/]+))",
             Route("GetNode", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     return GetNode(req.matches[1].str(), res);
                   }));
  struct Verb {
    const char* path;
    const char* metric;
    NodeCommandType type;
  };
  for (const Verb& v :
       {Verb{"cordon", "CordonNode", NODE_COMMAND_TYPE_CORDON},
        Verb{"uncordon", "UncordonNode", NODE_COMMAND_TYPE_UNCORDON},
        Verb{"drain", "DrainNode", NODE_COMMAND_TYPE_DRAIN},
        Verb{"terminate", "TerminateNode", NODE_COMMAND_TYPE_TERMINATE}}) {
    const NodeCommandType type = v.type;
    server.Post(absl::StrCat(R"(/api/v1/nodes/([^/]+)/)", v.path),
                Route(v.metric, Access::kOperate,
                      [this, type](Req req, Res res, const Identity& caller) {
                        NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                        return NodeCommand(req, res, req.matches[1].str(), type,
                                           caller);
                      }));
  }
}

void RestApi::RegisterInstances(HttpRouter& server) {
  server.Get("/api/v1/instances",
             Route("ListInstances", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     return ListInstances(req, res);
                   }));
  server.Get(R"(/api/v1/instances/([^/]+))",
             Route("GetInstance", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     GetInstanceRequest r;
                     r.set_instance_id(req.matches[1].str());
                     NAVARCH_ASSIGN_OR_RETURN(GetInstanceResponse resp,
                                              fleet_.GetInstance(r));
                     WriteJson(res, ToJson(resp.instance()));
                     return absl::OkStatus();
                   }));
}

void RestApi::RegisterPools(HttpRouter& server) {
  server.Get("/api/v1/pools",
             Route("ListPools", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     NAVARCH_ASSIGN_OR_RETURN(ListPoolsResponse resp,
                                              navarch::ListPools(pools_));
                     nlohmann::json out = nlohmann::json::array();
                     for (const PoolInfo& p : resp.pools()) {
                       out.push_back(ToJson(p));
                     }
                     WriteJson(res, out);
                     return absl::OkStatus();
                   }));
  server.Get(R"(/api/v1/pools/([^/]+))",
             Route("GetPool", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     GetPoolRequest r;
                     r.set_name(req.matches[1].str());
                     NAVARCH_ASSIGN_OR_RETURN(GetPoolResponse resp,
                                              navarch::GetPool(pools_, r));
                     WriteJson(res, ToJson(resp.pool()));
                     return absl::OkStatus();
                   }));
  server.Post(R"(/api/v1/pools/([^/]+)/scale)",
              Route("ScalePool", Access::kOperate,
                    [this](Req req, Res res, const Identity& caller) {
                      NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                      return ScalePool(req, res, req.matches[1].str(), caller);
                    }));
  server.Post(
      R"(/api/v1/pools/([^/]+)/reset-breaker)",
      Route("ResetPoolBreaker", Access::kOperate,
            [this](Req req, Res res, const Identity& caller) {
              NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
              ResetPoolBreakerRequest r;
              r.set_name(req.matches[1].str());
              NAVARCH_ASSIGN_OR_RETURN(
                  ResetPoolBreakerResponse resp,
                  navarch::ResetPoolBreaker(pools_, r, Actor{caller.actor}));
              nlohmann::json out = ToJson(resp.pool());
              out["was_open"] = resp.was_open();
              WriteJson(res, out);
              return absl::OkStatus();
            }));
}

void RestApi::RegisterProviders(HttpRouter& server) {
  server.Get("/api/v1/cluster",
             Route("GetCluster", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     NAVARCH_ASSIGN_OR_RETURN(GetClusterResponse resp,
                                              GetCluster(ctx_.cluster));
                     WriteJson(res, ToJson(resp));
                     return absl::OkStatus();
                   }));
  server.Get("/api/v1/providers",
             Route("ListProviders", Access::kRead,
                   [this](Req req, Res res, const Identity&) {
                     NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
                     if (providers_ == nullptr) return ProvidersNotServed();
                     NAVARCH_ASSIGN_OR_RETURN(ListProvidersResponse resp,
                                              providers_->ListProviders());
                     nlohmann::json out = nlohmann::json::array();
                     for (const ProviderInfo& p : resp.providers()) {
                       out.push_back(ToJson(p));
                     }
                     WriteJson(res, out);
                     return absl::OkStatus();
                   }));
  // Waits (on this HTTP worker) for the provider, which runs on a thread of
  // its own, or for its deadline.
  server.Get(
      R"(/api/v1/providers/([^/]+)/instance-types)",
      Route("ListInstanceTypes", Access::kRead,
            [this](Req req, Res res, const Identity&) {
              NAVARCH_RETURN_IF_ERROR(CheckParams(req, {}));
              if (providers_ == nullptr) return ProvidersNotServed();
              ListInstanceTypesRequest r;
              r.set_provider(req.matches[1].str());
              NAVARCH_ASSIGN_OR_RETURN(ListInstanceTypesResponse resp,
                                       providers_->ListInstanceTypes(r));
              nlohmann::json out = nlohmann::json::array();
              for (const ProviderInstanceType& t : resp.instance_types()) {
                out.push_back(ToJson(t));
              }
              WriteJson(res, out);
              return absl::OkStatus();
            }));
}

absl::Status RestApi::ListNodes(const httplib::Request& req,
                                httplib::Response& res) {
  const Query query = QueryOf(req);
  NAVARCH_RETURN_IF_ERROR(
      CheckParams(query,
                  {"provider", "region", "zone", "pool", "status", "health",
                   "page_size", "page_token"},
                  {"label"}));
  ListNodesRequest r;
  NAVARCH_ASSIGN_OR_RETURN(int page_size, PageSize(query));
  r.set_page_size(page_size);
  r.set_page_token(Param(query, "page_token"));
  r.set_provider(Param(query, "provider"));
  r.set_region(Param(query, "region"));
  if (query.count("status") > 0) {
    NAVARCH_ASSIGN_OR_RETURN(NodeStatus status,
                             ParseNodeStatus(Param(query, "status")));
    r.set_status(status);
  }
  std::optional<HealthStatus> health;
  if (query.count("health") > 0) {
    NAVARCH_ASSIGN_OR_RETURN(health,
                             ParseEnumName<HealthStatus>(
                                 Param(query, "health"), "HEALTH_STATUS_",
                                 HealthStatus_descriptor(), "health status"));
  }
  std::vector<std::pair<std::string, std::string>> labels;
  for (const std::string& kv : ParamValues(query, "label")) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label: expected key=value, got \"", kv.substr(0, 64), "\""));
    }
    labels.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  const std::string zone = Param(query, "zone");
  const std::string pool = Param(query, "pool");
  NAVARCH_ASSIGN_OR_RETURN(ListNodesResponse resp, fleet_.ListNodes(r));
  NAVARCH_RETURN_IF_ERROR(CheckUnpagedAnswer(resp, page_size, resp.nodes_size(),
                                             "nodes", max_response_bytes_));
  // Filters the fleet core has no field for apply to the page: a page may
  // hold fewer than page_size nodes, or none, and still have a next one.
  nlohmann::json out = nlohmann::json::array();
  for (const NodeInfo& n : resp.nodes()) {
    if (!zone.empty() && n.zone() != zone) continue;
    if (!pool.empty() && n.pool() != pool) continue;
    if (health && n.health_status() != *health) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = n.metadata().labels().find(k);
      if (it == n.metadata().labels().end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (match) out.push_back(ToJson(n));
  }
  LinkNextPage(req, query, resp.next_page_token(), res);
  WriteJson(res, out);
  return absl::OkStatus();
}

absl::Status RestApi::GetNode(const std::string& id, httplib::Response& res) {
  GetNodeRequest r;
  r.set_node_id(id);
  NAVARCH_ASSIGN_OR_RETURN(GetNodeResponse resp, fleet_.GetNode(r));
  WriteJson(res, ToJson(resp.node()));
  return absl::OkStatus();
}

absl::Status RestApi::NodeCommand(const httplib::Request& req,
                                  httplib::Response& res, const std::string& id,
                                  NodeCommandType type,
                                  const Identity& caller) {
  NAVARCH_ASSIGN_OR_RETURN(nlohmann::json body, JsonBody(req, {"reason"}));
  IssueCommandRequest r;
  r.set_node_id(id);
  r.set_command_type(type);
  if (body.contains("reason")) {
    if (!body["reason"].is_string()) {
      return absl::InvalidArgumentError("reason must be a string");
    }
    const std::string reason = body["reason"].get<std::string>();
    if (!reason.empty()) (*r.mutable_parameters())["reason"] = reason;
  }
  NAVARCH_ASSIGN_OR_RETURN(
      IssueCommandResponse issued, Await<IssueCommandResponse>([&](auto done) {
        fleet_.IssueCommand(r, Actor{caller.actor}, std::move(done));
      }));
  nlohmann::json out = ToJson(issued);
  GetNodeRequest g;
  g.set_node_id(id);
  if (absl::StatusOr<GetNodeResponse> node = fleet_.GetNode(g); node.ok()) {
    out["node"] = ToJson(node->node());
  }
  WriteJson(res, out);
  return absl::OkStatus();
}

absl::Status RestApi::ListInstances(const httplib::Request& req,
                                    httplib::Response& res) {
  const Query query = QueryOf(req);
  NAVARCH_RETURN_IF_ERROR(CheckParams(
      query,
      {"provider", "region", "state", "pool", "page_size", "page_token"}));
  ListInstancesRequest r;
  NAVARCH_ASSIGN_OR_RETURN(int page_size, PageSize(query));
  r.set_page_size(page_size);
  r.set_page_token(Param(query, "page_token"));
  r.set_provider(Param(query, "provider"));
  r.set_region(Param(query, "region"));
  r.set_pool_name(Param(query, "pool"));
  if (query.count("state") > 0) {
    NAVARCH_ASSIGN_OR_RETURN(InstanceState state,
                             ParseEnumName<InstanceState>(
                                 Param(query, "state"), "INSTANCE_STATE_",
                                 InstanceState_descriptor(), "instance state"));
    r.set_state(state);
  }
  NAVARCH_ASSIGN_OR_RETURN(ListInstancesResponse resp, fleet_.ListInstances(r));
  NAVARCH_RETURN_IF_ERROR(CheckUnpagedAnswer(resp, page_size,
                                             resp.instances_size(), "instances",
                                             max_response_bytes_));
  nlohmann::json out = nlohmann::json::array();
  for (const InstanceInfo& i : resp.instances()) out.push_back(ToJson(i));
  LinkNextPage(req, query, resp.next_page_token(), res);
  WriteJson(res, out);
  return absl::OkStatus();
}

absl::Status RestApi::ListEvents(const httplib::Request& req,
                                 httplib::Response& res) {
  const Query query = QueryOf(req);
  NAVARCH_RETURN_IF_ERROR(CheckParams(
      query,
      {"node", "pool", "since", "until", "limit", "page_size", "page_token"},
      {"kind"}));
  ListEventsRequest r;
  r.set_node_id(Param(query, "node"));
  r.set_pool(Param(query, "pool"));
  for (const std::string& kind : ParamValues(query, "kind")) r.add_kinds(kind);
  const absl::Time now = ctx_.clock.Now();
  if (query.count("since") > 0) {
    NAVARCH_ASSIGN_OR_RETURN(
        absl::Time t, ParseTimeParam("since", Param(query, "since"), now));
    *r.mutable_since() = ToTimestamp(t);
  }
  if (query.count("until") > 0) {
    NAVARCH_ASSIGN_OR_RETURN(
        absl::Time t, ParseTimeParam("until", Param(query, "until"), now));
    *r.mutable_until() = ToTimestamp(t);
  }
  // `limit` is the older name of page_size; events come 100 to a page
  // unless asked otherwise, at most 1000.
  if (query.count("limit") > 0 && query.count("page_size") > 0) {
    return absl::InvalidArgumentError("give page_size or limit, not both");
  }
  const char* size_key = query.count("limit") > 0 ? "limit" : "page_size";
  if (query.count(size_key) > 0) {
    int limit = 0;
    if (!absl::SimpleAtoi(Param(query, size_key), &limit) || limit < 1 ||
        limit > 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat(size_key, ": expected a whole number from 1 to 1000"));
    }
    r.set_page_size(limit);
  }
  r.set_page_token(Param(query, "page_token"));
  NAVARCH_ASSIGN_OR_RETURN(ListEventsResponse resp, fleet_.ListEvents(r));
  nlohmann::json out = nlohmann::json::array();
  for (const Event& e : resp.events()) out.push_back(ToJson(e));
  LinkNextPage(req, query, resp.next_page_token(), res);
  WriteJson(res, out);
  return absl::OkStatus();
}

absl::Status RestApi::ScalePool(const httplib::Request& req,
                                httplib::Response& res, const std::string& name,
                                const Identity& caller) {
  NAVARCH_ASSIGN_OR_RETURN(nlohmann::json body, JsonBody(req, {"target"}));
  if (!body.contains("target") || !body["target"].is_number_integer() ||
      body["target"].get<int64_t>() < 0 ||
      body["target"].get<int64_t>() > 100000) {
    return absl::InvalidArgumentError(
        "target: expected a whole number of nodes from 0 to 100000");
  }
  ScalePoolRequest r;
  r.set_name(name);
  r.set_target_nodes(body["target"].get<int>());
  NAVARCH_ASSIGN_OR_RETURN(ScalePoolResponse resp,
                           navarch::ScalePool(pools_, r, Actor{caller.actor}));
  WriteJson(res, ToJson(resp.pool()));
  return absl::OkStatus();
}

}  // namespace navarch
