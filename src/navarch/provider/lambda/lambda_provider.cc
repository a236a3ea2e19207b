#include "navarch/provider/lambda/lambda_provider.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "navarch/base/file.h"
#include "navarch/provider/instance_types.h"
#include "nlohmann/json.hpp"

namespace navarch {

using json = nlohmann::json;

struct LambdaProvider::Answer {
  json data;
};

namespace {

constexpr char kJsonType[] = "application/json";
constexpr char kInsufficientCapacity[] =
    "instance-operations/launch/insufficient-capacity";

// A string field of a JSON object; empty when absent or not a string.
std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int Int(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
}

// "H100 (80 GB SXM5)" -> "H100".
std::string GpuModel(const std::string& description) {
  return std::string(absl::StripAsciiWhitespace(
      description.substr(0, description.find(" ("))));
}

ProviderInstance InstanceOf(const json& j, const std::string& provider) {
  ProviderInstance p;
  p.id = Str(j, "id");
  p.provider = provider;
  if (j.contains("region")) p.region = Str(j["region"], "name");
  if (j.contains("instance_type")) {
    const json& t = j["instance_type"];
    p.instance_type = Str(t, "name");
    p.gpu_type = GpuModel(Str(t, "gpu_description"));
    if (t.contains("specs")) p.gpu_count = Int(t["specs"], "gpus");
  }
  p.state = LambdaInstanceState(Str(j, "status"));
  p.ip_address = Str(j, "ip");
  if (j.contains("tags") && j["tags"].is_array()) {
    for (const json& t : j["tags"]) p.labels[Str(t, "key")] = Str(t, "value");
  }
  return p;
}

// Lambda's RequestedTagEntry: key ^[a-z][a-z0-9-:]+$ (up to 55), value up to
// 128 characters.
absl::Status CheckTag(const std::string& key, const std::string& value) {
  bool ok = key.size() >= 2 && key.size() <= 55 && absl::ascii_islower(key[0]);
  for (char c : key) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' ||
                c == ':');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label key '", key,
        "' is not a Lambda tag key (lower-case letters, digits, '-', ':'; "
        "2 to 55 characters, starting with a letter)"));
  }
  if (value.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("label '", key, "' is longer than 128 characters"));
  }
  return absl::OkStatus();
}

}  // namespace

ProviderInstanceState LambdaInstanceState(absl::string_view status) {
  if (status == "active" || status == "unhealthy") {
    return ProviderInstanceState::kRunning;
  }
  if (status == "terminating") return ProviderInstanceState::kTerminating;
  if (status == "terminated" || status == "preempted") {
    return ProviderInstanceState::kTerminated;
  }
  return ProviderInstanceState::kProvisioning;  // booting, or new to us
}

LambdaProvider::LambdaProvider(Clock& clock, LambdaProviderOptions options)
    : clock_(clock),
      options_(std::move(options)),
      http_([this] {
        CloudHttpOptions o = options_.http;
        o.provider = options_.name;
        o.clock = &clock_;
        return o;
      }()),
      launch_http_([this] {
        CloudHttpOptions o = options_.http;
        o.provider = options_.name;
        o.clock = &clock_;
        o.max_attempts = 1;
        return o;
      }()) {
  while (!options_.endpoint.empty() && options_.endpoint.back() == '/') {
    options_.endpoint.pop_back();
  }
  http_.redactor().Add(options_.api_key);
  launch_http_.redactor().Add(options_.api_key);
}

absl::StatusOr<LambdaProvider::Answer> LambdaProvider::Call(
    CloudHttp& http, absl::string_view operation, absl::string_view method,
    absl::string_view path, const std::string* body, absl::string_view region) {
  HttpRequest req;
  req.method = std::string(method);
  req.url = absl::StrCat(options_.endpoint, path);
  req.headers["Accept"] = kJsonType;
  if (body != nullptr) {
    req.body = *body;
    req.content_type = kJsonType;
  }
  const std::string key = options_.api_key;
  auto sign = [key](HttpRequest& r) {
    r.headers["Authorization"] = absl::StrCat("Bearer ", key);
    return absl::OkStatus();
  };
  absl::StatusOr<HttpResponse> r = http.Call(operation, std::move(req), sign);
  if (!r.ok()) return r.status();
  if (r->status < 200 || r->status > 299) return ErrorOf(operation, *r, region);
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data")) {
    return CloudError(
        absl::StatusCode::kUnavailable, options_.name, CloudErrorInfo{},
        http.redactor()(absl::StrCat(
            operation, ": answer without data: ", BodySnippet(r->body))));
  }
  return Answer{std::move(j["data"])};
}

absl::Status LambdaProvider::ErrorOf(absl::string_view operation,
                                     const HttpResponse& r,
                                     absl::string_view region) {
  json j = json::parse(r.body, nullptr, false);
  const json e = !j.is_discarded() && j.is_object() && j.contains("error")
                     ? j["error"]
                     : json::object();
  CloudErrorInfo info;
  info.cloud_code = Str(e, "code");
  info.region = std::string(region);
  std::string message = Str(e, "message");
  if (message.empty()) message = BodySnippet(r.body);
  if (std::string s = Str(e, "suggestion"); !s.empty()) {
    absl::StrAppend(&message, " (", s, ")");
  }
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  const std::string& c = info.cloud_code;
  if (c == kInsufficientCapacity) {
    code = absl::StatusCode::kResourceExhausted;
    info.scope = CloudErrorScope::kRegion;
  } else if (c == "global/quota-exceeded") {
    code = absl::StatusCode::kResourceExhausted;
    info.scope = CloudErrorScope::kProvider;
    info.quota = true;
  } else if (c == "global/invalid-api-key" || r.status == 401) {
    code = absl::StatusCode::kUnauthenticated;
    message = absl::StrCat(
        "the API key was refused (invalid, expired or deleted): check "
        "api_key_env / api_key_file; ",
        message);
  } else if (c == "global/account-inactive" || c == "global/invalid-address" ||
             r.status == 403) {
    code = absl::StatusCode::kPermissionDenied;
  } else if (c == "global/object-does-not-exist" || r.status == 404) {
    code = absl::StatusCode::kNotFound;
  } else if (r.status == 429 || r.status >= 500 ||
             absl::StartsWith(c, "provider/") || c == "global/internal-error") {
    code = absl::StatusCode::kUnavailable;
  } else if (r.status >= 400) {
    code = absl::StatusCode::kInvalidArgument;  // invalid-parameters, ...
  }
  return CloudError(code, options_.name, info,
                    http_.redactor()(absl::StrCat(operation, " (HTTP ",
                                                  r.status, "): ", message)));
}

absl::StatusOr<std::vector<ProviderInstance>> LambdaProvider::List() {
  absl::StatusOr<Answer> a = Call(http_, "list", "GET", "/instances", nullptr);
  if (!a.ok()) return a.status();
  std::vector<ProviderInstance> out;
  if (!a->data.is_array()) return out;
  for (const json& j : a->data) {
    ProviderInstance p = InstanceOf(j, options_.name);
    if (p.id.empty() || p.state == ProviderInstanceState::kTerminated) continue;
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::vector<InstanceTypeInfo>>
LambdaProvider::ListInstanceTypes() {
  absl::StatusOr<Answer> a =
      Call(http_, "instance-types", "GET", "/instance-types", nullptr);
  if (!a.ok()) return a.status();
  std::vector<InstanceTypeInfo> out;
  if (!a->data.is_object()) return out;
  for (const auto& [name, item] : a->data.items()) {
    const json t = item.value("instance_type", json::object());
    const json specs = t.value("specs", json::object());
    InstanceTypeInfo info;
    info.name = Str(t, "name").empty() ? name : Str(t, "name");
    info.gpu_count = Int(specs, "gpus");
    info.gpu_type = GpuModel(Str(t, "gpu_description"));
    info.memory_gb = Int(specs, "memory_gib");
    info.vcpus = Int(specs, "vcpus");
    info.price_per_hour = Int(t, "price_cents_per_hour") / 100.0;
    const json regions =
        item.value("regions_with_capacity_available", json::array());
    for (const json& r : regions) info.regions.push_back(Str(r, "name"));
    info.available = !info.regions.empty();
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::optional<ProviderInstance>> LambdaProvider::FindByToken(
    const std::string& token) {
  absl::StatusOr<std::vector<ProviderInstance>> all = List();
  if (!all.ok()) return all.status();
  for (ProviderInstance& p : *all) {
    auto it = p.labels.find(std::string(kLabelToken));
    if (it != p.labels.end() && it->second == token) return std::move(p);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> LambdaProvider::PickRegion(
    const std::string& type, const std::string& wanted) {
  absl::StatusOr<std::vector<InstanceTypeInfo>> types = ListInstanceTypes();
  if (!types.ok()) return types.status();
  const InstanceTypeInfo* found = nullptr;
  for (const InstanceTypeInfo& t : *types) {
    if (t.name == type) found = &t;
  }
  CloudErrorInfo info;
  info.region = wanted;
  if (found == nullptr) {
    return CloudError(absl::StatusCode::kNotFound, options_.name, info,
                      absl::StrCat("instance type '", type,
                                   "' is not offered (GET /instance-types)"));
  }
  for (const std::string& r : found->regions) {
    if (wanted.empty() || r == wanted) return r;
  }
  info.cloud_code = kInsufficientCapacity;
  info.scope =
      wanted.empty() ? CloudErrorScope::kProvider : CloudErrorScope::kRegion;
  return CloudError(
      absl::StatusCode::kResourceExhausted, options_.name, info,
      absl::StrCat("no capacity for ", type, " in ",
                   wanted.empty() ? "any region" : wanted,
                   " (regions_with_capacity_available); not launched"));
}

void LambdaProvider::WaitForLaunchSlot() {
  if (!last_launch_) return;
  const absl::Duration next = *last_launch_ + options_.launch_interval;
  const absl::Duration now = clock_.SteadyNow();
  if (now >= next) return;
  if (options_.http.sleep) {
    options_.http.sleep(next - now);
  } else {
    absl::SleepFor(next - now);
  }
}

absl::StatusOr<std::string> LambdaProvider::Launch(
    const ProvisionRequest& request, const std::string& region,
    const std::string& ssh_key) {
  json tags = json::array();
  for (const auto& [k, v] : request.labels) {
    if (k == kLabelToken) continue;
    tags.push_back({{"key", k}, {"value", v}});
  }
  tags.push_back({{"key", std::string(kLabelToken)},
                  {"value", request.idempotency_token}});
  json body = {{"region_name", region},
               {"instance_type_name", request.instance_type},
               {"ssh_key_names", json::array({ssh_key})},
               {"tags", tags}};
  if (!request.name.empty()) body["name"] = request.name.substr(0, 64);
  if (!request.user_data.empty()) body["user_data"] = request.user_data;
  const std::string text = body.dump();
  absl::StatusOr<Answer> a = Call(launch_http_, "launch", "POST",
                                  "/instance-operations/launch", &text, region);
  last_launch_ = clock_.SteadyNow();
  if (!a.ok()) return a.status();
  const json ids = a->data.value("instance_ids", json::array());
  if (!ids.is_array() || ids.empty() || !ids[0].is_string()) {
    return CloudError(absl::StatusCode::kUnavailable, options_.name,
                      CloudErrorInfo{}, "launch: answer without instance_ids");
  }
  return ids[0].get<std::string>();
}

absl::StatusOr<ProviderInstance> LambdaProvider::Provision(
    const ProvisionRequest& request) {
  if (request.idempotency_token.empty()) {
    return absl::InvalidArgumentError("provision needs an idempotency token");
  }
  if (request.instance_type.empty()) {
    return absl::InvalidArgumentError("provision needs an instance type");
  }
  ProvisionRequest req = request;
  req.instance_type =
      ResolveInstanceType(request.instance_type, ProviderType::kLambda);
  if (req.instance_type.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Lambda has no ", request.instance_type, " machine"));
  }
  std::string ssh_key = options_.ssh_key_name;
  if (ssh_key.empty() && request.ssh_keys.size() == 1) {
    ssh_key = request.ssh_keys[0];
  }
  if (ssh_key.empty()) {
    return absl::InvalidArgumentError(
        "Lambda launches need exactly one SSH key: set ssh_key_name");
  }
  for (const auto& [k, v] : request.labels) {
    if (absl::Status s = CheckTag(k, v); !s.ok()) return s;
  }
  if (absl::Status s =
          CheckTag(std::string(kLabelToken), request.idempotency_token);
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&launch_mu_);
  absl::StatusOr<std::optional<ProviderInstance>> existing =
      FindByToken(request.idempotency_token);
  if (!existing.ok()) return existing.status();
  if (*existing) return **existing;  // adopted: a retry, or a crash after it
  absl::StatusOr<std::string> region =
      PickRegion(req.instance_type, request.region);
  if (!region.ok()) return region.status();
  WaitForLaunchSlot();
  absl::StatusOr<std::string> id = Launch(req, *region, ssh_key);
  if (!id.ok()) return id.status();
  absl::StatusOr<Answer> got =
      Call(http_, "get", "GET", absl::StrCat("/instances/", *id), nullptr);
  if (got.ok()) return InstanceOf(got->data, options_.name);
  // Bought already: report what we asked for rather than fail.
  ProviderInstance p;
  p.id = *id;
  p.provider = options_.name;
  p.region = *region;
  p.instance_type = req.instance_type;
  p.labels = request.labels;
  p.labels[std::string(kLabelToken)] = request.idempotency_token;
  return p;
}

absl::Status LambdaProvider::Terminate(const std::string& instance_id) {
  if (instance_id.empty() || instance_id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("bad instance id");
  }
  absl::StatusOr<Answer> got = Call(
      http_, "get", "GET", absl::StrCat("/instances/", instance_id), nullptr);
  if (!got.ok()) return got.status();  // NOT_FOUND: never ours
  const ProviderInstanceState state =
      LambdaInstanceState(Str(got->data, "status"));
  if (state == ProviderInstanceState::kTerminated ||
      state == ProviderInstanceState::kTerminating) {
    return absl::OkStatus();
  }
  const std::string body = json{{"instance_ids", {instance_id}}}.dump();
  absl::StatusOr<Answer> a =
      Call(http_, "terminate", "POST", "/instance-operations/terminate", &body);
  return a.status();
}

absl::StatusOr<LambdaProviderOptions> LambdaOptionsFromConfig(
    const ProviderConfig& config,
    const std::function<std::optional<std::string>(const std::string&)>& env) {
  LambdaProviderOptions o;
  o.name = config.name;
  const LambdaKeys& k = config.lambda;
  if (!k.endpoint.empty()) o.endpoint = k.endpoint;
  o.ssh_key_name = k.ssh_key_name;
  o.http.ca_file = k.ca_file;
  std::string key;
  if (!k.api_key_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileToString(k.api_key_file);
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("provider ", config.name, ": cannot read api_key_file ",
                       k.api_key_file));
    }
    key = *std::move(text);
  } else {
    const std::string var =
        config.api_key_env.empty() ? "LAMBDA_API_KEY" : config.api_key_env;
    std::optional<std::string> v;
    if (env) {
      v = env(var);
    } else if (const char* c = std::getenv(var.c_str()); c != nullptr) {
      v = c;
    }
    if (!v || v->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("provider ", config.name, ": no API key: set ", var,
                       " or api_key_file"));
    }
    key = *v;
  }
  o.api_key = std::string(absl::StripAsciiWhitespace(key));
  if (o.api_key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("provider ", config.name, ": the API key is empty"));
  }
  return o;
}

}  // namespace navarch
