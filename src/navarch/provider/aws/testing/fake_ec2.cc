#include "navarch/provider/aws/testing/fake_ec2.h"

#include <httplib.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace navarch {
namespace {

constexpr char kXmlns[] = "http://ec2.amazonaws.com/doc/2016-11-15/";

// ---- the SigV4 algorithm, as documented, written again for the fake so
// that it does not trust the client's code.

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

std::string HashHex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return Hex(d, sizeof(d));
}

std::string Mac(const std::string& key, const std::string& msg) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), d, &n);
  return std::string(reinterpret_cast<char*>(d), n);
}

std::string Collapse(std::string v) {
  absl::RemoveExtraAsciiWhitespace(&v);
  return v;
}

// The documented Signature of a request: canonical request → string to
// sign → HMAC chain over date, region, service, "aws4_request".
std::string ExpectedSignature(const httplib::Request& req,
                              const std::vector<std::string>& signed_headers,
                              const std::string& secret,
                              const std::string& amz_date,
                              const std::string& scope) {
  std::string query;
  if (size_t q = req.target.find('?'); q != std::string::npos) {
    std::vector<std::string> parts =
        absl::StrSplit(req.target.substr(q + 1), '&', absl::SkipEmpty());
    std::sort(parts.begin(), parts.end());
    query = absl::StrJoin(parts, "&");
  }
  std::string canonical = req.method + "\n" + req.path + "\n" + query + "\n";
  for (const std::string& h : signed_headers) {
    canonical += h + ":" + Collapse(req.get_header_value(h.c_str())) + "\n";
  }
  canonical +=
      "\n" + absl::StrJoin(signed_headers, ";") + "\n" + HashHex(req.body);
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope +
                              "\n" + HashHex(canonical);
  std::vector<std::string> s = absl::StrSplit(scope, '/');
  std::string k = Mac("AWS4" + secret, s[0]);
  k = Mac(k, s[1]);
  k = Mac(k, s[2]);
  k = Mac(k, "aws4_request");
  const std::string sig = Mac(k, to_sign);
  return Hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

std::string FormDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() &&
               absl::ascii_isxdigit(s[i + 1]) &&
               absl::ascii_isxdigit(s[i + 2])) {
      out.push_back(static_cast<char>(
          std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseForm(absl::string_view body) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(body, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    out[FormDecode(kv.first)] = FormDecode(kv.second);
  }
  return out;
}

std::string X(absl::string_view s) {  // XML text escaping
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// "Prefix.1", "Prefix.2", ... until one is missing.
std::vector<std::string> List(const std::map<std::string, std::string>& p,
                              const std::string& prefix) {
  std::vector<std::string> out;
  for (int i = 1;; ++i) {
    auto it = p.find(absl::StrCat(prefix, ".", i));
    if (it == p.end()) return out;
    out.push_back(it->second);
  }
}

// EC2's filter values: '*' matches any run of characters, '?' one.
bool Glob(absl::string_view pattern, absl::string_view s) {
  if (pattern.empty()) return s.empty();
  if (pattern[0] == '*') {
    for (size_t i = 0; i <= s.size(); ++i) {
      if (Glob(pattern.substr(1), s.substr(i))) return true;
    }
    return false;
  }
  return !s.empty() && (pattern[0] == '?' || pattern[0] == s[0]) &&
         Glob(pattern.substr(1), s.substr(1));
}

std::string InstanceTypeXml(const FakeEc2InstanceType& t) {
  std::string gpu;
  if (t.gpus > 0) {
    gpu = absl::StrCat("<gpuInfo><gpus><item><name>", X(t.gpu_name),
                       "</name><manufacturer>", X(t.gpu_maker),
                       "</manufacturer><count>", t.gpus,
                       "</count></item></gpus></gpuInfo>");
  }
  return absl::StrCat(
      "<item><instanceType>", X(t.name),
      "</instanceType><currentGeneration>true</"
      "currentGeneration><vCpuInfo><defaultVCpus>",
      t.vcpus, "</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>",
      t.memory_mib, "</sizeInMiB></memoryInfo>", gpu, "</item>");
}

int StateCode(const std::string& state) {
  static const std::map<std::string, int> kCodes = {
      {"pending", 0},     {"running", 16},  {"shutting-down", 32},
      {"terminated", 48}, {"stopping", 64}, {"stopped", 80}};
  auto it = kCodes.find(state);
  return it == kCodes.end() ? 0 : it->second;
}

std::string StateXml(const std::string& tag, const std::string& state) {
  return absl::StrCat("<", tag, "><code>", StateCode(state), "</code><name>",
                      state, "</name></", tag, ">");
}

std::string InstanceXml(const FakeEc2::Instance& i) {
  std::string tags;
  for (const auto& [k, v] : i.tags) {
    absl::StrAppend(&tags, "<item><key>", X(k), "</key><value>", X(v),
                    "</value></item>");
  }
  std::string groups;
  for (const std::string& g : i.security_groups) {
    absl::StrAppend(&groups, "<item><groupId>", X(g), "</groupId></item>");
  }
  return absl::StrCat(
      "<item><instanceId>", i.id, "</instanceId><imageId>", X(i.image_id),
      "</imageId>", StateXml("instanceState", i.state),
      "<privateDnsName>ip-10-0-0-1.ec2.internal</privateDnsName>",
      i.key_name.empty()
          ? ""
          : absl::StrCat("<keyName>", X(i.key_name), "</keyName>"),
      "<amiLaunchIndex>0</amiLaunchIndex><instanceType>", X(i.instance_type),
      "</instanceType><launchTime>",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", i.launch_time,
                       absl::UTCTimeZone()),
      "</launchTime><placement><availabilityZone>", X(i.zone),
      "</availabilityZone><tenancy>default</tenancy></placement>"
      "<monitoring><state>disabled</state></monitoring><subnetId>",
      X(i.subnet_id), "</subnetId><privateIpAddress>", i.private_ip,
      "</privateIpAddress><groupSet>", groups, "</groupSet>",
      i.spot ? "<instanceLifecycle>spot</instanceLifecycle>" : "",
      i.client_token.empty()
          ? ""
          : absl::StrCat("<clientToken>", X(i.client_token), "</clientToken>"),
      "<tagSet>", tags, "</tagSet></item>");
}

}  // namespace

FakeEc2::FakeEc2(FakeEc2Options options)
    : options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  server_->Post("/", [this](const httplib::Request& req,
                            httplib::Response& res) { HandleEc2(req, res); });
  auto imds = [this](const httplib::Request& req, httplib::Response& res) {
    HandleImds(req, res);
  };
  server_->Put("/latest/api/token", imds);
  server_->Get("/latest/meta-data/.*", imds);
}

FakeEc2::~FakeEc2() {
  HoldRunAnswers(false);
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status FakeEc2::Start() {
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) return absl::InternalError("fake EC2: cannot bind");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // Stopping before it runs would leave listen_after_bind() running.
  while (!server_->is_running()) std::this_thread::yield();
  return absl::OkStatus();
}

std::string FakeEc2::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/");
}

void FakeEc2::FailNext(const std::string& action, int http_status,
                       const std::string& code, const std::string& message,
                       int times) {
  absl::MutexLock lock(&mu_);
  failures_[action].push_back({http_status, code, message, times});
}

void FakeEc2::SetRoleCredentials(const std::string& role,
                                 const std::string& key,
                                 const std::string& secret,
                                 const std::string& token,
                                 const std::string& expiration) {
  absl::MutexLock lock(&mu_);
  role_ = role;
  temp_[key] = {secret, token};
  role_json_ =
      absl::StrCat(R"({"Code":"Success","LastUpdated":"2026-12-07T06:00:00Z",)",
                   R"("Type":"AWS-HMAC","AccessKeyId":")", key,
                   R"(","SecretAccessKey":")", secret, R"(","Token":")", token,
                   R"(","Expiration":")", expiration, R"("})");
}

void FakeEc2::HoldRunAnswers(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_ = hold;
}

void FakeEc2::AddInstance(Instance instance) {
  absl::MutexLock lock(&mu_);
  instances_.push_back(std::move(instance));
}

std::vector<FakeEc2::Instance> FakeEc2::instances() const {
  absl::MutexLock lock(&mu_);
  return instances_;
}

std::vector<std::string> FakeEc2::actions() const {
  absl::MutexLock lock(&mu_);
  return actions_;
}

std::vector<std::string> FakeEc2::refusals() const {
  absl::MutexLock lock(&mu_);
  return refusals_;
}

int FakeEc2::imds_credential_reads() const {
  absl::MutexLock lock(&mu_);
  return imds_reads_;
}

void FakeEc2::Error(httplib::Response& res, int status, const std::string& code,
                    const std::string& message) {
  res.status = status;
  res.set_content(
      absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>"
                   "<Errors><Error><Code>",
                   X(code), "</Code><Message>", X(message),
                   "</Message></Error></Errors><RequestID>req-",
                   next_request_++, "</RequestID></Response>"),
      "text/xml;charset=UTF-8");
}

std::string FakeEc2::CheckSignature(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  absl::string_view rest = auth;
  if (!absl::ConsumePrefix(&rest, "AWS4-HMAC-SHA256 ")) {
    return "no AWS4-HMAC-SHA256 Authorization header";
  }
  std::map<std::string, std::string> fields;
  for (absl::string_view f : absl::StrSplit(rest, ',')) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(absl::StripAsciiWhitespace(f), absl::MaxSplits('=', 1));
    fields[kv.first] = kv.second;
  }
  std::vector<std::string> cred = absl::StrSplit(fields["Credential"], '/');
  if (cred.size() != 5 || cred[4] != "aws4_request") return "bad Credential";
  const std::string amz_date = req.get_header_value("X-Amz-Date");
  if (amz_date.size() != 16 || amz_date.substr(0, 8) != cred[1]) {
    return "X-Amz-Date missing or not the Credential's date";
  }
  if (cred[2] != options_.region || cred[3] != "ec2") {
    return "Credential scope names another region or service";
  }
  std::vector<std::string> signed_headers =
      absl::StrSplit(fields["SignedHeaders"], ';');
  auto is_signed = [&](const std::string& h) {
    return std::find(signed_headers.begin(), signed_headers.end(), h) !=
           signed_headers.end();
  };
  if (!is_signed("host") || !is_signed("x-amz-date")) {
    return "host and x-amz-date must be signed";
  }
  std::string secret;
  if (auto k = options_.keys.find(cred[0]); k != options_.keys.end()) {
    secret = k->second;
  } else if (auto t = temp_.find(cred[0]); t != temp_.end()) {
    if (req.get_header_value("X-Amz-Security-Token") != t->second.token ||
        !is_signed("x-amz-security-token")) {
      return "temporary credentials without their signed session token";
    }
    secret = t->second.secret;
  } else {
    return "unknown access key";
  }
  const std::string scope = absl::StrJoin(cred.begin() + 1, cred.end(), "/");
  if (ExpectedSignature(req, signed_headers, secret, amz_date, scope) !=
      fields["Signature"]) {
    return "signature does not match";
  }
  return "";
}

void FakeEc2::HandleEc2(const httplib::Request& req, httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  Params p = ParseForm(req.body);
  const std::string action = p["Action"];
  actions_.push_back(action);
  if (std::string why = CheckSignature(req); !why.empty()) {
    refusals_.push_back(why);
    return Error(res, 401, "AuthFailure",
                 "AWS was not able to validate the provided access "
                 "credentials");
  }
  if (p["Version"] != "2016-11-15") {
    refusals_.push_back("Version");
    return Error(res, 400, "MissingParameter",
                 "The request must contain the parameter Version");
  }
  if (auto f = failures_.find(action);
      f != failures_.end() && !f->second.empty()) {
    Failure& failure = f->second.front();
    Error(res, failure.http_status, failure.code, failure.message);
    if (--failure.times <= 0) f->second.erase(f->second.begin());
    return;
  }
  if (action == "RunInstances") return RunInstances(p, res);
  if (action == "DescribeInstances") return DescribeInstances(p, res);
  if (action == "TerminateInstances") return TerminateInstances(p, res);
  if (action == "DescribeInstanceTypes") return DescribeInstanceTypes(p, res);
  refusals_.push_back("action " + action);
  Error(res, 400, "InvalidAction",
        "The action " + action + " is not valid for this web service.");
}

void FakeEc2::ImdsSpeaksFor(const std::string& id) {
  absl::MutexLock lock(&mu_);
  imds_instance_ = id;
}

bool FakeEc2::ImdsIdentity(const std::string& path, httplib::Response& res) {
  static const char* kPaths[] = {
      "/latest/meta-data/instance-id", "/latest/meta-data/instance-type",
      "/latest/meta-data/placement/availability-zone",
      "/latest/meta-data/placement/region"};
  if (std::find(std::begin(kPaths), std::end(kPaths), path) ==
      std::end(kPaths)) {
    return false;
  }
  const std::string id = imds_instance_;
  auto i = std::find_if(instances_.begin(), instances_.end(),
                        [&id](const Instance& x) { return x.id == id; });
  if (id.empty() || i == instances_.end()) {
    res.status = 404;
    return true;
  }
  std::string value = i->id;
  if (path == kPaths[1]) value = i->instance_type;
  if (path == kPaths[2]) value = i->zone;
  if (path == kPaths[3]) value = options_.region;
  res.set_content(value, "text/plain");
  return true;
}

void FakeEc2::HandleImds(const httplib::Request& req, httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  if (req.method == "PUT") {
    int ttl = 0;
    if (!absl::SimpleAtoi(
            req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds"),
            &ttl) ||
        ttl < 1 || ttl > 21600) {
      res.status = 400;
      return;
    }
    imds_tokens_.push_back(absl::StrCat("imds-token-", imds_tokens_.size()));
    res.set_content(imds_tokens_.back(), "text/plain");
    return;
  }
  const std::string token = req.get_header_value("X-aws-ec2-metadata-token");
  if (std::find(imds_tokens_.begin(), imds_tokens_.end(), token) ==
      imds_tokens_.end()) {
    res.status = 401;
    return;
  }
  const std::string base = "/latest/meta-data/iam/security-credentials/";
  if (ImdsIdentity(req.path, res)) return;
  if (req.path == base && !role_.empty()) {
    res.set_content(role_, "text/plain");
  } else if (req.path == base + role_ && !role_.empty()) {
    ++imds_reads_;
    res.set_content(role_json_, "text/plain");
  } else {
    res.status = 404;
  }
}

namespace {

struct Refusal {
  std::string code;  // empty: accepted
  std::string message;
};

// The instance RunInstances asks for, or why the request is wrong.
Refusal ReadRunRequest(const std::map<std::string, std::string>& p,
                       const FakeEc2Options& options, FakeEc2::Instance& out) {
  auto get = [&](const std::string& k) {
    auto it = p.find(k);
    return it == p.end() ? std::string() : it->second;
  };
  for (const char* required : {"ImageId", "MinCount", "MaxCount"}) {
    if (!p.contains(required)) {
      return {
          "MissingParameter",
          absl::StrCat("The request must contain the parameter ", required)};
    }
  }
  int min = 0, max = 0;
  if (!absl::SimpleAtoi(get("MinCount"), &min) ||
      !absl::SimpleAtoi(get("MaxCount"), &max) || min < 1 || max < min) {
    return {"InvalidParameterValue", "MinCount and MaxCount are invalid"};
  }
  if (!absl::StartsWith(get("ImageId"), "ami-")) {
    return {"InvalidAMIID.Malformed", "Invalid id: \"" + get("ImageId") + "\""};
  }
  const std::string token = get("ClientToken");
  if (token.size() > 64 || !std::all_of(token.begin(), token.end(), [](char c) {
        return c > 32 && c < 127;
      })) {
    return {"InvalidParameterValue",
            "Value for parameter ClientToken is invalid"};
  }
  out.image_id = get("ImageId");
  out.instance_type =
      p.contains("InstanceType") ? get("InstanceType") : "m1.small";
  out.client_token = token;
  out.key_name = get("KeyName");
  out.instance_profile = get("IamInstanceProfile.Name");
  out.security_groups = List(p, "SecurityGroupId");
  out.spot = get("InstanceMarketOptions.MarketType") == "spot";
  if (p.contains("UserData") &&
      !absl::Base64Unescape(get("UserData"), &out.user_data)) {
    return {"InvalidParameterValue", "Invalid BASE64 encoding of user data"};
  }
  out.subnet_id = get("SubnetId");
  out.zone = get("Placement.AvailabilityZone");
  if (!out.subnet_id.empty()) {
    auto s = options.subnets.find(out.subnet_id);
    if (s == options.subnets.end()) {
      return {"InvalidSubnetID.NotFound",
              "The subnet ID '" + out.subnet_id + "' does not exist"};
    }
    if (!out.zone.empty() && out.zone != s->second) {
      return {"InvalidParameterValue",
              "Subnet and availability zone do not match"};
    }
    out.zone = s->second;
  }
  if (out.zone.empty()) out.zone = options.region + "a";
  for (int n = 1;
       p.contains(absl::StrCat("TagSpecification.", n, ".ResourceType")); ++n) {
    const std::string spec = absl::StrCat("TagSpecification.", n);
    if (get(spec + ".ResourceType") != "instance") continue;
    for (int m = 1; p.contains(absl::StrCat(spec, ".Tag.", m, ".Key")); ++m) {
      out.tags[get(absl::StrCat(spec, ".Tag.", m, ".Key"))] =
          get(absl::StrCat(spec, ".Tag.", m, ".Value"));
    }
  }
  return {};
}

}  // namespace

void FakeEc2::RunInstances(const Params& p, httplib::Response& res) {
  Instance instance;
  if (Refusal r = ReadRunRequest(p, options_, instance); !r.code.empty()) {
    refusals_.push_back(r.code);
    return Error(res, 400, r.code, r.message);
  }
  std::vector<Instance> made;
  if (auto t = tokens_.find(instance.client_token);
      !instance.client_token.empty() && t != tokens_.end()) {
    if (t->second.first != p) {
      return Error(res, 400, "IdempotentParameterMismatch",
                   "The client token you have provided is associated with "
                   "a resource that is already deleted or has different "
                   "parameters. Please use a different client token.");
    }
    for (const Instance& i : instances_) {
      if (i.id == t->second.second) made.push_back(i);
    }
  } else {
    char id[32];
    std::snprintf(id, sizeof(id), "i-%017x", next_id_++);
    instance.id = id;
    instance.private_ip = !options_.private_ip.empty()
                              ? options_.private_ip
                              : absl::StrCat("127.0.0.", next_id_ % 250 + 2);
    instance.launch_time =
        (options_.clock != nullptr ? *options_.clock : RealClock::Default())
            .Now();
    instances_.push_back(instance);
    made.push_back(instance);
    if (!instance.client_token.empty()) {
      tokens_[instance.client_token] = {p, instance.id};
    }
  }
  mu_.Await(absl::Condition(
      +[](bool* hold) { return !*hold; }, &hold_));
  std::string items;
  for (const Instance& i : made) items += InstanceXml(i);
  res.set_content(absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                               "<RunInstancesResponse xmlns=\"",
                               kXmlns, "\"><requestId>req-", next_request_++,
                               "</requestId><reservationId>r-0123456789abcdef0"
                               "</reservationId><ownerId>123456789012</ownerId>"
                               "<groupSet/><instancesSet>",
                               items, "</instancesSet></RunInstancesResponse>"),
                  "text/xml;charset=UTF-8");
}

bool FakeEc2::Matches(const Instance& i, const Params& p) const {
  for (int n = 1; p.contains(absl::StrCat("Filter.", n, ".Name")); ++n) {
    const std::string name = p.at(absl::StrCat("Filter.", n, ".Name"));
    const std::vector<std::string> values =
        List(p, absl::StrCat("Filter.", n, ".Value"));
    auto any = [&](const std::string& v) {
      return std::find(values.begin(), values.end(), v) != values.end();
    };
    if (absl::StartsWith(name, "tag:")) {
      auto t = i.tags.find(name.substr(4));
      if (t == i.tags.end() || !any(t->second)) return false;
    } else if (name == "tag-key") {
      if (!std::any_of(values.begin(), values.end(), [&](const std::string& k) {
            return i.tags.contains(k);
          }))
        return false;
    } else if (name == "instance-state-name") {
      if (!any(i.state)) return false;
    } else if (name == "instance-id") {
      if (!any(i.id)) return false;
    } else if (name == "availability-zone") {
      if (!any(i.zone)) return false;
    }
  }
  return true;
}

void FakeEc2::DescribeInstances(const Params& p, httplib::Response& res) {
  static const std::set<std::string> kFilters = {
      "tag-key", "instance-state-name", "instance-id", "availability-zone"};
  for (int n = 1; p.contains(absl::StrCat("Filter.", n, ".Name")); ++n) {
    const std::string name = p.at(absl::StrCat("Filter.", n, ".Name"));
    if (!absl::StartsWith(name, "tag:") && !kFilters.contains(name)) {
      return Error(res, 400, "InvalidParameterValue",
                   "The filter '" + name + "' is invalid");
    }
  }
  const std::vector<std::string> ids = List(p, "InstanceId");
  int max_results = 1000;
  if (p.contains("MaxResults")) {
    if (!ids.empty()) {
      return Error(res, 400, "InvalidParameterCombination",
                   "The parameter instancesSet cannot be used with the "
                   "parameter maxResults");
    }
    if (!absl::SimpleAtoi(p.at("MaxResults"), &max_results) ||
        max_results < 5 || max_results > 1000) {
      return Error(res, 400, "InvalidParameterValue",
                   "Value for parameter MaxResults is invalid");
    }
  }
  size_t start = 0;
  if (p.contains("NextToken") &&
      !absl::SimpleAtoi(absl::StripPrefix(p.at("NextToken"), "page-"),
                        &start)) {
    return Error(res, 400, "InvalidParameterValue", "Invalid NextToken");
  }
  for (const std::string& id : ids) {
    if (std::none_of(instances_.begin(), instances_.end(),
                     [&](const Instance& i) { return i.id == id; })) {
      return Error(res, 400, "InvalidInstanceID.NotFound",
                   "The instance ID '" + id + "' does not exist");
    }
  }
  std::vector<Instance*> matched;
  for (Instance& i : instances_) {
    if ((ids.empty() || std::find(ids.begin(), ids.end(), i.id) != ids.end()) &&
        Matches(i, p)) {
      matched.push_back(&i);
    }
  }
  std::string body = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse "
      "xmlns=\"",
      kXmlns, "\"><requestId>req-", next_request_++,
      "</requestId><reservationSet>");
  size_t end = std::min(matched.size(), start + max_results);
  for (size_t k = start; k < end; ++k) {
    absl::StrAppend(&body, "<item><reservationId>r-", k,
                    "</reservationId><ownerId>123456789012</ownerId>"
                    "<groupSet/><instancesSet>",
                    InstanceXml(*matched[k]), "</instancesSet></item>");
  }
  absl::StrAppend(&body, "</reservationSet>",
                  end < matched.size()
                      ? absl::StrCat("<nextToken>page-", end, "</nextToken>")
                      : "",
                  "</DescribeInstancesResponse>");
  res.set_content(body, "text/xml;charset=UTF-8");
  // Time passes between two looks: machines boot, terminations finish.
  for (Instance& i : instances_) {
    if (i.state == "pending") i.state = "running";
    if (i.state == "shutting-down") i.state = "terminated";
  }
}

// Filters: instance-type only (with wildcards); InstanceType.N must name
// types offered here (InvalidInstanceType otherwise); MaxResults 5..100.
void FakeEc2::DescribeInstanceTypes(const Params& p, httplib::Response& res) {
  std::vector<std::string> patterns;
  for (int n = 1; p.contains(absl::StrCat("Filter.", n, ".Name")); ++n) {
    const std::string name = p.at(absl::StrCat("Filter.", n, ".Name"));
    if (name != "instance-type") {
      return Error(res, 400, "InvalidParameterValue",
                   "The filter '" + name + "' is invalid");
    }
    for (const std::string& v : List(p, absl::StrCat("Filter.", n, ".Value"))) {
      patterns.push_back(v);
    }
  }
  const std::vector<std::string> names = List(p, "InstanceType");
  for (const std::string& n : names) {
    if (std::none_of(
            options_.instance_types.begin(), options_.instance_types.end(),
            [&](const FakeEc2InstanceType& t) { return t.name == n; })) {
      return Error(
          res, 400, "InvalidInstanceType",
          "The following supplied instance types do not exist: [" + n + "]");
    }
  }
  int max_results = 100;
  if (p.contains("MaxResults") &&
      (!absl::SimpleAtoi(p.at("MaxResults"), &max_results) || max_results < 5 ||
       max_results > 100)) {
    return Error(res, 400, "InvalidParameterValue",
                 "Value for parameter MaxResults is invalid");
  }
  size_t start = 0;
  if (p.contains("NextToken") &&
      !absl::SimpleAtoi(absl::StripPrefix(p.at("NextToken"), "page-"),
                        &start)) {
    return Error(res, 400, "InvalidParameterValue", "Invalid NextToken");
  }
  std::vector<const FakeEc2InstanceType*> matched;
  for (const FakeEc2InstanceType& t : options_.instance_types) {
    const bool named = names.empty() || std::find(names.begin(), names.end(),
                                                  t.name) != names.end();
    const bool filtered =
        patterns.empty() ||
        std::any_of(patterns.begin(), patterns.end(),
                    [&](const std::string& g) { return Glob(g, t.name); });
    if (named && filtered) matched.push_back(&t);
  }
  std::string body = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<DescribeInstanceTypesResponse xmlns=\"",
      kXmlns, "\"><requestId>req-", next_request_++,
      "</requestId><instanceTypeSet>");
  const size_t end = std::min(matched.size(), start + max_results);
  for (size_t k = start; k < end; ++k) {
    absl::StrAppend(&body, InstanceTypeXml(*matched[k]));
  }
  absl::StrAppend(&body, "</instanceTypeSet>",
                  end < matched.size()
                      ? absl::StrCat("<nextToken>page-", end, "</nextToken>")
                      : "",
                  "</DescribeInstanceTypesResponse>");
  res.set_content(body, "text/xml;charset=UTF-8");
}

void FakeEc2::TerminateInstances(const Params& p, httplib::Response& res) {
  const std::vector<std::string> ids = List(p, "InstanceId");
  if (ids.empty()) {
    return Error(res, 400, "MissingParameter",
                 "The request must contain the parameter InstanceId");
  }
  std::string items;
  for (const std::string& id : ids) {
    auto it = std::find_if(instances_.begin(), instances_.end(),
                           [&](const Instance& i) { return i.id == id; });
    if (it == instances_.end()) {
      return Error(res, 400, "InvalidInstanceID.NotFound",
                   "The instance ID '" + id + "' does not exist");
    }
  }
  for (const std::string& id : ids) {
    Instance& i = *std::find_if(instances_.begin(), instances_.end(),
                                [&](const Instance& x) { return x.id == id; });
    const std::string before = i.state;
    if (i.state != "terminated") i.state = "shutting-down";
    absl::StrAppend(&items, "<item><instanceId>", id, "</instanceId>",
                    StateXml("currentState", i.state),
                    StateXml("previousState", before), "</item>");
  }
  res.set_content(absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                               "<TerminateInstancesResponse xmlns=\"",
                               kXmlns, "\"><requestId>req-", next_request_++,
                               "</requestId><instancesSet>", items,
                               "</instancesSet></TerminateInstancesResponse>"),
                  "text/xml;charset=UTF-8");
}

}  // namespace navarch
