#include "navarch/provider/aws/aws_provider.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/net/http_client.h"
#include "navarch/provider/aws/sigv4.h"
#include "navarch/provider/instance_types.h"

namespace navarch {
namespace {

constexpr char kVersion[] = "2016-11-15";
constexpr char kFormType[] = "application/x-www-form-urlencoded; charset=utf-8";
constexpr int kMaxPages = 1000;

bool IsThrottle(absl::string_view code) {
  return code == "RequestLimitExceeded" || code == "Throttling" ||
         code == "ThrottlingException";
}

std::string EndpointFor(const AwsProviderOptions& o) {
  if (!o.endpoint.empty()) return o.endpoint;
  GetEnv env = o.credentials.getenv ? o.credentials.getenv : ProcessEnv();
  if (std::optional<std::string> e = env("AWS_ENDPOINT_URL_EC2");
      e && !e->empty()) {
    return *e;
  }
  return absl::StrCat("https://ec2.", o.region, ".amazonaws.com/");
}

ProviderInstanceState StateOf(absl::string_view ec2_state) {
  if (ec2_state == "running") return ProviderInstanceState::kRunning;
  if (ec2_state == "terminated") return ProviderInstanceState::kTerminated;
  if (ec2_state == "pending") return ProviderInstanceState::kProvisioning;
  return ProviderInstanceState::kTerminating;  // shutting-down, stopping...
}

// EC2 client tokens are at most 64 ASCII characters. A longer token (long
// cluster and pool names) becomes its SHA-256, as deterministic, so a retry
// still finds its instance; the tag keeps the token itself.
std::string ClientToken(absl::string_view token) {
  bool fits = token.size() <= 64;
  for (char c : token) fits = fits && c > 32 && c < 127;
  return fits ? std::string(token) : Sha256Hex(token);
}

}  // namespace

std::pair<absl::StatusCode, CloudErrorScope> ClassifyEc2Error(
    absl::string_view code, int http_status, bool* quota) {
  *quota = false;
  if (code == "InsufficientInstanceCapacity" ||
      code == "InsufficientHostCapacity" || code == "Unsupported") {
    return {absl::StatusCode::kResourceExhausted, CloudErrorScope::kZone};
  }
  if (code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded" ||
      code == "MaxSpotInstanceCountExceeded") {
    *quota = true;
    return {absl::StatusCode::kResourceExhausted, CloudErrorScope::kRegion};
  }
  if (IsThrottle(code) || http_status >= 500 || http_status == 429) {
    return {absl::StatusCode::kUnavailable, CloudErrorScope::kUnknown};
  }
  if (code == "AuthFailure") {
    return {absl::StatusCode::kUnauthenticated, CloudErrorScope::kProvider};
  }
  if (code == "UnauthorizedOperation") {
    return {absl::StatusCode::kPermissionDenied, CloudErrorScope::kProvider};
  }
  if (absl::EndsWith(code, ".NotFound")) {
    return {absl::StatusCode::kNotFound, CloudErrorScope::kUnknown};
  }
  // IdempotentParameterMismatch, InvalidParameterValue, MissingParameter,
  // InvalidAMIID.Malformed, ...: the request is wrong.
  return {absl::StatusCode::kInvalidArgument, CloudErrorScope::kUnknown};
}

AwsProvider::AwsProvider(AwsProviderOptions options)
    : options_(std::move(options)),
      clock_(options_.http.clock != nullptr ? *options_.http.clock
                                            : RealClock::Default()),
      endpoint_(EndpointFor(options_)),
      credentials_([this] {
        AwsCredentialOptions c = options_.credentials;
        if (c.clock == nullptr) c.clock = options_.http.clock;
        return c;
      }()),
      http_([this] {
        CloudHttpOptions h = options_.http;
        h.provider = options_.name;
        return h;
      }()) {}

absl::Status AwsProvider::Sign(HttpRequest& request) {
  absl::StatusOr<AwsCredentials> c = credentials_.Get();
  if (!c.ok()) {
    CloudErrorInfo info;
    info.scope = CloudErrorScope::kProvider;
    info.region = options_.region;
    return CloudError(absl::StatusCode::kUnauthenticated, options_.name, info,
                      http_.redactor()(c.status().message()));
  }
  {
    absl::MutexLock lock(&mu_);
    if (c->secret_access_key != last_secret_) {
      last_secret_ = c->secret_access_key;
      // Static keys stay; instance-role keys rotate every few hours.
      http_.redactor().AddRotating(c->secret_access_key);
      http_.redactor().AddRotating(c->session_token);
    }
  }
  return SignHttpRequest(request, *c, options_.region, "ec2", clock_.Now());
}

absl::Status AwsProvider::ErrorOf(const HttpResponse& response,
                                  const std::string& zone) {
  std::optional<Ec2Error> e = ParseEc2Error(response.body);
  CloudErrorInfo info;
  info.region = options_.region;
  std::string message;
  if (e) {
    info.cloud_code = e->code;
    message = e->message;
  } else {
    message = absl::StrCat("HTTP ", response.status, ": ",
                           BodySnippet(response.body));
  }
  auto [code, scope] =
      ClassifyEc2Error(info.cloud_code, response.status, &info.quota);
  info.scope = scope;
  if (scope == CloudErrorScope::kZone) info.zone = zone;
  return CloudError(code, options_.name, info, http_.redactor()(message));
}

absl::StatusOr<std::string> AwsProvider::Call(const std::string& action,
                                              const Params& params,
                                              const std::string& zone) {
  HttpRequest req;
  req.method = "POST";
  req.url = endpoint_;
  req.content_type = kFormType;
  req.body = absl::StrCat("Action=", action, "&Version=", kVersion);
  for (const auto& [k, v] : params) {
    absl::StrAppend(&req.body, "&", UrlEncode(k), "=", UrlEncode(v));
  }
  // Throttling comes as HTTP 400 and is retried; capacity errors may come
  // as 5xx and are not: the selector moves on instead.
  auto retry_if = [](const HttpResponse& r) {
    if (r.status == 429) return true;
    if (r.status < 400) return false;
    std::optional<Ec2Error> e = ParseEc2Error(r.body);
    if (e && IsThrottle(e->code)) return true;
    bool quota = false;
    return r.status >= 500 &&
           (!e || ClassifyEc2Error(e->code, r.status, &quota).first ==
                      absl::StatusCode::kUnavailable);
  };
  absl::StatusOr<HttpResponse> r = http_.Call(
      action, std::move(req), [this](HttpRequest& q) { return Sign(q); },
      retry_if);
  if (!r.ok()) return r.status();
  if (r->status / 100 != 2) return ErrorOf(*r, zone);
  return std::move(r->body);
}

absl::StatusOr<AwsProvider::Params> AwsProvider::RunParams(
    const ProvisionRequest& request, const std::string& zone,
    const std::string& client_token) const {
  if (request.idempotency_token.empty()) {
    return absl::InvalidArgumentError("aws: no idempotency token");
  }
  if (request.instance_type.empty()) {
    return absl::InvalidArgumentError("aws: no instance type");
  }
  if (!request.region.empty() && request.region != options_.region) {
    return absl::NotFoundError(absl::StrCat("aws: region ", request.region,
                                            " is not this provider's (",
                                            options_.region, ")"));
  }
  Params p = {{"ImageId", options_.image_id},
              {"InstanceType", request.instance_type},
              {"MinCount", "1"},
              {"MaxCount", "1"},
              {"ClientToken", ClientToken(client_token)}};
  if (!options_.subnet_ids.empty()) {
    auto s = options_.subnet_ids.find(zone);
    if (s == options_.subnet_ids.end()) {
      return absl::NotFoundError(
          absl::StrCat("aws: no subnet for zone ", zone, " (subnet_ids)"));
    }
    p.emplace_back("SubnetId", s->second);
  } else if (!zone.empty()) {
    p.emplace_back("Placement.AvailabilityZone", zone);
  }
  for (size_t i = 0; i < options_.security_group_ids.size(); ++i) {
    p.emplace_back(absl::StrCat("SecurityGroupId.", i + 1),
                   options_.security_group_ids[i]);
  }
  if (!options_.key_name.empty()) p.emplace_back("KeyName", options_.key_name);
  if (!options_.instance_profile.empty()) {
    p.emplace_back("IamInstanceProfile.Name", options_.instance_profile);
  }
  if (options_.spot) p.emplace_back("InstanceMarketOptions.MarketType", "spot");
  if (!request.user_data.empty()) {
    p.emplace_back("UserData", absl::Base64Escape(request.user_data));
  }
  std::map<std::string, std::string> tags = request.labels;
  tags[std::string(kLabelToken)] = request.idempotency_token;
  if (!request.name.empty()) tags.emplace("Name", request.name);
  p.emplace_back("TagSpecification.1.ResourceType", "instance");
  int n = 0;
  for (const auto& [k, v] : tags) {
    ++n;
    p.emplace_back(absl::StrCat("TagSpecification.1.Tag.", n, ".Key"), k);
    p.emplace_back(absl::StrCat("TagSpecification.1.Tag.", n, ".Value"), v);
  }
  return p;
}

absl::StatusOr<ProviderInstance> AwsProvider::Provision(
    const ProvisionRequest& request) {
  // No zone asked for: each zone of subnet_ids in turn, moving on when one
  // has no capacity (as the selector would, but within one call).
  std::vector<std::string> zones;
  if (!request.zone.empty()) {
    zones.push_back(request.zone);
  } else {
    for (const auto& [zone, subnet] : options_.subnet_ids) {
      zones.push_back(zone);
    }
  }
  if (zones.empty()) zones.push_back("");
  absl::Status last;
  for (size_t k = 0; k < zones.size(); ++k) {
    // Another zone is another request: EC2 wants its own ClientToken. Each
    // is derived from the intent's token, so a retry stays idempotent.
    const std::string token =
        k == 0 ? request.idempotency_token
               : absl::StrCat(request.idempotency_token, "@", zones[k]);
    absl::StatusOr<ProviderInstance> got =
        ProvisionIn(request, zones[k], token);
    if (got.ok()) return got;
    last = got.status();
    std::optional<CloudErrorInfo> info = CloudErrorInfoOf(last);
    if (!info || info->scope != CloudErrorScope::kZone) break;
  }
  return last;
}

absl::StatusOr<ProviderInstance> AwsProvider::ProvisionIn(
    const ProvisionRequest& request, const std::string& zone,
    const std::string& client_token) {
  absl::StatusOr<Params> params = RunParams(request, zone, client_token);
  if (!params.ok()) return params.status();
  absl::StatusOr<std::string> body = Call("RunInstances", *params, zone);
  if (!body.ok()) return body.status();
  absl::StatusOr<std::vector<Ec2Instance>> made = ParseRunInstances(*body);
  if (!made.ok() || made->empty() || made->front().id.empty()) {
    return absl::UnavailableError(
        absl::StrCat(options_.name, ": RunInstances: unreadable answer: ",
                     made.ok() ? "no instance" : made.status().message()));
  }
  return ToInstance(made->front());
}

absl::Status AwsProvider::Terminate(const std::string& instance_id) {
  if (instance_id.empty() || instance_id.size() > 64) {
    return absl::NotFoundError(
        absl::StrCat(options_.name, ": no instance ", instance_id));
  }
  absl::StatusOr<std::string> body =
      Call("TerminateInstances", {{"InstanceId.1", instance_id}}, "");
  return body.status();
}

absl::StatusOr<std::vector<ProviderInstance>> AwsProvider::List() {
  std::vector<ProviderInstance> out;
  std::string next;
  for (int page = 0; page < kMaxPages; ++page) {
    Params p = {{"Filter.1.Name", absl::StrCat("tag:", kLabelManaged)},
                {"Filter.1.Value.1", "true"},
                {"Filter.2.Name", "instance-state-name"},
                {"Filter.2.Value.1", "pending"},
                {"Filter.2.Value.2", "running"},
                {"Filter.2.Value.3", "shutting-down"},
                {"Filter.2.Value.4", "stopping"},
                {"Filter.2.Value.5", "stopped"},
                {"MaxResults", "1000"}};
    if (!next.empty()) p.emplace_back("NextToken", next);
    absl::StatusOr<std::string> body = Call("DescribeInstances", p, "");
    if (!body.ok()) return body.status();
    absl::StatusOr<Ec2InstancePage> got = ParseDescribeInstances(*body);
    if (!got.ok()) {
      return absl::UnavailableError(
          absl::StrCat(options_.name,
                       ": DescribeInstances: unreadable "
                       "answer: ",
                       got.status().message()));
    }
    for (const Ec2Instance& i : got->instances) out.push_back(ToInstance(i));
    if (got->next_token.empty()) return out;
    next = got->next_token;
  }
  return absl::UnavailableError(
      absl::StrCat(options_.name, ": DescribeInstances: too many pages"));
}

absl::StatusOr<std::vector<InstanceTypeInfo>> AwsProvider::ListInstanceTypes() {
  std::vector<InstanceTypeInfo> out;
  std::string next;
  for (int page = 0; page < 100; ++page) {
    // GPU machines are the P and G families; the filter takes wildcards.
    Params p = {{"Filter.1.Name", "instance-type"},
                {"Filter.1.Value.1", "p*"},
                {"Filter.1.Value.2", "g*"},
                {"MaxResults", "100"}};
    if (!next.empty()) p.emplace_back("NextToken", next);
    absl::StatusOr<std::string> body = Call("DescribeInstanceTypes", p, "");
    if (!body.ok()) return body.status();
    absl::StatusOr<Ec2InstanceTypePage> got = ParseDescribeInstanceTypes(*body);
    if (!got.ok()) {
      return absl::UnavailableError(
          absl::StrCat(options_.name,
                       ": DescribeInstanceTypes: unreadable "
                       "answer: ",
                       got.status().message()));
    }
    for (const Ec2InstanceType& t : got->types) {
      if (t.gpu_count <= 0) continue;  // G and P families without GPUs
      InstanceTypeInfo info;
      info.name = t.name;
      info.gpu_count = t.gpu_count;
      info.gpu_type = t.gpu_name;
      info.vcpus = t.vcpus;
      info.memory_gb = static_cast<int>(t.memory_mib / 1024);
      info.regions = {options_.region};
      out.push_back(std::move(info));
    }
    if (got->next_token.empty()) return out;
    next = got->next_token;
  }
  return absl::UnavailableError(
      absl::StrCat(options_.name, ": DescribeInstanceTypes: too many pages"));
}

ProviderInstance AwsProvider::ToInstance(const Ec2Instance& i) const {
  ProviderInstance out;
  out.id = i.id;
  out.provider = options_.name;
  out.region = options_.region;
  out.zone = i.zone;
  out.instance_type = i.instance_type;
  out.state = StateOf(i.state);
  out.ip_address = i.private_ip;
  out.labels = i.tags;
  for (const AbstractInstanceType& t : AbstractInstanceTypes()) {
    if (!t.aws.empty() && t.aws == i.instance_type) {
      out.gpu_count = t.gpu_count;
      out.gpu_type = std::string(t.gpu_model);
    }
  }
  std::string err;
  absl::Time created;
  if (absl::ParseTime(absl::RFC3339_full, i.launch_time, &created, &err)) {
    out.created_at = created;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Provider>> NewAwsProvider(
    const ProviderConfig& config, const ProviderContext& context) {
  AwsProviderOptions o = AwsOptionsFromConfig(config);
  if (o.region.empty() || o.image_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aws provider '", config.name, "' needs region and image_id"));
  }
  o.http.clock = context.clock;
  o.http.seed = context.seed;
  o.http.observer = context.call_observer;
  auto provider = std::make_unique<AwsProvider>(std::move(o));
  if (absl::Status s = ParseUrl(provider->endpoint()).status(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aws provider '", config.name, "': endpoint: ", s.message()));
  }
  return provider;
}

AwsProviderOptions AwsOptionsFromConfig(const ProviderConfig& c) {
  AwsProviderOptions o;
  o.name = c.name;
  o.region = c.region;
  o.endpoint = c.aws_endpoint;
  o.image_id = c.aws_image_id;
  o.subnet_ids = c.aws_subnet_ids;
  o.security_group_ids = c.aws_security_group_ids;
  o.key_name = c.aws_key_name;
  o.instance_profile = c.aws_instance_profile;
  o.spot = c.aws_spot;
  o.credentials.profile = c.aws_profile;
  o.credentials.credentials_file = c.credentials_file;
  return o;
}

}  // namespace navarch
