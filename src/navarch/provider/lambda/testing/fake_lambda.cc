#include "navarch/provider/lambda/testing/fake_lambda.h"

#include <regex>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace navarch {

using json = nlohmann::json;

struct FakeLambda::Instance {
  std::string id;
  std::string name;
  std::string ip;
  std::string status = "booting";
  std::string region;
  std::string type;
  std::string ssh_key;
  json tags = json::array();
};

namespace {

constexpr char kJson[] = "application/json";

// The documented default messages and suggestions of each error code.
json ErrorBody(const std::string& code, std::string message) {
  static const auto* const kDefaults =
      new std::map<std::string, std::pair<std::string, std::string>>{
          {"global/invalid-api-key",
           {"API key was invalid, expired, or deleted.",
            "Check your API key or create a new one, then try again."}},
          {"global/account-inactive", {"Your account is inactive.", ""}},
          {"global/invalid-parameters", {"Invalid request data.", ""}},
          {"global/quota-exceeded",
           {"Quota exceeded.", "Contact Support to increase your quota."}},
          {"instance-operations/launch/insufficient-capacity",
           {"Not enough capacity to fulfill launch request.", ""}},
          {"global/object-does-not-exist",
           {"Specified instance does not exist.", ""}},
          {"global/internal-error",
           {"An internal server error occurred.",
            "Try again later. Contact Support if the problem persists."}},
      };
  json e = {{"code", code}};
  auto it = kDefaults->find(code);
  if (message.empty() && it != kDefaults->end()) message = it->second.first;
  e["message"] = message;
  if (it != kDefaults->end() && !it->second.second.empty()) {
    e["suggestion"] = it->second.second;
  }
  return json{{"error", e}};
}

void Answer(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), kJson);
}

void Fail(httplib::Response& res, int status, const std::string& code,
          const std::string& message = "") {
  Answer(res, status, ErrorBody(code, message));
}

// Whether `header` carries `key` as the documentation allows: "Bearer KEY",
// "Basic base64(KEY:)" or "Basic KEY".
bool Authorized(const std::string& header, const std::string& key) {
  if (header == absl::StrCat("Bearer ", key)) return true;
  if (!absl::StartsWith(header, "Basic ")) return false;
  std::string cred = header.substr(6);
  if (cred == key) return true;
  std::string decoded;
  return absl::Base64Unescape(cred, &decoded) && decoded == key + ":";
}

bool IsStringArray(const json& v) {
  if (!v.is_array()) return false;
  for (const json& x : v) {
    if (!x.is_string()) return false;
  }
  return true;
}

// A requested tag list's problem; empty when it is valid (RequestedTagEntry:
// key ^[a-z][a-z0-9-:]+$ up to 55, value up to 128).
std::string TagProblem(const json& tags) {
  static const std::regex kKey("^[a-z][a-z0-9-:]+$");
  if (!tags.is_array()) return "tags must be a list";
  for (const json& t : tags) {
    if (!t.is_object() || t.size() != 2 || !t.contains("key") ||
        !t.contains("value") || !t["key"].is_string() ||
        !t["value"].is_string()) {
      return "each tag is {key, value}";
    }
    const std::string key = t["key"];
    if (key.size() > 55 || !std::regex_match(key, kKey)) {
      return absl::StrCat("invalid tag key '", key, "'");
    }
    if (t["value"].get<std::string>().size() > 128) return "tag value too long";
  }
  return "";
}

}  // namespace

FakeLambda::FakeLambda(Clock& clock, std::string api_key)
    : clock_(clock),
      api_key_(std::move(api_key)),
      server_(std::make_unique<httplib::Server>()) {
  regions_ = {"us-east-1", "us-west-1", "europe-central-1"};
  Route();
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it.
  while (!server_->is_running()) absl::SleepFor(absl::Milliseconds(1));
}

FakeLambda::~FakeLambda() {
  server_->stop();
  thread_.join();
}

std::string FakeLambda::endpoint() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/api/v1");
}

void FakeLambda::Route() {
  server_->Get("/api/v1/instance-types",
               [this](const Req& q, Res& r) { Types(q, r); });
  server_->Post("/api/v1/instance-operations/launch",
                [this](const Req& q, Res& r) { Launch(q, r); });
  server_->Post("/api/v1/instance-operations/terminate",
                [this](const Req& q, Res& r) { Terminate(q, r); });
  server_->Get("/api/v1/instances",
               [this](const Req& q, Res& r) { List(q, r); });
  server_->Get(R"(/api/v1/instances/([^/]+))",
               [this](const Req& q, Res& r) { Get(q, r); });
  // Anything else: the API's not-found envelope.
  server_->set_error_handler([](const Req&, Res& r) {
    if (r.status == 404 && r.body.empty()) {
      Fail(r, 404, "global/object-does-not-exist", "Not found.");
    }
  });
}

void FakeLambda::AddType(Type type) {
  absl::MutexLock lock(&mu_);
  for (const std::string& r : type.regions_with_capacity) regions_.insert(r);
  types_[type.name] = std::move(type);
}

void FakeLambda::SetCapacity(const std::string& type,
                             std::vector<std::string> regions) {
  absl::MutexLock lock(&mu_);
  types_[type].regions_with_capacity = std::move(regions);
}

void FakeLambda::AddSshKey(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ssh_keys_.insert(name);
}

void FakeLambda::SetQuota(int max_instances) {
  absl::MutexLock lock(&mu_);
  quota_ = max_instances;
}

void FakeLambda::EnforceLaunchRate(bool on) {
  absl::MutexLock lock(&mu_);
  enforce_rate_ = on;
}

void FakeLambda::ForceNext(const std::string& operation, Forced answer) {
  absl::MutexLock lock(&mu_);
  forced_[operation].push_back(std::move(answer));
}

void FakeLambda::SetInstanceIp(std::string ip) {
  absl::MutexLock lock(&mu_);
  instance_ip_ = std::move(ip);
}

void FakeLambda::BootAll() {
  absl::MutexLock lock(&mu_);
  for (auto& i : instances_) {
    if (i->status == "booting") {
      i->status = "active";
      i->ip = !instance_ip_.empty()
                  ? instance_ip_
                  : absl::StrCat("127.0.0.", i->id.size() % 200 + 2);
    }
  }
}

void FakeLambda::SetStatus(const std::string& id, const std::string& status) {
  absl::MutexLock lock(&mu_);
  for (auto& i : instances_) {
    if (i->id == id) i->status = status;
  }
}

std::vector<FakeLambda::Seen> FakeLambda::seen() const {
  absl::MutexLock lock(&mu_);
  return seen_;
}

int FakeLambda::launches() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(launch_bodies_.size());
}

int FakeLambda::calls(const std::string& operation) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

std::vector<std::string> FakeLambda::launch_bodies() const {
  absl::MutexLock lock(&mu_);
  return launch_bodies_;
}

bool FakeLambda::Admit(const std::string& operation, const Req& req, Res& res) {
  absl::MutexLock lock(&mu_);
  seen_.push_back(
      {req.method, req.path, req.get_header_value("Authorization"), req.body});
  ++calls_[operation];
  if (!Authorized(req.get_header_value("Authorization"), api_key_)) {
    Fail(res, 401, "global/invalid-api-key");
    return false;
  }
  auto& queue = forced_[operation];
  if (queue.empty()) return true;
  Forced f = std::move(queue.front());
  queue.pop_front();
  if (!f.retry_after.empty()) res.set_header("Retry-After", f.retry_after);
  if (!f.body.empty() || f.code.empty()) {
    res.status = f.status;
    res.set_content(f.body, kJson);
  } else {
    Fail(res, f.status, f.code, f.message);
  }
  return false;
}

std::string FakeLambda::TypeJson(const Type& t) const {
  json specs = {{"vcpus", t.vcpus},
                {"memory_gib", t.memory_gib},
                {"storage_gib", t.storage_gib},
                {"gpus", t.gpus}};
  return json{{"name", t.name},
              {"description", t.description},
              {"gpu_description", t.gpu_description},
              {"price_cents_per_hour", t.price_cents_per_hour},
              {"specs", specs}}
      .dump();
}

std::string FakeLambda::InstanceJson(const Instance& i) const {
  json j = {{"id", i.id},
            {"name", i.name},
            {"status", i.status},
            {"ssh_key_names", json::array({i.ssh_key})},
            {"file_system_names", json::array()},
            {"region", {{"name", i.region}, {"description", i.region}}},
            {"hostname", absl::StrCat("host-", i.id)},
            {"tags", i.tags}};
  // No address while booting (the real API leaves it out until it has one).
  if (!i.ip.empty()) {
    j["ip"] = i.ip;
    j["private_ip"] = "127.0.2.100";
  }
  auto t = types_.find(i.type);
  if (t != types_.end()) j["instance_type"] = json::parse(TypeJson(t->second));
  return j.dump();
}

void FakeLambda::Types(const Req& req, Res& res) {
  if (!Admit("types", req, res)) return;
  absl::MutexLock lock(&mu_);
  json data = json::object();
  for (const auto& [name, t] : types_) {
    json regions = json::array();
    for (const std::string& r : t.regions_with_capacity) {
      regions.push_back({{"name", r}, {"description", r}});
    }
    data[name] = {{"instance_type", json::parse(TypeJson(t))},
                  {"regions_with_capacity_available", regions}};
  }
  Answer(res, 200, json{{"data", data}});
}

std::string FakeLambda::LaunchProblem(const std::string& body, int* status,
                                      std::string* code) {
  *status = 400;
  *code = "global/invalid-parameters";
  json b = json::parse(body, nullptr, false);
  if (b.is_discarded() || !b.is_object()) return "Body is not a JSON object.";
  static const std::set<std::string> kKnown = {"region_name",
                                               "instance_type_name",
                                               "ssh_key_names",
                                               "file_system_names",
                                               "file_system_mounts",
                                               "hostname",
                                               "name",
                                               "image",
                                               "user_data",
                                               "tags",
                                               "firewall_rulesets"};
  for (const auto& [k, v] : b.items()) {
    if (!kKnown.contains(k)) return absl::StrCat("Unknown field '", k, "'.");
  }
  for (const char* k : {"region_name", "instance_type_name"}) {
    if (!b.contains(k) || !b[k].is_string()) {
      return absl::StrCat("Field '", k, "' is required.");
    }
  }
  if (!b.contains("ssh_key_names") || !IsStringArray(b["ssh_key_names"]) ||
      b["ssh_key_names"].size() != 1) {
    return "Exactly one SSH key must be specified.";
  }
  if (b.contains("name") &&
      (!b["name"].is_string() || b["name"].get<std::string>().size() > 64)) {
    return "Name must be a string of 64 characters or fewer.";
  }
  if (b.contains("user_data") &&
      (!b["user_data"].is_string() ||
       b["user_data"].get<std::string>().size() > (1 << 20))) {
    return "User data must be plain text of at most 1MB.";
  }
  if (b.contains("tags")) {
    if (std::string p = TagProblem(b["tags"]); !p.empty()) return p;
  }
  if (!regions_.contains(b["region_name"].get<std::string>())) {
    return "Unknown region.";
  }
  *status = 404;
  *code = "global/object-does-not-exist";
  if (!types_.contains(b["instance_type_name"].get<std::string>())) {
    return "Instance type not found.";
  }
  if (!ssh_keys_.contains(b["ssh_key_names"][0].get<std::string>())) {
    return "SSH key not found.";
  }
  return "";
}

void FakeLambda::Launch(const Req& req, Res& res) {
  if (!Admit("launch", req, res)) return;
  absl::MutexLock lock(&mu_);
  if (!absl::StartsWith(req.get_header_value("Content-Type"), kJson)) {
    return Fail(res, 400, "global/invalid-parameters",
                "Content-Type must be application/json.");
  }
  const absl::Duration now = clock_.SteadyNow();
  if (enforce_rate_ && last_launch_ &&
      now - *last_launch_ < absl::Seconds(12)) {
    res.set_header("Retry-After", "12");
    return Fail(res, 429, "global/too-many-requests",
                "Launch requests are limited to one per 12 seconds.");
  }
  int status = 400;
  std::string code;
  if (std::string p = LaunchProblem(req.body, &status, &code); !p.empty()) {
    return Fail(res, status, code, p);
  }
  last_launch_ = now;
  json b = json::parse(req.body);
  const Type& type = types_[b["instance_type_name"].get<std::string>()];
  const std::string region = b["region_name"];
  if (std::find(type.regions_with_capacity.begin(),
                type.regions_with_capacity.end(),
                region) == type.regions_with_capacity.end()) {
    return Fail(res, 400, "instance-operations/launch/insufficient-capacity");
  }
  int live = 0;
  for (const auto& i : instances_) live += i->status != "terminated";
  if (live >= quota_) return Fail(res, 400, "global/quota-exceeded");
  auto inst = std::make_unique<Instance>();
  inst->id = absl::StrCat("0920582c7ff041399e34823a0be6", 1000 + next_id_++);
  inst->name = b.value("name", "");
  inst->region = region;
  inst->type = type.name;
  inst->ssh_key = b["ssh_key_names"][0];
  if (b.contains("tags")) inst->tags = b["tags"];
  launch_bodies_.push_back(req.body);
  json ids = json::array({inst->id});
  instances_.push_back(std::move(inst));
  Answer(res, 200, json{{"data", {{"instance_ids", ids}}}});
}

void FakeLambda::Terminate(const Req& req, Res& res) {
  if (!Admit("terminate", req, res)) return;
  absl::MutexLock lock(&mu_);
  json b = json::parse(req.body, nullptr, false);
  if (b.is_discarded() || !b.is_object() || !b.contains("instance_ids") ||
      !IsStringArray(b["instance_ids"]) || b["instance_ids"].empty()) {
    return Fail(res, 400, "global/invalid-parameters",
                "Field 'instance_ids' is required.");
  }
  std::vector<Instance*> found;
  for (const json& id : b["instance_ids"]) {
    Instance* hit = nullptr;
    for (auto& i : instances_) {
      if (i->id == id.get<std::string>() && i->status != "terminated") {
        hit = i.get();
      }
    }
    if (hit == nullptr) return Fail(res, 404, "global/object-does-not-exist");
    found.push_back(hit);
  }
  json out = json::array();
  for (Instance* i : found) {
    i->status = "terminating";
    out.push_back(json::parse(InstanceJson(*i)));
  }
  Answer(res, 200, json{{"data", {{"terminated_instances", out}}}});
}

void FakeLambda::List(const Req& req, Res& res) {
  if (!Admit("list", req, res)) return;
  absl::MutexLock lock(&mu_);
  json data = json::array();
  for (const auto& i : instances_) {
    if (i->status != "terminated")
      data.push_back(json::parse(InstanceJson(*i)));
  }
  Answer(res, 200, json{{"data", data}});
}

void FakeLambda::Get(const Req& req, Res& res) {
  if (!Admit("get", req, res)) return;
  absl::MutexLock lock(&mu_);
  const std::string id = req.matches[1];
  for (const auto& i : instances_) {
    if (i->id == id) {
      return Answer(res, 200, json{{"data", json::parse(InstanceJson(*i))}});
    }
  }
  Fail(res, 404, "global/object-does-not-exist");
}

}  // namespace navarch
