#include "navarch/provider/gcp/testing/fake_gce.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <regex>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace navarch::testing {
namespace {

using json = nlohmann::json;

constexpr char kBase[] = "/compute/v1/projects/([^/]+)";

// Google's JSON error: {"error":{"code","message","errors":[...]}}.
void GoogleError(httplib::Response& res, int code, const std::string& reason,
                 const std::string& message) {
  json e = {{"error",
             {{"code", code},
              {"message", message},
              {"errors", json::array({{{"message", message},
                                       {"domain", "global"},
                                       {"reason", reason}}})}}}};
  res.status = code;
  res.set_content(e.dump(), "application/json");
}

void Json(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(body.dump(), "application/json");
}

// The machine types the fake sells: GPUs as the API's
// machineType.accelerators lists them.
struct MachineType {
  const char* name;
  int cpus;
  int memory_mb;
  const char* gpu;  // Empty: none built in.
  int gpus;
};
constexpr MachineType kMachineTypes[] = {
    {"n1-standard-1", 1, 3840, "", 0},
    {"n1-standard-8", 8, 30720, "", 0},
    {"a2-highgpu-1g", 12, 87040, "nvidia-tesla-a100", 1},
    {"a2-ultragpu-8g", 96, 1392640, "nvidia-a100-80gb", 8},
    {"a3-highgpu-8g", 208, 1907712, "nvidia-h100-80gb", 8},
    {"g2-standard-4", 4, 16384, "nvidia-l4", 1},
};

const MachineType* FindMachineType(const std::string& name) {
  for (const MachineType& m : kMachineTypes) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

// The last segment after `/<collection>/` in a full or partial URL, checked
// to name `zone` when the URL names one.
std::string ResourceName(const std::string& url, const std::string& collection,
                         const std::string& zone) {
  const std::string marker = "/" + collection + "/";
  std::string path = "/" + url;
  size_t at = path.rfind(marker);
  if (at == std::string::npos) return "";
  if (!zone.empty() && absl::StrContains(path, "/zones/") &&
      !absl::StrContains(path, "/zones/" + zone + "/")) {
    return "";
  }
  std::string name = path.substr(at + marker.size());
  return absl::StrContains(name, "/") ? "" : name;
}

bool ValidLabels(const json& labels) {
  static const std::regex kKey("[a-z][a-z0-9_-]{0,62}");
  static const std::regex kValue("[a-z0-9_-]{0,63}");
  if (!labels.is_object() || labels.size() > 64) return false;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (!it.value().is_string() || !std::regex_match(it.key(), kKey) ||
        !std::regex_match(it.value().get<std::string>(), kValue)) {
      return false;
    }
  }
  return true;
}

bool ValidMetadata(const json& metadata) {
  static const std::regex kKey("[a-zA-Z0-9_-]{1,128}");
  if (!metadata.is_object()) return false;
  if (!metadata.contains("items")) return true;
  size_t total = 0;
  for (const json& item : metadata["items"]) {
    if (!item.contains("key") || !item["key"].is_string() ||
        !std::regex_match(item["key"].get<std::string>(), kKey) ||
        !item.value("value", json("")).is_string()) {
      return false;
    }
    total += item.value("value", std::string()).size();
  }
  return total <= 512 * 1024;
}

// What is wrong with an insert body ("" when nothing): the fields the
// reference marks required, and the GPU rules of the GPU pages.
std::string CheckInstance(const json& b, const std::string& zone,
                          std::string* machine_type) {
  static const std::regex kName("[a-z]([-a-z0-9]{0,61}[a-z0-9])?");
  if (!b.is_object()) return "resource";
  if (!b.contains("name") || !b["name"].is_string() ||
      !std::regex_match(b["name"].get<std::string>(), kName)) {
    return "resource.name";
  }
  *machine_type =
      ResourceName(b.value("machineType", ""), "machineTypes", zone);
  const MachineType* mt = FindMachineType(*machine_type);
  if (mt == nullptr) return "resource.machineType";
  bool boot = false;
  for (const json& d : b.value("disks", json::array())) {
    boot =
        boot ||
        (d.value("boot", false) &&
         (d.contains("source") ||
          d.value("initializeParams", json::object()).contains("sourceImage")));
  }
  if (!boot) return "resource.disks";
  if (b.value("networkInterfaces", json::array()).empty()) {
    return "resource.networkInterfaces";
  }
  if (b.contains("labels") && !ValidLabels(b["labels"])) {
    return "resource.labels";
  }
  if (b.contains("metadata") && !ValidMetadata(b["metadata"])) {
    return "resource.metadata";
  }
  const json guest = b.value("guestAccelerators", json::array());
  for (const json& g : guest) {
    if (!absl::StartsWith(mt->name, "n1-") ||
        g.value("acceleratorCount", 0) < 1 ||
        ResourceName(g.value("acceleratorType", ""), "acceleratorTypes", zone)
            .empty()) {
      return "resource.guestAccelerators";
    }
  }
  const json sched = b.value("scheduling", json::object());
  if ((mt->gpus > 0 || !guest.empty()) &&
      sched.value("onHostMaintenance", "MIGRATE") != "TERMINATE") {
    return "resource.scheduling.onHostMaintenance";
  }
  return "";
}

// One `field op value` term of a list filter (the documented subset:
// =, !=, and `:` for "has"/`:*` for "defined").
struct Term {
  std::string field, op, value;
};

bool ParseFilter(const std::string& filter, std::vector<Term>* terms) {
  static const std::regex kTerm(
      R"(\s*\(?\s*([a-zA-Z][a-zA-Z0-9_.\-]*)\s*(!=|=|:)\s*("[^"]*"|[^\s)]+)\s*\)?\s*(AND\s+)?)");
  auto begin = filter.cbegin();
  std::smatch m;
  while (begin != filter.cend()) {
    if (!std::regex_search(begin, filter.cend(), m, kTerm,
                           std::regex_constants::match_continuous)) {
      return false;
    }
    std::string value = m[3];
    if (value.size() >= 2 && value.front() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    terms->push_back(Term{m[1], m[2], value});
    begin = m[0].second;
  }
  return true;
}

// The value of `field` in an instance; nullopt when the field is unset.
std::optional<std::string> FieldOf(const json& inst, const std::string& field) {
  if (absl::StartsWith(field, "labels.")) {
    const json labels = inst.value("labels", json::object());
    auto it = labels.find(field.substr(7));
    if (it == labels.end()) return std::nullopt;
    return it->get<std::string>();
  }
  if (!inst.contains(field) || !inst[field].is_string()) return std::nullopt;
  return inst[field].get<std::string>();
}

bool Matches(const json& inst, const std::vector<Term>& terms) {
  for (const Term& t : terms) {
    std::optional<std::string> v = FieldOf(inst, t.field);
    if (t.op == ":") {
      if (!v || (t.value != "*" && *v != t.value)) return false;
    } else if ((t.op == "=") != (v.has_value() && *v == t.value)) {
      return false;
    }
  }
  return true;
}

bool KnownField(const std::string& field) {
  return absl::StartsWith(field, "labels.") || field == "name" ||
         field == "status" || field == "zone" || field == "machineType";
}

}  // namespace

std::string GenerateRsaKeyPem() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, n);
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

struct FakeGce::Op {
  json resource;
  int waits = 0;
  json instance;            // insert: the instance to make RUNNING
  std::string delete_name;  // delete: the instance to remove
};

FakeGce::FakeGce(FakeGceOptions options) : options_(std::move(options)) {
  Route();
  server_.Start();
}

FakeGce::~FakeGce() = default;

std::string FakeGce::endpoint() const { return server_.Url("/compute/v1"); }
std::string FakeGce::token_uri() const { return server_.Url("/token"); }
std::string FakeGce::metadata_host() const {
  return absl::StrCat("127.0.0.1:", server_.port());
}

std::string FakeGce::ServiceAccountKeyJson() const {
  return nlohmann::json{{"type", "service_account"},
                        {"project_id", options_.project},
                        {"private_key_id", "k1"},
                        {"private_key", options_.sa_key_pem},
                        {"client_email", options_.sa_email},
                        {"client_id", "1"},
                        {"token_uri", token_uri()}}
      .dump();
}

std::string FakeGce::ZoneUrl(const std::string& zone) const {
  return absl::StrCat(endpoint(), "/projects/", options_.project, "/zones/",
                      zone);
}

void FakeGce::AcceptToken(const std::string& token) {
  absl::MutexLock lock(&mu_);
  tokens_.insert(token);
}

void FakeGce::FailNextInsert(GceFailure failure) {
  absl::MutexLock lock(&mu_);
  failures_.push_back(std::move(failure));
}

int FakeGce::insert_calls() {
  absl::MutexLock lock(&mu_);
  return insert_calls_;
}
int FakeGce::token_calls() {
  absl::MutexLock lock(&mu_);
  return token_calls_;
}
int FakeGce::metadata_calls() {
  absl::MutexLock lock(&mu_);
  return metadata_calls_;
}
std::vector<std::string> FakeGce::issued_tokens() {
  absl::MutexLock lock(&mu_);
  return issued_;
}
std::vector<json> FakeGce::insert_bodies() {
  absl::MutexLock lock(&mu_);
  return insert_bodies_;
}
std::map<std::string, json> FakeGce::instances() {
  absl::MutexLock lock(&mu_);
  return instances_;
}

void FakeGce::AddInstance(const std::string& zone, const std::string& name,
                          const std::map<std::string, std::string>& labels,
                          const std::string& status) {
  absl::MutexLock lock(&mu_);
  json instance = json::object();
  instance["kind"] = "compute#instance";
  instance["name"] = name;
  instance["status"] = status;
  instance["labels"] = labels;
  instance["machineType"] = ZoneUrl(zone) + "/machineTypes/a3-highgpu-8g";
  instance["creationTimestamp"] = "2026-01-01T00:00:00.000-08:00";
  instance["zone"] = ZoneUrl(zone);
  instance["id"] = std::to_string(next_id_++);
  instance["selfLink"] = absl::StrCat(ZoneUrl(zone), "/instances/", name);
  instances_[name] = std::move(instance);
}

bool FakeGce::Authorized(const httplib::Request& req, httplib::Response& res) {
  std::string auth = req.get_header_value("Authorization");
  absl::string_view token = auth;
  bool ok = absl::ConsumePrefix(&token, "Bearer ");
  if (ok) {
    absl::MutexLock lock(&mu_);
    ok = tokens_.count(std::string(token)) > 0;
  }
  if (!ok) {
    GoogleError(res, 401, "authError",
                "Request had invalid authentication credentials. Expected "
                "OAuth 2 access token, login cookie or other valid "
                "authentication credential.");
  }
  return ok;
}

void FakeGce::Route() {
  RouteAuth();
  RouteInstances();
  RouteLists();
}

json FakeGce::StartOp(const std::string& zone, const std::string& type,
                      const std::string& target, const std::string& name,
                      json error) {
  auto op = std::make_unique<Op>();
  const std::string op_name = absl::StrCat("operation-", next_id_++);
  op->resource = {
      {"kind", "compute#operation"},
      {"id", std::to_string(next_id_++)},
      {"name", op_name},
      {"zone", ZoneUrl(zone)},
      {"operationType", type},
      {"targetLink", absl::StrCat(ZoneUrl(zone), "/instances/", name)},
      {"status", "RUNNING"},
      {"progress", 0},
      {"insertTime", "2026-01-01T00:00:00.000-08:00"},
      {"selfLink", absl::StrCat(ZoneUrl(zone), "/operations/", op_name)}};
  (void)target;
  if (!error.is_null()) op->resource["error"] = std::move(error);
  Op& ref = *op;
  ops_[op_name] = std::move(op);
  if (options_.waits_before_done == 0) FinishOp(ref);
  return ref.resource;
}

void FakeGce::FinishOp(Op& op) {
  op.resource["status"] = "DONE";
  op.resource["progress"] = 100;
  op.resource["endTime"] = "2026-01-01T00:00:05.000-08:00";
  if (op.resource.contains("error")) return;
  if (!op.delete_name.empty()) instances_.erase(op.delete_name);
  if (op.instance.is_object()) {
    auto it = instances_.find(op.instance["name"].get<std::string>());
    if (it != instances_.end()) it->second["status"] = "RUNNING";
  }
}

// A documented failure scripted for this insert, as an operation error
// (capacity, quota) or the HTTP error of the call.
static json OpError(const GceFailure& f) {
  json e = {
      {"errors", json::array({{{"code", f.op_code}, {"message", f.message}}})}};
  return e;
}

void FakeGce::Insert(const httplib::Request& req, httplib::Response& res,
                     const std::string& zone) {
  static const std::regex kUuid(
      "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}");
  json body = json::parse(req.body, nullptr, false);
  std::string machine_type;
  const std::string bad = CheckInstance(body, zone, &machine_type);
  if (!bad.empty()) {
    return GoogleError(res, 400, "invalid",
                       absl::StrCat("Invalid value for field '", bad, "'."));
  }
  const std::string request_id = req.get_param_value("requestId");
  if (!request_id.empty() && !std::regex_match(request_id, kUuid)) {
    return GoogleError(res, 400, "invalid",
                       "Invalid value for field 'requestId'.");
  }
  absl::MutexLock lock(&mu_);
  ++insert_calls_;
  insert_bodies_.push_back(body);
  // The same requestId is the same request: its operation, nothing new.
  auto seen = requests_.find(request_id);
  if (!request_id.empty() && seen != requests_.end()) {
    return Json(res, ops_[seen->second.first]->resource);
  }
  if (!failures_.empty() && failures_.front().http_status != 0) {
    GceFailure f = failures_.front();
    failures_.erase(failures_.begin());
    return GoogleError(res, f.http_status, f.reason, f.message);
  }
  const std::string name = body["name"];
  if (instances_.count(name) > 0) {
    return GoogleError(
        res, 409, "alreadyExists",
        absl::StrCat("The resource 'projects/", options_.project, "/zones/",
                     zone, "/instances/", name, "' already exists"));
  }
  json error;
  if (!failures_.empty()) {
    error = OpError(failures_.front());
    failures_.erase(failures_.begin());
  }
  json op = StartOp(zone, "insert", "", name, error);
  if (!request_id.empty()) requests_[request_id] = {op["name"], req.body};
  if (error.is_null()) {
    body["id"] = std::to_string(next_id_++);
    body["zone"] = ZoneUrl(zone);
    body["status"] = op["status"] == "DONE" ? "RUNNING" : "PROVISIONING";
    body["machineType"] =
        absl::StrCat(ZoneUrl(zone), "/machineTypes/", machine_type);
    body["creationTimestamp"] = "2026-01-01T00:00:00.000-08:00";
    body["kind"] = "compute#instance";
    body["selfLink"] = absl::StrCat(ZoneUrl(zone), "/instances/", name);
    body["networkInterfaces"][0]["networkIP"] =
        !options_.instance_ip.empty()
            ? options_.instance_ip
            : absl::StrCat("127.0.0.", next_id_ % 250 + 2);
    instances_[name] = body;
    ops_[op["name"]]->instance = body;
  }
  Json(res, op);
}

void FakeGce::Delete(httplib::Response& res, const std::string& zone,
                     const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(name);
  if (it == instances_.end() || it->second.value("zone", "") != ZoneUrl(zone)) {
    return GoogleError(
        res, 404, "notFound",
        absl::StrCat("The resource 'projects/", options_.project, "/zones/",
                     zone, "/instances/", name, "' was not found"));
  }
  it->second["status"] = "STOPPING";
  json op = StartOp(zone, "delete", "", name, nullptr);
  auto& stored = ops_[op["name"]];
  stored->delete_name = name;
  if (stored->resource["status"] == "DONE") instances_.erase(name);
  Json(res, stored->resource);
}

void FakeGce::Wait(httplib::Response& res, const std::string& zone,
                   const std::string& op_name, bool advance) {
  absl::MutexLock lock(&mu_);
  auto it = ops_.find(op_name);
  if (it == ops_.end() ||
      it->second->resource["zone"].get<std::string>() != ZoneUrl(zone)) {
    return GoogleError(
        res, 404, "notFound",
        absl::StrCat("The resource 'projects/", options_.project, "/zones/",
                     zone, "/operations/", op_name, "' was not found"));
  }
  Op& op = *it->second;
  if (advance && op.resource["status"] != "DONE" &&
      ++op.waits >= options_.waits_before_done) {
    FinishOp(op);
  }
  Json(res, op.resource);
}

// Every compute call: a known project and zone, and a valid bearer token.
bool FakeGce::Guard(const httplib::Request& req, httplib::Response& res,
                    bool zoned) {
  if (!Authorized(req, res)) return false;
  if (req.matches[1] != options_.project ||
      (zoned && options_.zones.count(req.matches[2]) == 0)) {
    GoogleError(res, 404, "notFound", "The resource was not found");
    return false;
  }
  return true;
}

void FakeGce::RouteInstances() {
  httplib::Server& s = server_.server();
  const std::string base = kBase;
  auto guard = [this](const httplib::Request& req, httplib::Response& res,
                      bool zoned) { return Guard(req, res, zoned); };
  s.Get(base,
        [this, guard](const httplib::Request& req, httplib::Response& res) {
          if (!guard(req, res, false)) return;
          Json(res, {{"kind", "compute#project"},
                     {"name", options_.project},
                     {"id", "1234567890"},
                     {"defaultServiceAccount", options_.sa_email}});
        });
  s.Get(base + "/zones/([^/]+)", [this, guard](const httplib::Request& req,
                                               httplib::Response& res) {
    if (!guard(req, res, true)) return;
    const std::string zone = req.matches[2];
    Json(res,
         {{"kind", "compute#zone"},
          {"name", zone},
          {"status", "UP"},
          {"region", absl::StrCat(endpoint(), "/projects/", options_.project,
                                  "/regions/", options_.zones.at(zone))},
          {"selfLink", ZoneUrl(zone)}});
  });
  s.Post(base + "/zones/([^/]+)/instances",
         [this, guard](const httplib::Request& req, httplib::Response& res) {
           if (guard(req, res, true)) Insert(req, res, req.matches[2]);
         });
  s.Get(base + "/zones/([^/]+)/instances/([^/]+)",
        [this, guard](const httplib::Request& req, httplib::Response& res) {
          if (!guard(req, res, true)) return;
          absl::MutexLock lock(&mu_);
          auto it = instances_.find(req.matches[3]);
          if (it == instances_.end() ||
              it->second["zone"] != ZoneUrl(req.matches[2])) {
            return GoogleError(res, 404, "notFound",
                               "The resource was not found");
          }
          Json(res, it->second);
        });
  s.Delete(base + "/zones/([^/]+)/instances/([^/]+)",
           [this, guard](const httplib::Request& req, httplib::Response& res) {
             if (guard(req, res, true)) {
               Delete(res, req.matches[2], req.matches[3]);
             }
           });
  s.Post(base + "/zones/([^/]+)/operations/([^/]+)/wait",
         [this, guard](const httplib::Request& req, httplib::Response& res) {
           if (guard(req, res, true)) {
             Wait(res, req.matches[2], req.matches[3], true);
           }
         });
  s.Get(base + "/zones/([^/]+)/operations/([^/]+)",
        [this, guard](const httplib::Request& req, httplib::Response& res) {
          if (guard(req, res, true)) {
            Wait(res, req.matches[2], req.matches[3], false);
          }
        });
}

void FakeGce::Aggregated(const httplib::Request& req, httplib::Response& res) {
  std::vector<Term> terms;
  if (!ParseFilter(req.get_param_value("filter"), &terms) ||
      std::any_of(terms.begin(), terms.end(),
                  [](const Term& t) { return !KnownField(t.field); })) {
    return GoogleError(res, 400, "invalid",
                       "Invalid value for field 'filter'.");
  }
  int page = options_.default_page_size;
  if (req.has_param("maxResults") &&
      (!absl::SimpleAtoi(req.get_param_value("maxResults"), &page) ||
       page < 1 || page > 500)) {
    return GoogleError(res, 400, "invalid",
                       "Invalid value for field 'maxResults'.");
  }
  page = std::min(page, options_.max_page_size);
  size_t start = 0;
  if (req.has_param("pageToken") &&
      !absl::SimpleAtoi(req.get_param_value("pageToken"), &start)) {
    return GoogleError(res, 400, "invalid",
                       "Invalid value for field 'pageToken'.");
  }
  std::vector<json> hits;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, inst] : instances_) {
      if (Matches(inst, terms)) hits.push_back(inst);
    }
  }
  json items = json::object();
  for (const auto& [zone, region] : options_.zones) {
    items["zones/" + zone] = {
        {"warning",
         {{"code", "NO_RESULTS_ON_PAGE"},
          {"message",
           "There are no results for scope 'zones/" + zone + "' on this page."},
          {"data", {{{"key", "scope"}, {"value", "zones/" + zone}}}}}}};
  }
  for (size_t i = start; i < hits.size() && i < start + page; ++i) {
    std::string zone = hits[i]["zone"];
    zone = "zones/" + zone.substr(zone.rfind('/') + 1);
    items[zone].erase("warning");
    items[zone]["instances"].push_back(hits[i]);
  }
  json out = {{"kind", "compute#instanceAggregatedList"},
              {"id", "projects/" + options_.project + "/aggregated/instances"},
              {"items", items}};
  if (start + page < hits.size()) {
    out["nextPageToken"] = std::to_string(start + page);
  }
  Json(res, out);
}

void FakeGce::MachineTypes(httplib::Response& res) {
  json items = json::object();
  for (const auto& [zone, region] : options_.zones) {
    json list = json::array();
    for (const MachineType& m : kMachineTypes) {
      json t = {{"kind", "compute#machineType"},
                {"name", m.name},
                {"guestCpus", m.cpus},
                {"memoryMb", m.memory_mb},
                {"zone", zone}};
      if (m.gpus > 0) {
        t["accelerators"] = {{{"guestAcceleratorType", m.gpu},
                              {"guestAcceleratorCount", m.gpus}}};
      }
      list.push_back(t);
    }
    items["zones/" + zone] = {{"machineTypes", list}};
  }
  Json(res, {{"kind", "compute#machineTypeAggregatedList"}, {"items", items}});
}

void FakeGce::RouteLists() {
  httplib::Server& s = server_.server();
  const std::string base = kBase;
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (std::getenv("FAKE_GCE_LOG") != nullptr) {
      fprintf(stderr, "fake_gce: %s %s -> %d\n", req.method.c_str(),
              req.target.c_str(), res.status);
    }
  });
  s.Get(base + "/aggregated/instances",
        [this](const httplib::Request& req, httplib::Response& res) {
          if (!Authorized(req, res)) return;
          if (req.matches[1] != options_.project) {
            return GoogleError(res, 404, "notFound", "unknown project");
          }
          Aggregated(req, res);
        });
  s.Get(base + "/aggregated/machineTypes",
        [this](const httplib::Request& req, httplib::Response& res) {
          if (!Authorized(req, res)) return;
          if (req.matches[1] != options_.project) {
            return GoogleError(res, 404, "notFound", "unknown project");
          }
          MachineTypes(res);
        });
}

}  // namespace navarch::testing
