#include "navarch/provider/gcp/gcp_provider.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace navarch {
namespace {

using json = nlohmann::json;

CloudHttpOptions WaitOptions(CloudHttpOptions o) {
  // zoneOperations.wait answers within about two minutes.
  o.attempt_timeout = absl::Seconds(150);
  return o;
}

absl::StatusOr<json> ParseJson(const HttpResponse& r, const std::string& what) {
  json j = json::parse(r.body, nullptr, false);
  if (!j.is_object()) {
    return absl::UnavailableError(absl::StrCat(
        what, ": the answer is not a JSON object: ", BodySnippet(r.body)));
  }
  return j;
}

}  // namespace

GcpProvider::GcpProvider(Clock& clock, GcpProviderOptions options)
    : clock_(clock),
      options_(std::move(options)),
      http_([this] {
        CloudHttpOptions o = options_.http;
        o.provider = options_.name;
        if (o.clock == nullptr) o.clock = &clock_;
        return o;
      }()),
      wait_http_(WaitOptions([this] {
        CloudHttpOptions o = options_.http;
        o.provider = options_.name;
        if (o.clock == nullptr) o.clock = &clock_;
        return o;
      }())),
      tokens_(http_, clock_,
              GcpTokenSourceOptions{options_.key, options_.metadata_host}) {}

std::string GcpProvider::ZoneUrl(const std::string& zone) const {
  return absl::StrCat(options_.endpoint, "/projects/", options_.project,
                      "/zones/", zone);
}

absl::StatusOr<HttpResponse> GcpProvider::Call(absl::string_view operation,
                                               HttpRequest request,
                                               const std::string& zone,
                                               int allow) {
  const bool waiting = operation == "operation_wait";
  CloudHttp& http = waiting ? wait_http_ : http_;
  auto sign = [this, &http](HttpRequest& r) -> absl::Status {
    absl::StatusOr<std::string> token = tokens_.Token();
    if (!token.ok()) return token.status();
    NoteToken(http, *token);
    r.headers["Authorization"] = absl::StrCat("Bearer ", *token);
    return absl::OkStatus();
  };
  if (!request.body.empty()) request.content_type = "application/json";
  absl::StatusOr<HttpResponse> r =
      http.Call(operation, std::move(request), sign);
  if (!r.ok()) return r.status();
  if ((r->status >= 200 && r->status < 300) || r->status == allow) return r;
  return GcpHttpError(r->status, http.redactor()(r->body), options_.name, zone);
}

absl::Status GcpProvider::WaitOperation(const json& first,
                                        const std::string& zone) {
  json op = first;
  const absl::Time deadline = clock_.Now() + options_.operation_timeout;
  // wait may answer before DONE (it is best-effort): ask again.
  while (op.value("status", "") != "DONE") {
    if (clock_.Now() >= deadline) {
      return CloudError(
          absl::StatusCode::kDeadlineExceeded, options_.name,
          CloudErrorInfo{CloudErrorScope::kZone, "", "", zone},
          absl::StrCat("operation ", op.value("name", "?"), " not DONE after ",
                       absl::FormatDuration(options_.operation_timeout)));
    }
    HttpRequest req;
    req.method = "POST";
    req.url = absl::StrCat(ZoneUrl(zone), "/operations/", op.value("name", ""),
                           "/wait");
    absl::StatusOr<HttpResponse> r = Call("operation_wait", req, zone);
    if (!r.ok()) return r.status();
    absl::StatusOr<json> next = ParseJson(*r, "operation wait");
    if (!next.ok()) return next.status();
    op = std::move(*next);
    // GCE holds a wait up to two minutes; one that answers early and not
    // DONE is not asked again at once.
    if (op.value("status", "") != "DONE") Pause(absl::Seconds(1));
  }
  // The operation's error message is the cloud's text, which may echo what
  // either client sent (a token): both redactors go over it.
  absl::Status s = GcpOperationError(op, options_.name, zone);
  if (s.ok()) return s;
  absl::Status redacted(s.code(),
                        wait_http_.redactor()(http_.redactor()(s.message())));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    redacted.SetPayload(url, payload);
  });
  return redacted;
}

void GcpProvider::NoteToken(CloudHttp& http, const std::string& token) {
  // The token source told http_'s redactor; the wait client learns each
  // new token too.
  if (&http != &wait_http_) return;
  absl::MutexLock lock(&mu_);
  if (token == wait_token_) return;
  wait_token_ = token;
  wait_http_.redactor().AddRotating(token);
}

void GcpProvider::Pause(absl::Duration d) {
  if (options_.http.sleep) {
    options_.http.sleep(d);
  } else {
    absl::SleepFor(d);
  }
}

absl::StatusOr<ProviderInstance> GcpProvider::Get(const std::string& zone,
                                                  const std::string& name) {
  HttpRequest req;
  req.url = absl::StrCat(ZoneUrl(zone), "/instances/", name);
  absl::StatusOr<HttpResponse> r = Call("instances.get", req, zone);
  if (!r.ok()) return r.status();
  absl::StatusOr<json> inst = ParseJson(*r, "instances.get");
  if (!inst.ok()) return inst.status();
  return GcpParseInstance(*inst, options_.name);
}

absl::StatusOr<ProviderInstance> GcpProvider::Provision(
    const ProvisionRequest& request) {
  if (request.idempotency_token.empty() || request.instance_type.empty()) {
    return absl::InvalidArgumentError(
        "gcp: a provision needs an idempotency token and an instance type");
  }
  if (options_.spec.image.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.name, ": no image configured (key `image`)"));
  }
  const std::string zone = request.zone.empty() ? options_.zone : request.zone;
  const std::string name =
      GcpInstanceName(request.name, request.idempotency_token);
  GcpInstanceSpec spec = options_.spec;
  spec.project = options_.project;
  spec.zone = zone;
  spec.base_url = options_.endpoint;
  HttpRequest req;
  req.method = "POST";
  // Another zone is another request (the selector moves a full zone's
  // request on with the same token): the requestId is the token's in this
  // zone, so a retry here is still the same request.
  req.url = absl::StrCat(
      ZoneUrl(zone), "/instances?requestId=",
      GcpRequestId(absl::StrCat(request.idempotency_token, "@", zone)));
  req.body = GcpInsertBody(request, spec, name).dump();
  // 409: the instance of this token exists already (an earlier call whose
  // answer was lost): it is ours, adopt it.
  absl::StatusOr<HttpResponse> r = Call("instances.insert", req, zone, 409);
  if (!r.ok()) return r.status();
  if (r->status != 409) {
    absl::StatusOr<json> op = ParseJson(*r, "instances.insert");
    if (!op.ok()) return op.status();
    if (absl::Status s = WaitOperation(*op, zone); !s.ok()) return s;
  }
  absl::StatusOr<ProviderInstance> got = Get(zone, name);
  if (!got.ok()) return got.status();
  auto token = got->labels.find(std::string(kLabelToken));
  if (r->status == 409 && token != got->labels.end() &&
      token->second != request.idempotency_token) {
    return absl::FailedPreconditionError(absl::StrCat(
        options_.name, ": instance ", name, " exists with another token"));
  }
  absl::MutexLock lock(&mu_);
  zones_[name] = zone;
  return got;
}

absl::StatusOr<std::string> GcpProvider::ZoneOf(const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    auto it = zones_.find(name);
    if (it != zones_.end()) return it->second;
  }
  absl::StatusOr<std::vector<json>> found =
      Aggregated("instances", "instances",
                 absl::StrCat("(name = \"", name, "\") (labels.",
                              GcpLabelKey(kLabelManaged), " = \"true\")"));
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(
        absl::StrCat(options_.name, ": no managed instance ", name));
  }
  return GcpParseInstance(found->front(), options_.name).zone;
}

absl::Status GcpProvider::Terminate(const std::string& instance_id) {
  absl::StatusOr<std::string> zone = ZoneOf(instance_id);
  if (!zone.ok()) return zone.status();
  HttpRequest req;
  req.method = "DELETE";
  req.url = absl::StrCat(ZoneUrl(*zone), "/instances/", instance_id);
  absl::StatusOr<HttpResponse> r = Call("instances.delete", req, *zone, 404);
  if (!r.ok()) return r.status();
  if (r->status != 404) {
    absl::StatusOr<json> op = ParseJson(*r, "instances.delete");
    if (!op.ok()) return op.status();
    if (absl::Status s = WaitOperation(*op, *zone); !s.ok()) return s;
  }
  absl::MutexLock lock(&mu_);
  zones_.erase(instance_id);
  return absl::OkStatus();  // 404: already gone.
}

absl::StatusOr<std::vector<json>> GcpProvider::Aggregated(
    const std::string& collection, const std::string& field,
    const std::string& filter) {
  std::vector<json> out;
  std::string page;
  do {
    std::string url =
        absl::StrCat(options_.endpoint, "/projects/", options_.project,
                     "/aggregated/", collection, "?maxResults=500");
    if (!filter.empty()) url = AddQueryParam(url, "filter", filter);
    if (!page.empty()) url = AddQueryParam(url, "pageToken", page);
    HttpRequest req;
    req.url = url;
    absl::StatusOr<HttpResponse> r =
        Call(absl::StrCat("aggregated.", collection), req, "");
    if (!r.ok()) return r.status();
    absl::StatusOr<json> list = ParseJson(*r, "aggregated list");
    if (!list.ok()) return list.status();
    const json items = list->value("items", json::object());
    for (auto it = items.begin(); it != items.end(); ++it) {
      for (const json& x : it.value().value(field, json::array())) {
        out.push_back(x);
      }
    }
    page = list->value("nextPageToken", "");
  } while (!page.empty());
  return out;
}

absl::StatusOr<std::vector<ProviderInstance>> GcpProvider::List() {
  absl::StatusOr<std::vector<json>> found =
      Aggregated("instances", "instances",
                 absl::StrCat("(labels.", GcpLabelKey(kLabelManaged),
                              " = \"true\") (status != \"TERMINATED\")"));
  if (!found.ok()) return found.status();
  std::vector<ProviderInstance> out;
  absl::MutexLock lock(&mu_);
  for (const json& inst : *found) {
    out.push_back(GcpParseInstance(inst, options_.name));
    zones_[out.back().id] = out.back().zone;
  }
  return out;
}

absl::StatusOr<std::vector<InstanceTypeInfo>> GcpProvider::ListInstanceTypes() {
  absl::StatusOr<std::vector<json>> found =
      Aggregated("machineTypes", "machineTypes", "");
  if (!found.ok()) return found.status();
  std::map<std::string, InstanceTypeInfo> types;
  for (const json& m : *found) {
    const json accel = m.value("accelerators", json::array());
    const std::string name = m.value("name", "");
    // GPU machine types only: built-in accelerators, or N1 (which takes
    // guestAccelerators).
    if (accel.empty() && !absl::StartsWith(name, "n1-")) continue;
    InstanceTypeInfo& t = types[name];
    t.name = name;
    t.vcpus = m.value("guestCpus", 0);
    t.memory_gb = m.value("memoryMb", 0) / 1024;
    if (!accel.empty()) {
      t.gpu_count = accel[0].value("guestAcceleratorCount", 0);
      t.gpu_type = accel[0].value("guestAcceleratorType", "");
    }
    const std::string region = GcpRegionOf(m.value("zone", ""));
    if (std::find(t.regions.begin(), t.regions.end(), region) ==
        t.regions.end()) {
      t.regions.push_back(region);
    }
  }
  std::vector<InstanceTypeInfo> out;
  for (auto& [name, t] : types) out.push_back(std::move(t));
  return out;
}

}  // namespace navarch
