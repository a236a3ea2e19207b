#include "navarch/provider/gcp/gcp_wire.h"

#include <openssl/sha.h>

#include <cctype>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {
namespace {

using json = nlohmann::json;

std::string Hex(const unsigned char* data, size_t n) {
  std::string out;
  char buf[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", data[i]);
    out += buf;
  }
  return out;
}

// Lower case, anything outside [a-z0-9_-] as '_' (or '-' for names).
std::string Fold(absl::string_view s, char other, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() == max) break;
    const char l = absl::ascii_tolower(static_cast<unsigned char>(c));
    const bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ||
                    l == '-' || (other == '_' && l == '_');
    out += ok ? l : other;
  }
  return out;
}

// A full URL from a partial one ("projects/P/global/images/I" or
// "zones/Z/machineTypes/T").
std::string Full(const std::string& base, const std::string& project,
                 const std::string& ref) {
  if (absl::StartsWith(ref, "http://") || absl::StartsWith(ref, "https://")) {
    return ref;
  }
  if (absl::StartsWith(ref, "projects/")) return absl::StrCat(base, "/", ref);
  return absl::StrCat(base, "/projects/", project, "/", ref);
}

absl::StatusCode CodeOfHttp(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

// The class of a GCE error code (operation code or HTTP reason), when the
// code decides it; kOk when it does not.
absl::StatusCode CodeOfReason(absl::string_view code, CloudErrorInfo* info,
                              absl::string_view message) {
  if (absl::StartsWith(code, "ZONE_RESOURCE_POOL_EXHAUSTED") ||
      code == "UNSUPPORTED_OPERATION") {
    info->scope = CloudErrorScope::kZone;
    return absl::StatusCode::kResourceExhausted;
  }
  if (code == "QUOTA_EXCEEDED" || code == "quotaExceeded") {
    info->quota = true;
    info->scope = absl::StrContains(message, "GPUS_ALL_REGIONS")
                      ? CloudErrorScope::kProvider
                      : CloudErrorScope::kRegion;
    return absl::StatusCode::kResourceExhausted;
  }
  if (code == "rateLimitExceeded" || code == "userRateLimitExceeded" ||
      code == "RESOURCE_OPERATION_RATE_EXCEEDED") {
    return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kOk;
}

}  // namespace

std::string GcpRequestId(absl::string_view token) {
  // RFC 4122 name-based UUID (SHA-1) in a namespace of our own.
  static constexpr char kNamespace[] = "navarch.gce.request-id/";
  std::string input = absl::StrCat(kNamespace, token);
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), d);
  d[6] = (d[6] & 0x0f) | 0x50;  // version 5
  d[8] = (d[8] & 0x3f) | 0x80;  // RFC 4122 variant
  std::string h = Hex(d, 16);
  return absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-", h.substr(12, 4),
                      "-", h.substr(16, 4), "-", h.substr(20, 12));
}

std::string GcpLabelKey(absl::string_view key) {
  std::string k = Fold(key, '_', 63);
  if (k.empty() || !(k[0] >= 'a' && k[0] <= 'z')) k = ("k" + k).substr(0, 63);
  return k;
}

std::string GcpLabelValue(absl::string_view value) {
  return Fold(value, '_', 63);
}

std::string GcpInstanceName(absl::string_view name, absl::string_view token) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d);
  std::string prefix = Fold(name, '-', 40);
  while (!prefix.empty() && prefix.back() == '-') prefix.pop_back();
  if (prefix.empty() || !(prefix[0] >= 'a' && prefix[0] <= 'z')) {
    prefix = ("navarch-" + prefix).substr(0, 40);
  }
  return absl::StrCat(prefix, "-", Hex(d, 5));
}

std::pair<int, std::string> GcpBuiltInGpus(absl::string_view type) {
  // a3-highgpu-8g, a2-ultragpu-4g, a2-megagpu-16g: the count ends the name.
  auto count = [&type]() {
    absl::string_view last = type.substr(type.rfind('-') + 1);
    int n = 0;
    if (!absl::ConsumeSuffix(&last, "g") || !absl::SimpleAtoi(last, &n)) {
      return 0;
    }
    return n;
  };
  if (absl::StartsWith(type, "a3-ultragpu"))
    return {count(), "nvidia-h200-141gb"};
  if (absl::StartsWith(type, "a3-")) return {count(), "nvidia-h100-80gb"};
  if (absl::StartsWith(type, "a2-ultragpu"))
    return {count(), "nvidia-a100-80gb"};
  if (absl::StartsWith(type, "a2-")) return {count(), "nvidia-tesla-a100"};
  if (absl::StartsWith(type, "g2-standard-")) {
    static const std::map<std::string, int> kG2 = {
        {"4", 1},  {"8", 1},  {"12", 1}, {"16", 1},
        {"32", 1}, {"24", 2}, {"48", 4}, {"96", 8}};
    auto it = kG2.find(std::string(type.substr(12)));
    return {it == kG2.end() ? 0 : it->second, "nvidia-l4"};
  }
  return {0, ""};
}

json GcpInsertBody(const ProvisionRequest& r, const GcpInstanceSpec& s,
                   const std::string& name) {
  const std::string zone_path = absl::StrCat("zones/", s.zone);
  json labels = json::object();
  for (const auto& [k, v] : r.labels) labels[GcpLabelKey(k)] = GcpLabelValue(v);
  json items = json::array(
      {{{"key", kGcpLabelsMetadataKey}, {"value", json(r.labels).dump()}}});
  if (!r.user_data.empty()) {
    items.push_back({{"key", "startup-script"}, {"value", r.user_data}});
  }
  json nic = {{"network", Full(s.base_url, s.project, s.network)},
              {"accessConfigs",
               {{{"type", "ONE_TO_ONE_NAT"}, {"name", "External NAT"}}}}};
  if (!s.subnetwork.empty()) {
    nic["subnetwork"] = Full(s.base_url, s.project, s.subnetwork);
  }
  json body = {
      {"name", name},
      {"machineType",
       Full(s.base_url, s.project,
            absl::StrCat(zone_path, "/machineTypes/", r.instance_type))},
      {"disks",
       {{{"boot", true},
         {"autoDelete", true},
         {"initializeParams",
          {{"sourceImage", Full(s.base_url, s.project, s.image)},
           {"diskSizeGb", std::to_string(s.boot_disk_gb)}}}}}},
      {"networkInterfaces", {nic}},
      {"labels", labels},
      {"metadata", {{"items", items}}},
      // GPUs cannot live-migrate.
      {"scheduling",
       {{"onHostMaintenance", "TERMINATE"}, {"automaticRestart", !s.spot}}}};
  if (s.spot) {
    body["scheduling"]["provisioningModel"] = "SPOT";
    body["scheduling"]["instanceTerminationAction"] = "DELETE";
  }
  if (s.accelerator_count > 0 && absl::StartsWith(r.instance_type, "n1-")) {
    body["guestAccelerators"] = {
        {{"acceleratorCount", s.accelerator_count},
         {"acceleratorType", Full(s.base_url, s.project,
                                  absl::StrCat(zone_path, "/acceleratorTypes/",
                                               s.accelerator_type))}}};
  }
  if (!s.service_account.empty()) {
    body["serviceAccounts"] = {
        {{"email", s.service_account},
         {"scopes", {"https://www.googleapis.com/auth/cloud-platform"}}}};
  }
  return body;
}

std::string GcpRegionOf(absl::string_view zone) {
  size_t dash = zone.rfind('-');
  return std::string(dash == absl::string_view::npos ? zone
                                                     : zone.substr(0, dash));
}

namespace {

std::string LastSegment(const std::string& url) {
  return url.substr(url.rfind('/') + 1);
}

ProviderInstanceState StateOf(const std::string& status) {
  if (status == "RUNNING") return ProviderInstanceState::kRunning;
  if (status == "PROVISIONING" || status == "STAGING") {
    return ProviderInstanceState::kProvisioning;
  }
  if (status == "TERMINATED") return ProviderInstanceState::kTerminated;
  // STOPPING, SUSPENDING, SUSPENDED, REPAIRING: not serving.
  return ProviderInstanceState::kTerminating;
}

// Our labels exactly as given, from the metadata item; else GCE's labels.
std::map<std::string, std::string> LabelsOf(const json& inst) {
  std::map<std::string, std::string> out;
  for (const json& item :
       inst.value("metadata", json::object()).value("items", json::array())) {
    if (item.value("key", "") != kGcpLabelsMetadataKey) continue;
    json j = json::parse(item.value("value", ""), nullptr, false);
    if (!j.is_object()) break;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_string()) out[it.key()] = it.value();
    }
    return out;
  }
  const json labels = inst.value("labels", json::object());
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value();
  }
  return out;
}

}  // namespace

ProviderInstance GcpParseInstance(const json& inst,
                                  const std::string& provider) {
  ProviderInstance p;
  p.id = inst.value("name", "");
  p.provider = provider;
  p.zone = LastSegment(inst.value("zone", ""));
  p.region = GcpRegionOf(p.zone);
  p.instance_type = LastSegment(inst.value("machineType", ""));
  p.state = StateOf(inst.value("status", ""));
  const json nics = inst.value("networkInterfaces", json::array());
  if (!nics.empty()) {
    const json access = nics[0].value("accessConfigs", json::array());
    p.ip_address = !access.empty() && access[0].contains("natIP")
                       ? access[0].value("natIP", "")
                       : nics[0].value("networkIP", "");
  }
  std::tie(p.gpu_count, p.gpu_type) = GcpBuiltInGpus(p.instance_type);
  for (const json& g : inst.value("guestAccelerators", json::array())) {
    p.gpu_count += g.value("acceleratorCount", 0);
    p.gpu_type = LastSegment(g.value("acceleratorType", ""));
  }
  p.labels = LabelsOf(inst);
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, inst.value("creationTimestamp", ""),
                      &t, &err)) {
    p.created_at = t;
  }
  return p;
}

absl::Status GcpOperationError(const json& op, const std::string& provider,
                               const std::string& zone) {
  const json errors =
      op.value("error", json::object()).value("errors", json::array());
  if (errors.empty()) return absl::OkStatus();
  CloudErrorInfo info;
  info.zone = zone;
  info.region = GcpRegionOf(zone);
  std::string message;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (const json& e : errors) {
    const std::string c = e.value("code", "");
    const std::string m = e.value("message", "");
    // A quota's metric may come in errorDetails rather than the message.
    const std::string details = e.value("errorDetails", json::array()).dump();
    code = CodeOfReason(c, &info, m + details);
    info.cloud_code = c;
    message = m;
    if (code != absl::StatusCode::kOk) break;
  }
  if (code == absl::StatusCode::kOk) {
    code = CodeOfHttp(op.value("httpErrorStatusCode", 500));
  }
  return CloudError(code, provider, info, message);
}

absl::Status GcpHttpError(int status, const std::string& body,
                          const std::string& provider,
                          const std::string& zone) {
  json j = json::parse(body, nullptr, false);
  CloudErrorInfo info;
  info.zone = zone;
  info.region = zone.empty() ? "" : GcpRegionOf(zone);
  std::string message = BodySnippet(body);
  absl::StatusCode code = CodeOfHttp(status);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& e = j["error"];
    message = e.value("message", message);
    for (const json& item : e.value("errors", json::array())) {
      info.cloud_code = item.value("reason", "");
      absl::StatusCode by_reason =
          CodeOfReason(info.cloud_code, &info, message);
      if (by_reason != absl::StatusCode::kOk) code = by_reason;
      break;
    }
  }
  return CloudError(code, provider, info,
                    absl::StrCat("HTTP ", status, ": ", message));
}

}  // namespace navarch
