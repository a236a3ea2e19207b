#include "navarch/config/config_loader.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/duration.h"
#include "navarch/base/logging.h"
#include "navarch/config/template.h"
#include "navarch/config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace navarch {
namespace {

using yaml::Entry;
using yaml::KeySpec;
using yaml::Site;
using yaml::YamlReader;

constexpr int64_t kNoMax = INT32_MAX;
// Bounds that catch typos (an extra zero) long before they cost money.
constexpr int64_t kMaxNodes = 100000;
constexpr int64_t kMaxGpusPerInstance = 64;
using yaml::kMaxFileBytes;

// Agents receive intervals in whole seconds; below one second they would get
// zero (upstream agents then crash their tickers).
constexpr absl::Duration kMinAgentInterval = absl::Seconds(1);

template <typename E>
struct Choice {
  absl::string_view name;
  E value;
};

template <typename E>
std::optional<E> ReadChoice(YamlReader& r, const Entry& e,
                            absl::string_view what,
                            std::initializer_list<Choice<E>> choices) {
  std::optional<std::string> s = r.String(e);
  if (!s) return std::nullopt;
  std::vector<std::string> names;
  for (const Choice<E>& c : choices) {
    if (*s == c.name) return c.value;
    names.emplace_back(c.name);
  }
  r.Error(e.site, absl::StrCat("unknown ", what, " '", *s, "' (",
                               absl::StrJoin(names, ", "), ")"));
  return std::nullopt;
}

// Pool and provider names become labels, instance names and URL parts.
bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || !absl::ascii_isalnum(name[0])) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string NameRule(absl::string_view what, absl::string_view name) {
  return absl::StrCat(
      "invalid ", what, " name '", name,
      "': use up to 63 letters, digits, '-', '_' or '.', starting with a "
      "letter or digit");
}

// Splits "host:port"; nullopt when it is not one. IPv6 hosts need brackets.
std::optional<std::pair<std::string, int>> SplitHostPort(
    absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  absl::string_view host = address.substr(0, colon);
  absl::string_view port = address.substr(colon + 1);
  if (host.find(':') != absl::string_view::npos &&
      !(absl::StartsWith(host, "[") && absl::EndsWith(host, "]"))) {
    return std::nullopt;
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  int value = 0;
  for (char c : port) {
    if (!absl::ascii_isdigit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return std::nullopt;
  return std::make_pair(std::string(host), value);
}

bool IsWildcardHost(absl::string_view host) {
  return host.empty() || host == "0.0.0.0" || host == "[::]";
}

std::optional<absl::Weekday> ParseDay(absl::string_view text) {
  static constexpr struct {
    const char* full;
    const char* abbr;
    absl::Weekday day;
  } kDays[] = {
      {"monday", "mon", absl::Weekday::monday},
      {"tuesday", "tue", absl::Weekday::tuesday},
      {"wednesday", "wed", absl::Weekday::wednesday},
      {"thursday", "thu", absl::Weekday::thursday},
      {"friday", "fri", absl::Weekday::friday},
      {"saturday", "sat", absl::Weekday::saturday},
      {"sunday", "sun", absl::Weekday::sunday},
  };
  const std::string lower = absl::AsciiStrToLower(text);
  for (const auto& d : kDays) {
    if (lower == d.full || lower == d.abbr) return d.day;
  }
  return std::nullopt;
}

// Which autoscaler types a key belongs to.
unsigned Bit(AutoscalerType t) { return 1u << static_cast<int>(t); }

unsigned AutoscalerKeyTypes(absl::string_view canonical) {
  using T = AutoscalerType;
  if (canonical == "scale_up_at" || canonical == "scale_down_at") {
    return Bit(T::kReactive);
  }
  if (canonical == "jobs_per_node") return Bit(T::kQueue);
  if (canonical == "schedule") return Bit(T::kScheduled);
  if (canonical == "fallback") return Bit(T::kScheduled) | Bit(T::kPredictive);
  if (canonical == "lookback_window" || canonical == "growth_factor") {
    return Bit(T::kPredictive);
  }
  if (canonical == "mode" || canonical == "autoscalers") {
    return Bit(T::kComposite);
  }
  return ~0u;  // "type" applies to all.
}

// aws: the keys of provider/aws/ (besides region and credentials_file).
bool IsAwsProviderKey(absl::string_view key) {
  return key == "image_id" || key == "subnet_ids" ||
         key == "security_group_ids" || key == "key_name" ||
         key == "instance_profile" || key == "profile";
}

// Which provider types a key belongs to; empty for "type" (all of them).
std::vector<ProviderType> ProviderKeyTypes(absl::string_view key) {
  using T = ProviderType;
  if (key == "api_key_env" || key == "api_key_secret") return {T::kLambda};
  // Keys several clouds share (issue 16).
  if (key == "endpoint") return {T::kLambda, T::kAws, T::kGcp};
  if (key == "ca_file") return {T::kLambda, T::kGcp};
  if (key == "spot") return {T::kAws, T::kGcp};
  // lambda (issue 16)
  if (key == "api_key_file" || key == "ssh_key_name") return {T::kLambda};
  if (key == "project" || key == "zone") return {T::kGcp};
  if (key == "credentials_file" || key == "credentials_secret") {
    return {T::kGcp, T::kAws};
  }
  if (key == "region" || IsAwsProviderKey(key)) return {T::kAws};
  if (key == "gpu_count") return {T::kFake, T::kLocal};
  if (key == "gpu_model" || key == "agent_path" || key == "keep_instances") {
    return {T::kLocal};
  }
  // gcp
  if (key == "image" || key == "network" || key == "subnetwork" ||
      key == "service_account" || key == "accelerator_type" ||
      key == "accelerator_count" || key == "boot_disk_gb") {
    return {T::kGcp};
  }
  return {};
}

// A key seen in a mapping whose valid keys depend on a `type` that may come
// later in the same mapping.
struct SeenKey {
  std::string canonical;
  std::string written;
  Site key_site;
  Site value_site;
};

struct ProviderDraft {
  ProviderConfig config;
  Site site;
  std::optional<ProviderType> type;
  bool type_written = false;
  std::vector<SeenKey> keys;
};

struct PoolDraft {
  PoolConfig pool;
  Site site;         // The pool's key (map form) or list item.
  std::string slot;  // "pools.<name>"
  std::optional<std::string> provider;
  std::optional<std::vector<PoolProvider>> providers;
  bool provider_written = false;
  bool providers_written = false;
  bool instance_type_written = false;
  bool max_nodes_written = false;
  std::optional<int> min_nodes;
  std::optional<int> max_nodes;
  PoolDefaults own;  // Inheritable settings the pool sets itself.
};

// An autoscaler being read: which keys were written (their validity
// depends on a `type` that may come later) and whether all of them read.
struct AutoscalerDraft {
  AutoscalingConfig config;
  std::optional<AutoscalerType> type;
  bool type_written = false;
  bool ok = true;
  std::vector<SeenKey> seen;

  void Note(const Entry& f, absl::string_view canonical) {
    seen.push_back(SeenKey{std::string(canonical), f.key, f.key_site, f.site});
  }
  // Where the value of `canonical` was written; null when it was not.
  const Site* ValueSite(absl::string_view canonical) const {
    const Site* site = nullptr;
    for (const SeenKey& k : seen) {
      if (k.canonical == canonical) site = &k.value_site;
    }
    return site;
  }
};

// Built-in provider defaults (upstream's, plus the local provider's).
void ApplyProviderDefaults(ProviderConfig* c) {
  switch (c->type) {
    case ProviderType::kLambda:
      if (c->api_key_env.empty()) c->api_key_env = "LAMBDA_API_KEY";
      break;
    case ProviderType::kGcp:
      if (c->zone.empty()) c->zone = "us-central1-a";
      break;
    case ProviderType::kFake:
      if (c->gpu_count == 0) c->gpu_count = 8;
      break;
    case ProviderType::kLocal:
      if (c->gpu_count == 0) c->gpu_count = 8;
      if (c->gpu_model.empty()) c->gpu_model = "NVIDIA H100 80GB HBM3";
      break;
    case ProviderType::kAws:
      break;
  }
}

// The provider type a name spells, if any ("lambda" -> kLambda).
std::optional<ProviderType> TypeNamed(absl::string_view name) {
  static constexpr Choice<ProviderType> kTypes[] = {
      {"lambda", ProviderType::kLambda},
      {"gcp", ProviderType::kGcp},
      {"aws", ProviderType::kAws},
      {"fake", ProviderType::kFake},
      {"local", ProviderType::kLocal}};
  for (const Choice<ProviderType>& c : kTypes) {
    if (name == c.name) return c.value;
  }
  return std::nullopt;
}

class Loader {
 public:
  explicit Loader(std::string filename) : r_(std::move(filename)) {}

  ConfigLoadResult Run(absl::string_view yaml);

 private:
  // Small typed setters: read, claim the slot, store.
  std::optional<int> IntValue(const Entry& e, int64_t min, int64_t max) {
    std::optional<int64_t> v = r_.Int(e, min, max);
    if (!v) return std::nullopt;
    return static_cast<int>(*v);
  }
  template <typename T, typename Out>
  void Store(const Entry& e, std::optional<T> v, Out* out) {
    if (v && r_.Claim(e.slot, e.site)) *out = std::move(*v);
  }
  std::optional<std::string> NonEmptyString(const Entry& e) {
    std::optional<std::string> s = r_.String(e);
    if (s && s->empty()) {
      r_.Error(e.site, "must not be empty");
      return std::nullopt;
    }
    return s;
  }
  // False (and an error at `e`) unless `url` is http:// or https://.
  bool CheckHttpUrl(const Entry& e, const std::string& url) {
    if (absl::StartsWith(url, "http://") || absl::StartsWith(url, "https://"))
      return true;
    r_.Error(e.site, absl::StrCat("expected an http:// or https:// URL, got '",
                                  url, "'"));
    return false;
  }
  // A duration where 0 keeps the default, as upstream; others must be >= min.
  template <typename Out>
  void StoreInterval(const Entry& e, absl::Duration min, Out* out) {
    std::optional<absl::Duration> d = r_.Duration(e);
    if (!d || !r_.Claim(e.slot, e.site)) return;
    if (*d == absl::ZeroDuration()) return;
    if (*d < min) {
      r_.Error(e.site, absl::StrCat("must be at least ", FormatGoDuration(min),
                                    ", got ", e.value.Scalar()));
      return;
    }
    *out = *d;
  }
  void StoreAddress(const Entry& e, std::string* out) {
    std::optional<std::string> s = r_.String(e);
    if (!s) return;
    if (!SplitHostPort(*s)) {
      r_.Error(e.site, absl::StrCat("expected host:port such as :50051 or "
                                    "0.0.0.0:50051, got '",
                                    *s, "'"));
      return;
    }
    Store(e, s, out);
  }

  void ReadRoot(const YAML::Node& root);
  void ReadServer(const Entry& e);
  // In `server:` (agent_block false) or upstream's `global.agent:` block.
  std::vector<KeySpec> AgentKeys(bool agent_block);
  void ReadNotifier(const Entry& e);
  void ReadWebhook(const Entry& e, WebhookConfig* webhook);
  void ReadMetricsSource(const Entry& e, MetricsSourceConfig* m);
  std::vector<KeySpec> MetricsSourceKeys(MetricsSourceConfig* m,
                                         std::map<std::string, Site>* seen);
  void ReadCommand(const Entry& f, MetricsSourceConfig* m);
  void CheckMetricsSource(const Entry& e, const MetricsSourceConfig& m,
                          const std::map<std::string, Site>& seen);
  void ReadStorage(const Entry& e);
  void CheckStorage();
  void ReadHa(const Entry& e);
  void ReadLogging(const Entry& e);
  void ReadInstanceManager(const Entry& e);
  void ReadTls(const Entry& e);
  void ReadHttpLimits(const Entry& e);
  void ReadAuth(const Entry& e);
  void ReadAuthToken(const Entry& e, std::set<std::string>* names);
  void ReadNodeTokenKey(const Entry& e);
  void ReadProviders(const Entry& e);
  void ReadProvider(const std::string& name, const Entry& e);
  // The keys of the cloud providers (issue 16): shared ones, lambda's and
  // aws's; and those of type gcp beyond upstream's (project, zone,
  // credentials_file).
  std::vector<KeySpec> CloudProviderKeys(ProviderDraft& d);
  std::vector<KeySpec> GcpProviderKeys(ProviderDraft& d);
  void ReadPools(const Entry& e);
  void ReadPool(const std::string& name, const YAML::Node& node,
                const Site& value_site, const Site& pool_site);
  // The keys of one pool, reading into `d`.
  std::vector<KeySpec> PoolKeys(PoolDraft& d);
  void ReadPoolProviders(const Entry& e, PoolDraft* d);
  void ReadFileUploads(const Entry& e, PoolDraft* d);
  // user_data and setup_commands: known variables only.
  void InheritPoolSettings(const PoolDefaults& own, PoolConfig& p);
  // The SSH keys that setup_commands and file_uploads need.
  void CheckPoolSsh(const PoolConfig& p,
                    const std::function<Site(absl::string_view)>& at);
  void CheckPoolTemplates(const PoolConfig& p,
                          const std::function<Site(absl::string_view)>& at);
  std::vector<KeySpec> InheritableKeys(PoolDefaults* d);
  std::vector<KeySpec> ScalingKeys(PoolDefaults* d, PoolDraft* pool);
  std::vector<KeySpec> DefaultsKeys();
  void ReadHealth(const Entry& e, PoolDefaults* d);
  void ReadAutoscalingKey(const Entry& e,
                          std::optional<AutoscalingConfig>* out);
  std::optional<AutoscalingConfig> ReadAutoscaling(const Entry& e);
  std::vector<KeySpec> AutoscalerScalarKeys(AutoscalerDraft& d);
  std::vector<KeySpec> AutoscalerListKeys(AutoscalerDraft& d);
  bool CheckAutoscalerKeys(AutoscalerDraft& d);
  bool CheckAutoscaler(const Entry& e, const AutoscalerDraft& d);
  std::optional<ScheduleWindow> ReadWindow(const Entry& e);

  void Finish();
  void FinishProviders();
  void FinishPool(PoolDraft& d);
  void FinishServer();
  // A pool's provider must be defined, or be a provider type's name.
  void CheckProviderReference(const std::string& name, const Site& site);

  YamlReader r_;
  Config config_;
  PoolDefaults defaults_;
  std::map<std::string, ProviderDraft> providers_;
  std::map<std::string, PoolDraft> pools_;
};

ConfigLoadResult Loader::Run(absl::string_view yaml) {
  ConfigLoadResult result;
  if (std::optional<YAML::Node> root = r_.Load(yaml)) {
    r_.Guard([&] {
      ReadRoot(*root);
      Finish();
    });
  }
  result.errors = r_.TakeErrors();
  result.config = std::move(config_);
  return result;
}

// ------------------------------------------------------------------- root

void Loader::ReadRoot(const YAML::Node& root) {
  const Site site = YamlReader::SiteOf(root, Site{1, 1, ""}, "");
  r_.ReadMap(
      root, site, "",
      {
          {{"server"}, "", [this](const Entry& e) { ReadServer(e); }},
          {{"storage"}, "", [this](const Entry& e) { ReadStorage(e); }},
          {{"ha"}, "", [this](const Entry& e) { ReadHa(e); }},
          {{"logging"}, "", [this](const Entry& e) { ReadLogging(e); }},
          {{"instance_manager"},
           "",
           [this](const Entry& e) { ReadInstanceManager(e); }},
          {{"auth"}, "", [this](const Entry& e) { ReadAuth(e); }},
          {{"providers"}, "", [this](const Entry& e) { ReadProviders(e); }},
          {{"pools"}, "", [this](const Entry& e) { ReadPools(e); }},
          // `global:` is the name upstream's pool-management guide uses.
          {{"defaults", "global"},
           "",
           [this](const Entry& e) {
             r_.ReadMap(e.value, e.site, "defaults", DefaultsKeys());
           }},
          // Top-level shorthands for the same keys under `defaults:`; the
          // upstream documentation shows these blocks on their own.
          {{"health"},
           "defaults.health",
           [this](const Entry& e) { ReadHealth(e, &defaults_); }},
          {{"autoscaling", "autoscaler"},
           "defaults.autoscaling",
           [this](const Entry& e) {
             ReadAutoscalingKey(e, &defaults_.autoscaling);
           }},
          {{"scaling"},
           "defaults.scaling",
           [this](const Entry& e) {
             r_.ReadMap(e.value, e.site, "defaults",
                        ScalingKeys(&defaults_, nullptr));
           }},
          {{"notifier", "coordinator"},
           "server.notifier",
           [this](const Entry& e) { ReadNotifier(e); }},
          // Holders of YAML anchors (`x-pool: &base ...`), as in Compose
          // files: read by the aliases that use them, never on their own.
          {{"x-*"}, "", [](const Entry&) {}},
      });
}

// ----------------------------------------------------------------- server

void Loader::ReadServer(const Entry& e) {
  ServerConfig& s = config_.server;
  std::vector<KeySpec> keys = {
      {{"address"},
       "",
       [this, &s](const Entry& f) { StoreAddress(f, &s.address); }},
      // Upstream's deployment docs write the gRPC port on its own.
      {{"grpc_port"},
       "address",
       [this, &s](const Entry& f) {
         std::optional<int> port = IntValue(f, 1, 65535);
         if (port && r_.Claim(f.slot, f.site)) {
           s.address = absl::StrCat(":", *port);
         }
       }},
      {{"http_address"},
       "",
       [this, &s](const Entry& f) { StoreAddress(f, &s.http_address); }},
      {{"data_dir"},
       "",
       [this, &s](const Entry& f) {
         Store(f, NonEmptyString(f), &s.data_dir);
       }},
      {{"heartbeat_timeout"},
       "",
       [this, &s](const Entry& f) {
         Store(f, r_.Duration(f), &s.heartbeat_timeout);
       }},
      {{"autoscale_interval"},
       "",
       [this, &s](const Entry& f) {
         StoreInterval(f, kMinAgentInterval, &s.autoscale_interval);
       }},
      {{"heartbeat_flush_interval"},
       "",
       [this, &s](const Entry& f) {
         StoreInterval(f, absl::Milliseconds(10), &s.heartbeat_flush_interval);
       }},
      {{"health_policy", "health_policy_path"},
       "",
       [this, &s](const Entry& f) {
         Store(f, r_.String(f), &s.health_policy);
       }},
      {{"external_http_address"},
       "",
       [this, &s](const Entry& f) {
         Store(f, NonEmptyString(f), &s.external_http_address);
       }},
      {{"agent_binary"},
       "",
       [this, &s](const Entry& f) {
         Store(f, NonEmptyString(f), &s.agent_binary);
       }},
      {{"agent_package"},
       "",
       [this, &s](const Entry& f) {
         Store(f, NonEmptyString(f), &s.agent_package);
       }},
      {{"notifier", "coordinator"},
       "",
       [this](const Entry& f) { ReadNotifier(f); }},
      {{"tls"}, "", [this](const Entry& f) { ReadTls(f); }},
      {{"http"}, "", [this](const Entry& f) { ReadHttpLimits(f); }},
  };
  // external_address and the agent intervals can also come from upstream's
  // `global.agent` block; both spellings share one reader and one slot.
  for (KeySpec& k : AgentKeys(false)) keys.push_back(std::move(k));
  r_.ReadMap(e.value, e.site, "server", keys);
}

std::vector<KeySpec> Loader::AgentKeys(bool agent_block) {
  ServerConfig& s = config_.server;
  auto external = [this, &s](const Entry& f) {
    Store(f, r_.String(f), &s.external_address);
  };
  auto heartbeat = [this, &s](const Entry& f) {
    StoreInterval(f, kMinAgentInterval, &s.heartbeat_interval);
  };
  auto health = [this, &s](const Entry& f) {
    StoreInterval(f, kMinAgentInterval, &s.health_check_interval);
  };
  return {
      {{agent_block ? "server" : "external_address"},
       "external_address",
       external},
      {{"heartbeat_interval"}, "", heartbeat},
      {{"health_check_interval"}, "", health},
  };
}

void Loader::ReadNotifier(const Entry& e) {
  if (e.value.IsNull() || !r_.Claim(e.slot, e.site)) return;
  NotifierConfig& n = config_.server.notifier;
  std::optional<Site> webhook_site;
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 {{"type"},
                  "",
                  [this, &n](const Entry& f) {
                    std::optional<NotifierType> t = ReadChoice<NotifierType>(
                        r_, f, "notifier type",
                        {{"noop", NotifierType::kNoop},
                         {"webhook", NotifierType::kWebhook}});
                    if (t) n.type = *t;
                  }},
                 {{"webhook"},
                  "",
                  [this, &n, &webhook_site](const Entry& f) {
                    if (f.value.IsNull()) return;
                    webhook_site = f.site;
                    ReadWebhook(f, &n.webhook);
                  }},
             });
  if (n.type == NotifierType::kWebhook && !webhook_site) {
    r_.Error(e.site, "type 'webhook' needs a 'webhook' block with its URLs");
  }
  if (n.type == NotifierType::kNoop && webhook_site) {
    r_.Error(*webhook_site,
             "has no effect unless the notifier type is "
             "'webhook'");
  }
  const WebhookConfig& w = n.webhook;
  if (n.type == NotifierType::kWebhook && webhook_site &&
      w.cordon_url.empty() && w.uncordon_url.empty() && w.drain_url.empty() &&
      w.drain_status_url.empty()) {
    r_.Error(*webhook_site,
             "needs at least one of cordon_url, uncordon_url, "
             "drain_url, drain_status_url");
  }
}

void Loader::ReadWebhook(const Entry& e, WebhookConfig* w) {
  auto url = [this](std::string* out) {
    return [this, out](const Entry& f) {
      std::optional<std::string> s = r_.String(f);
      if (!s) return;
      if (!s->empty() && !CheckHttpUrl(f, *s)) return;
      *out = *s;
    };
  };
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 {{"cordon_url"}, "", url(&w->cordon_url)},
                 {{"uncordon_url"}, "", url(&w->uncordon_url)},
                 {{"drain_url"}, "", url(&w->drain_url)},
                 {{"drain_status_url"}, "", url(&w->drain_status_url)},
                 {{"timeout"},
                  "",
                  [this, w](const Entry& f) {
                    StoreInterval(f, absl::Milliseconds(1), &w->timeout);
                  }},
                 {{"headers"},
                  "",
                  [this, w](const Entry& f) {
                    Store(f, r_.StringMap(f), &w->headers);
                  }},
             });
}

void Loader::ReadCommand(const Entry& f, MetricsSourceConfig* m) {
  if (f.value.IsScalar()) {
    std::optional<std::string> s = NonEmptyString(f);
    if (s) m->command = {"/bin/sh", "-c", *s};
    return;
  }
  std::optional<std::vector<std::string>> argv = r_.StringList(f);
  if (!argv) return;
  if (argv->empty() || (*argv)[0].empty()) {
    r_.Error(f.site, "needs the program to run");
    return;
  }
  m->command = *argv;
}

std::vector<KeySpec> Loader::MetricsSourceKeys(
    MetricsSourceConfig* m, std::map<std::string, Site>* seen) {
  // Records the keys written, for CheckMetricsSource.
  auto note = [seen](const Entry& f, absl::string_view key) {
    seen->emplace(std::string(key), f.site);
  };
  auto query = [this, note](absl::string_view key, std::string* out) {
    return [this, note, key, out](const Entry& f) {
      Store(f, NonEmptyString(f), out);
      note(f, key);
    };
  };
  return {
      {{"source", "type"},
       "",
       [this, m, note](const Entry& f) {
         std::optional<MetricsSourceType> t = ReadChoice<MetricsSourceType>(
             r_, f, "metrics source",
             {{"fleet", MetricsSourceType::kFleet},
              {"http_json", MetricsSourceType::kHttpJson},
              {"command", MetricsSourceType::kCommand},
              {"prometheus", MetricsSourceType::kPrometheus}});
         if (t) m->type = *t;
         note(f, "source");
       }},
      {{"url"},
       "",
       [this, m, note](const Entry& f) {
         std::optional<std::string> s = NonEmptyString(f);
         if (!s || !CheckHttpUrl(f, *s)) return;
         m->url = *s;
         note(f, "url");
       }},
      {{"headers"},
       "",
       [this, m, note](const Entry& f) {
         Store(f, r_.StringMap(f), &m->headers);
         note(f, "headers");
       }},
      {{"command"},
       "",
       [this, m, note](const Entry& f) {
         note(f, "command");
         ReadCommand(f, m);
       }},
      {{"queue_depth", "queue_depth_query"},
       "",
       query("queue_depth", &m->queue_depth_query)},
      {{"pending_jobs", "pending_jobs_query"},
       "",
       query("pending_jobs", &m->pending_jobs_query)},
      {{"utilization", "utilization_query"},
       "",
       query("utilization", &m->utilization_query)},
      {{"timeout"},
       "",
       [this, m](const Entry& f) {
         StoreInterval(f, absl::Milliseconds(1), &m->timeout);
       }},
  };
}

void Loader::CheckMetricsSource(const Entry& e, const MetricsSourceConfig& m,
                                const std::map<std::string, Site>& seen) {
  // Keys that belong to another source are mistakes, not no-ops.
  std::set<std::string> allowed;
  switch (m.type) {
    case MetricsSourceType::kFleet:
      allowed = {"source"};
      break;
    case MetricsSourceType::kHttpJson:
      allowed = {"source", "url", "headers"};
      if (!seen.contains("url"))
        r_.Error(e.site, "source 'http_json' needs a url");
      break;
    case MetricsSourceType::kCommand:
      allowed = {"source", "command"};
      if (!seen.contains("command"))
        r_.Error(e.site, "source 'command' needs a command");
      break;
    case MetricsSourceType::kPrometheus:
      allowed = {"source",      "url",          "headers",
                 "queue_depth", "pending_jobs", "utilization"};
      if (!seen.contains("url"))
        r_.Error(e.site, "source 'prometheus' needs a url");
      if (!seen.contains("queue_depth") && !seen.contains("pending_jobs") &&
          !seen.contains("utilization")) {
        r_.Error(e.site,
                 "source 'prometheus' needs at least one query: queue_depth, "
                 "pending_jobs or utilization");
      }
      break;
  }
  if (!seen.contains("source")) {
    r_.Error(e.site, "needs 'source': fleet, http_json, command or prometheus");
    return;
  }
  for (const auto& [key, site] : seen) {
    if (!allowed.contains(key)) {
      r_.Error(site, absl::StrCat("'", key, "' does not apply to source '",
                                  MetricsSourceTypeName(m.type), "'"));
    }
  }
}

void Loader::ReadMetricsSource(const Entry& e, MetricsSourceConfig* m) {
  if (e.value.IsNull() || !r_.Claim(e.slot, e.site)) return;
  std::map<std::string, Site> seen;
  r_.ReadMap(e.value, e.site, e.slot, MetricsSourceKeys(m, &seen));
  CheckMetricsSource(e, *m, seen);
}

// ------------------------------------------------ storage, logging, instances

void Loader::ReadStorage(const Entry& e) {
  StorageConfig& s = config_.storage;
  r_.ReadMap(
      e.value, e.site, "storage",
      {
          {{"backend"},
           "",
           [this, &s](const Entry& f) {
             Store(f,
                   ReadChoice<StorageBackend>(
                       r_, f, "storage backend",
                       {{"sqlite", StorageBackend::kSqlite},
                        {"memory", StorageBackend::kMemory},
                        {"postgres", StorageBackend::kPostgres}}),
                   &s.backend);
           }},
          {{"path"},
           "",
           [this, &s](const Entry& f) { Store(f, r_.String(f), &s.path); }},
          {{"dsn"},
           "",
           [this, &s](const Entry& f) { Store(f, r_.String(f), &s.dsn); }},
      });
}

void Loader::ReadHa(const Entry& e) {
  HaConfig& h = config_.ha;
  r_.ReadMap(e.value, e.site, "ha",
             {
                 {{"lease_duration"},
                  "",
                  [this, &h](const Entry& f) {
                    StoreInterval(f, absl::Seconds(1), &h.lease_duration);
                  }},
                 {{"replica_id"},
                  "",
                  [this, &h](const Entry& f) {
                    Store(f, r_.String(f), &h.replica_id);
                  }},
             });
}

void Loader::CheckStorage() {
  const StorageConfig& s = config_.storage;
  const std::string backend(StorageBackendName(s.backend));
  if (s.backend != StorageBackend::kSqlite && !s.path.empty()) {
    r_.Error(r_.Nearest("storage.path"),
             absl::StrCat("has no effect with backend '", backend, "'"));
  }
  if (s.backend != StorageBackend::kPostgres && !s.dsn.empty()) {
    r_.Error(r_.Nearest("storage.dsn"),
             absl::StrCat("has no effect with backend '", backend,
                          "' (it is for postgres)"));
  }
  if (s.backend == StorageBackend::kPostgres && s.dsn.empty()) {
    r_.Error(r_.Nearest("storage.backend"),
             "postgres needs storage.dsn (a libpq connection string, e.g. "
             "\"host=db1 dbname=navarch user=navarch\")");
  }
}

void Loader::ReadLogging(const Entry& e) {
  LoggingConfig& l = config_.logging;
  r_.ReadMap(e.value, e.site, "logging",
             {
                 {{"level"},
                  "",
                  [this, &l](const Entry& f) {
                    std::optional<std::string> s = r_.String(f);
                    if (!s) return;
                    absl::StatusOr<LogLevel> level = ParseLogLevel(*s);
                    if (!level.ok()) {
                      r_.Error(f.site, std::string(level.status().message()));
                      return;
                    }
                    Store(f, std::optional<LogLevel>(*level), &l.level);
                  }},
                 {{"format"},
                  "",
                  [this, &l](const Entry& f) {
                    std::optional<std::string> s = r_.String(f);
                    if (!s) return;
                    absl::StatusOr<LogFormat> format = ParseLogFormat(*s);
                    if (!format.ok()) {
                      r_.Error(f.site, std::string(format.status().message()));
                      return;
                    }
                    Store(f, std::optional<LogFormat>(*format), &l.format);
                  }},
             });
}

void Loader::ReadInstanceManager(const Entry& e) {
  InstanceManagerConfig& m = config_.instance_manager;
  auto interval = [this](absl::Duration* out) {
    return [this, out](const Entry& f) {
      StoreInterval(f, absl::Seconds(1), out);
    };
  };
  r_.ReadMap(
      e.value, e.site, "instance_manager",
      {
          {{"registration_timeout"}, "", interval(&m.registration_timeout)},
          {{"stale_check_interval"}, "", interval(&m.stale_check_interval)},
          {{"terminated_retention"}, "", interval(&m.terminated_retention)},
          {{"unknown_instances"},
           "",
           [this, &m](const Entry& f) {
             std::optional<bool> t =
                 ReadChoice<bool>(r_, f, "unknown_instances",
                                  {{"terminate", true}, {"report", false}});
             if (t) m.terminate_unknown = *t;
           }},
      });
}

// -------------------------------------------------------------- tls, auth

void Loader::ReadTls(const Entry& e) {
  if (e.value.IsNull()) return;
  TlsConfig& t = config_.server.tls;
  auto path = [this](std::string* out) {
    return [this, out](const Entry& f) { Store(f, NonEmptyString(f), out); };
  };
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 {{"cert_file"}, "", path(&t.cert_file)},
                 {{"key_file"}, "", path(&t.key_file)},
                 {{"client_ca_file"}, "", path(&t.client_ca_file)},
             });
  // Half a TLS setup would silently serve in the clear.
  if (t.cert_file.empty() != t.key_file.empty() ||
      (!t.client_ca_file.empty() && t.cert_file.empty())) {
    r_.Error(e.site, "needs both cert_file and key_file");
  }
}

void Loader::ReadHttpLimits(const Entry& e) {
  if (e.value.IsNull()) return;
  HttpLimitsConfig& h = config_.server.http;
  auto count = [this](int min, int* out) {
    return [this, min, out](const Entry& f) {
      Store(f, IntValue(f, min, 1'000'000), out);
    };
  };
  auto timeout = [this](absl::Duration* out) {
    return [this, out](const Entry& f) {
      StoreInterval(f, absl::Milliseconds(100), out);
    };
  };
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 {{"threads"}, "", count(1, &h.threads)},
                 {{"max_connections"}, "", count(1, &h.max_connections)},
                 {{"max_connections_per_client"},
                  "",
                  count(0, &h.max_connections_per_client)},
                 {{"head_timeout"}, "", timeout(&h.head_timeout)},
                 {{"body_timeout"}, "", timeout(&h.body_timeout)},
             });
}

void Loader::ReadAuth(const Entry& e) {
  AuthConfig& a = config_.auth;
  r_.ReadMap(
      e.value, e.site, "auth",
      {
          {{"tokens"},
           "",
           [this](const Entry& f) {
             std::set<std::string> names;
             for (const Entry& item : r_.ListItems(f.value, f.site, f.slot)) {
               ReadAuthToken(item, &names);
             }
           }},
          {{"protect_metrics"},
           "",
           [this, &a](const Entry& f) {
             Store(f, r_.Bool(f), &a.protect_metrics);
           }},
          {{"protect_probes"},
           "",
           [this, &a](const Entry& f) {
             Store(f, r_.Bool(f), &a.protect_probes);
           }},
          {{"node_token_key"},
           "",
           [this](const Entry& f) { ReadNodeTokenKey(f); }},
          {{"allow_shared_agent_tokens"},
           "",
           [this, &a](const Entry& f) {
             Store(f, r_.Bool(f), &a.allow_shared_agent_tokens);
           }},
      });
}

// Environment variable names as POSIX shells accept them.
bool ValidEnvName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

void Loader::ReadAuthToken(const Entry& e, std::set<std::string>* names) {
  if (!e.value.IsMap()) {
    r_.Error(e.site,
             "expected a mapping with name, token_env or token_file, "
             "and role");
    return;
  }
  AuthTokenConfig t;
  bool ok = true;
  bool role_written = false;
  std::optional<Site> name_site;
  r_.ReadMap(
      e.value, e.site, e.slot,
      {
          {{"name"},
           "",
           [&](const Entry& f) {
             std::optional<std::string> s = NonEmptyString(f);
             if (!s) {
               ok = false;
               return;
             }
             if (!ValidName(*s)) {
               r_.Error(f.site, NameRule("token", *s));
               ok = false;
               return;
             }
             name_site = f.site;
             t.name = *s;
           }},
          {{"token_env"},
           "",
           [&](const Entry& f) {
             std::optional<std::string> s = NonEmptyString(f);
             if (s && !ValidEnvName(*s)) {
               r_.Error(f.site, absl::StrCat("invalid environment variable "
                                             "name '",
                                             *s, "'"));
               s.reset();
             }
             if (!s) ok = false;
             Store(f, s, &t.token_env);
           }},
          {{"token_file"},
           "",
           [&](const Entry& f) {
             std::optional<std::string> s = NonEmptyString(f);
             if (!s) ok = false;
             Store(f, s, &t.token_file);
           }},
          {{"role"},
           "",
           [&](const Entry& f) {
             role_written = true;
             std::optional<AuthRole> role =
                 ReadChoice<AuthRole>(r_, f, "role",
                                      {{"viewer", AuthRole::kViewer},
                                       {"agent", AuthRole::kAgent},
                                       {"operator", AuthRole::kOperator}});
             if (!role) ok = false;
             Store(f, role, &t.role);
           }},
          // A secret written into the file would end up in version control
          // and backups; refuse it with the way out rather than "unknown key".
          {{"token", "value", "secret"},
           "",
           [&](const Entry& f) {
             r_.Error(f.key_site,
                      absl::StrCat("'", f.key,
                                   "': the secret does not belong in the "
                                   "configuration file; use token_env or "
                                   "token_file"));
             ok = false;
           }},
      });
  if (!ok) return;
  if (t.name.empty()) {
    r_.Error(e.site, "name is required");
    return;
  }
  if (t.token_env.empty() == t.token_file.empty()) {
    r_.Error(e.site, t.token_env.empty()
                         ? "needs token_env or token_file"
                         : "token_env and token_file are exclusive: keep one");
    return;
  }
  if (!role_written) {
    r_.Error(e.site, "role is required (viewer, agent, operator)");
    return;
  }
  if (!names->insert(t.name).second) {
    r_.Error(*name_site, absl::StrCat("token '", t.name, "' is defined twice"));
    return;
  }
  config_.auth.tokens.push_back(std::move(t));
}

// Where the node token key is: {key_env: VAR} or {key_file: PATH}. Read like
// a token's secret, under the name the messages use.
void Loader::ReadNodeTokenKey(const Entry& e) {
  if (!e.value.IsMap()) {
    r_.Error(e.site, "expected a mapping with key_env or key_file");
    return;
  }
  AuthTokenConfig k;
  k.name = "node_token_key";
  k.role = AuthRole::kAgent;
  bool ok = true;
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 {{"key_env"},
                  "",
                  [&](const Entry& f) {
                    std::optional<std::string> s = NonEmptyString(f);
                    if (s && !ValidEnvName(*s)) {
                      r_.Error(f.site,
                               absl::StrCat("invalid environment variable "
                                            "name '",
                                            *s, "'"));
                      s.reset();
                    }
                    if (!s) ok = false;
                    Store(f, s, &k.token_env);
                  }},
                 {{"key_file"},
                  "",
                  [&](const Entry& f) {
                    std::optional<std::string> s = NonEmptyString(f);
                    if (!s) ok = false;
                    Store(f, s, &k.token_file);
                  }},
             });
  if (!ok) return;
  if (k.token_env.empty() == k.token_file.empty()) {
    r_.Error(e.site, k.token_env.empty()
                         ? "needs key_env or key_file"
                         : "key_env and key_file are exclusive: keep one");
    return;
  }
  config_.auth.node_token_key = std::move(k);
}

// -------------------------------------------------------------- providers

void Loader::ReadProviders(const Entry& e) {
  for (const Entry& p : r_.MapEntries(e.value, e.site, "providers")) {
    if (!ValidName(p.key)) {
      r_.Error(p.key_site, NameRule("provider", p.key));
      continue;
    }
    if (!r_.ClaimName(p.slot, p.key_site,
                      absl::StrCat("provider '", p.key, "'"))) {
      continue;
    }
    ReadProvider(p.key, p);
  }
}

void Loader::ReadProvider(const std::string& name, const Entry& e) {
  ProviderDraft& d = providers_[name];
  d.config.name = name;
  d.site = Site{e.key_site.line, e.key_site.column, e.site.path};
  ProviderConfig& c = d.config;
  auto note = [&d](const Entry& f, absl::string_view canonical) {
    d.keys.push_back(
        SeenKey{std::string(canonical), f.key, f.key_site, f.site});
  };
  auto text = [this, note](absl::string_view canonical, std::string* out) {
    return [this, note, canonical, out](const Entry& f) {
      note(f, canonical);
      Store(f, r_.String(f), out);
    };
  };
  std::vector<KeySpec> keys = {
      {{"type"},
       "",
       [this, &d](const Entry& f) {
         d.type_written = true;
         d.type = ReadChoice<ProviderType>(r_, f, "provider type",
                                           {{"lambda", ProviderType::kLambda},
                                            {"gcp", ProviderType::kGcp},
                                            {"aws", ProviderType::kAws},
                                            {"fake", ProviderType::kFake},
                                            {"local", ProviderType::kLocal}});
       }},
      {{"api_key_env"}, "", text("api_key_env", &c.api_key_env)},
      {{"api_key_secret"}, "", text("api_key_secret", &c.api_key_secret)},
      {{"project"}, "", text("project", &c.project)},
      {{"zone"}, "", text("zone", &c.zone)},
      {{"credentials_file"}, "", text("credentials_file", &c.credentials_file)},
      {{"credentials_secret"},
       "",
       text("credentials_secret", &c.credentials_secret)},
      {{"region"}, "", text("region", &c.region)},
      {{"gpu_model"}, "", text("gpu_model", &c.gpu_model)},
      {{"agent_path"}, "", text("agent_path", &c.agent_path)},
      {{"gpu_count"},
       "",
       [this, note, &c](const Entry& f) {
         note(f, "gpu_count");
         Store(f, IntValue(f, 1, kMaxGpusPerInstance), &c.gpu_count);
       }},
      {{"keep_instances"},
       "",
       [this, note, &c](const Entry& f) {
         note(f, "keep_instances");
         Store(f, r_.Bool(f), &c.keep_instances);
       }},
  };
  for (KeySpec& k : CloudProviderKeys(d)) keys.push_back(std::move(k));
  for (KeySpec& k : GcpProviderKeys(d)) keys.push_back(std::move(k));
  r_.ReadMap(e.value, e.site, e.slot, keys);
}

std::vector<KeySpec> Loader::CloudProviderKeys(ProviderDraft& d) {
  ProviderConfig& c = d.config;
  auto note = [&d](const Entry& f, absl::string_view canonical) {
    d.keys.push_back(
        SeenKey{std::string(canonical), f.key, f.key_site, f.site});
  };
  auto text = [this, note](absl::string_view canonical, std::string* out) {
    return [this, note, canonical, out](const Entry& f) {
      note(f, canonical);
      Store(f, r_.String(f), out);
    };
  };
  // A key several clouds share is one key: it is stored for each of them,
  // and the provider of the entry's type reads its own.
  auto shared = [this, note](absl::string_view canonical,
                             std::vector<std::string*> outs) {
    return [this, note, canonical, outs](const Entry& f) {
      note(f, canonical);
      std::optional<std::string> v = r_.String(f);
      if (!v || !r_.Claim(f.slot, f.site)) return;
      for (std::string* out : outs) *out = *v;
    };
  };
  return {
      {{"endpoint"},
       "",
       shared("endpoint",
              {&c.lambda.endpoint, &c.aws_endpoint, &c.gcp.endpoint})},
      {{"ca_file"}, "", shared("ca_file", {&c.lambda.ca_file, &c.gcp.ca_file})},
      {{"spot"},
       "",
       [this, note, &c](const Entry& f) {
         note(f, "spot");
         std::optional<bool> v = r_.Bool(f);
         if (!v || !r_.Claim(f.slot, f.site)) return;
         c.aws_spot = *v;
         c.gcp.spot = *v;
       }},
      // lambda
      {{"api_key_file"}, "", text("api_key_file", &c.lambda.api_key_file)},
      {{"ssh_key_name"}, "", text("ssh_key_name", &c.lambda.ssh_key_name)},
      // aws (provider/aws/)
      {{"image_id"}, "", text("image_id", &c.aws_image_id)},
      {{"key_name"}, "", text("key_name", &c.aws_key_name)},
      {{"instance_profile"},
       "",
       text("instance_profile", &c.aws_instance_profile)},
      {{"profile"}, "", text("profile", &c.aws_profile)},
      {{"subnet_ids"},
       "",
       [this, note, &c](const Entry& f) {
         note(f, "subnet_ids");
         Store(f, r_.StringMap(f), &c.aws_subnet_ids);
       }},
      {{"security_group_ids"},
       "",
       [this, note, &c](const Entry& f) {
         note(f, "security_group_ids");
         Store(f, r_.StringList(f), &c.aws_security_group_ids);
       }},
  };
}

std::vector<KeySpec> Loader::GcpProviderKeys(ProviderDraft& d) {
  ProviderConfig::Gcp& g = d.config.gcp;
  auto note = [&d](const Entry& f, absl::string_view canonical) {
    d.keys.push_back(
        SeenKey{std::string(canonical), f.key, f.key_site, f.site});
  };
  auto text = [this, note](absl::string_view canonical, std::string* out) {
    return [this, note, canonical, out](const Entry& f) {
      note(f, canonical);
      Store(f, r_.String(f), out);
    };
  };
  auto count = [this, note](absl::string_view canonical, int max, int* out) {
    return [this, note, canonical, max, out](const Entry& f) {
      note(f, canonical);
      Store(f, IntValue(f, 1, max), out);
    };
  };
  return {
      {{"image"}, "", text("image", &g.image)},
      {{"network"}, "", text("network", &g.network)},
      {{"subnetwork"}, "", text("subnetwork", &g.subnetwork)},
      {{"service_account"}, "", text("service_account", &g.service_account)},
      {{"accelerator_type"}, "", text("accelerator_type", &g.accelerator_type)},
      {{"accelerator_count"},
       "",
       count("accelerator_count", 8, &g.accelerator_count)},
      {{"boot_disk_gb"}, "", count("boot_disk_gb", 65536, &g.boot_disk_gb)},
  };
}

// ------------------------------------------------------------------ pools

void Loader::ReadPools(const Entry& e) {
  if (e.value.IsSequence()) {
    // Upstream's guides write pools as a list of `- name: ...` items; each
    // becomes the same entry as the map form.
    for (const Entry& item : r_.ListItems(e.value, e.site, "pools")) {
      if (!item.value.IsMap()) {
        r_.Error(item.site, absl::StrCat("expected a mapping with a name"));
        continue;
      }
      std::optional<std::string> name;
      for (auto it = item.value.begin(); it != item.value.end(); ++it) {
        if (it->first.IsScalar() && it->first.Scalar() == "name") {
          if (it->second.IsScalar()) {
            name = it->second.Scalar();
          }
          break;
        }
      }
      if (!name) {
        r_.Error(item.site, "name is required");
        continue;
      }
      const Site pool_site{item.site.line, item.site.column,
                           absl::StrCat("pools.", *name)};
      ReadPool(*name, item.value, pool_site, pool_site);
    }
    return;
  }
  for (const Entry& p : r_.MapEntries(e.value, e.site, "pools")) {
    ReadPool(p.key, p.value, p.site,
             Site{p.key_site.line, p.key_site.column, p.site.path});
  }
}

void Loader::ReadPool(const std::string& name, const YAML::Node& node,
                      const Site& value_site, const Site& pool_site) {
  if (!ValidName(name)) {
    r_.Error(pool_site, NameRule("pool", name));
    return;
  }
  const std::string slot = absl::StrCat("pools.", name);
  if (!r_.ClaimName(slot, pool_site, absl::StrCat("pool '", name, "'"))) {
    return;
  }
  PoolDraft& d = pools_[name];
  d.pool.name = name;
  d.site = pool_site;
  d.slot = slot;
  r_.ReadMap(node, Site{value_site.line, value_site.column, pool_site.path},
             slot, PoolKeys(d));
}

std::vector<KeySpec> Loader::PoolKeys(PoolDraft& d) {
  PoolConfig& p = d.pool;
  std::vector<KeySpec> keys = {
      {{"name"},
       "",
       [this, &p](const Entry& f) {
         std::optional<std::string> s = r_.String(f);
         if (s && *s != p.name) {
           r_.Error(f.site, absl::StrCat("'", *s,
                                         "' does not match the pool's "
                                         "key '",
                                         p.name, "'"));
         }
       }},
      {{"provider"},
       "",
       [this, &d](const Entry& f) {
         if (f.value.IsNull()) return;  // Reported as missing.
         d.provider_written = true;
         Store(f, NonEmptyString(f), &d.provider);
       }},
      {{"providers"},
       "",
       [this, &d](const Entry& f) { ReadPoolProviders(f, &d); }},
      {{"strategy"},
       "",
       [this, &p](const Entry& f) {
         Store(f,
               ReadChoice<SelectionStrategy>(
                   r_, f, "strategy",
                   {{"priority", SelectionStrategy::kPriority},
                    {"cost", SelectionStrategy::kCost},
                    {"availability", SelectionStrategy::kAvailability},
                    {"round-robin", SelectionStrategy::kRoundRobin}}),
               &p.strategy);
       }},
      {{"instance_type"},
       "",
       [this, &d](const Entry& f) {
         if (f.value.IsNull()) return;  // Reported as missing.
         d.instance_type_written = true;
         Store(f, NonEmptyString(f), &d.pool.instance_type);
       }},
      {{"region"},
       "",
       [this, &p](const Entry& f) { Store(f, r_.String(f), &p.region); }},
      {{"zones"},
       "",
       [this, &p](const Entry& f) { Store(f, r_.StringList(f), &p.zones); }},
      {{"labels"},
       "",
       [this, &p](const Entry& f) {
         std::optional<std::map<std::string, std::string>> labels =
             r_.StringMap(f);
         if (labels && labels->count("") > 0) {
           r_.Error(f.site, "label keys must not be empty");
           return;
         }
         Store(f, std::move(labels), &p.labels);
       }},
      {{"setup_commands"},
       "",
       [this, &p](const Entry& f) {
         Store(f, r_.StringList(f), &p.setup_commands);
       }},
      {{"user_data"},
       "",
       [this, &p](const Entry& f) { Store(f, r_.String(f), &p.user_data); }},
      {{"user_data_file"},
       "",
       [this, &p](const Entry& f) {
         Store(f, r_.String(f), &p.user_data_file);
       }},
      {{"file_uploads"},
       "",
       [this, &d](const Entry& f) { ReadFileUploads(f, &d); }},
      {{"metrics", "metrics_source"},
       "",
       [this, &p](const Entry& f) { ReadMetricsSource(f, &p.metrics); }},
  };
  // min_nodes, max_nodes, cooldown and autoscaling: directly or in the
  // `scaling:` block of upstream's guides, which maps to the same settings.
  for (KeySpec& k : ScalingKeys(&d.own, &d)) keys.push_back(std::move(k));
  keys.push_back({{"scaling"}, "", [this, &d](const Entry& f) {
                    r_.ReadMap(f.value, f.site, d.slot,
                               ScalingKeys(&d.own, &d));
                  }});
  for (KeySpec& k : InheritableKeys(&d.own)) {
    const std::string& n = k.names.front();
    if (n == "cooldown" || n == "autoscaling") continue;  // In ScalingKeys.
    keys.push_back(std::move(k));
  }
  return keys;
}

void Loader::ReadPoolProviders(const Entry& e, PoolDraft* d) {
  if (e.value.IsNull()) return;  // Reported as missing.
  d->providers_written = true;
  std::vector<PoolProvider> list;
  std::set<std::string> names;
  bool ok = true;
  for (const Entry& item : r_.ListItems(e.value, e.site, e.slot)) {
    PoolProvider entry;
    bool has_name = false;
    r_.ReadMap(item.value, item.site, item.slot,
               {
                   {{"name"},
                    "",
                    [&](const Entry& f) {
                      std::optional<std::string> s = NonEmptyString(f);
                      if (!s || !r_.Claim(f.slot, f.site)) return;
                      has_name = true;
                      entry.name = *s;
                      if (!names.insert(*s).second) {
                        r_.Error(f.site, absl::StrCat("provider '", *s,
                                                      "' is listed twice"));
                        ok = false;
                      }
                    }},
                   {{"priority"},
                    "",
                    [&](const Entry& f) {
                      Store(f, IntValue(f, -1000000, 1000000), &entry.priority);
                    }},
                   {{"weight"},
                    "",
                    [&](const Entry& f) {
                      // Upstream treats a weight <= 0 as 1; negative is a
                      // mistake.
                      std::optional<int> w = IntValue(f, 0, 1000000);
                      if (w && *w == 0) w = 1;
                      Store(f, w, &entry.weight);
                    }},
                   {{"regions"},
                    "",
                    [&](const Entry& f) {
                      Store(f, r_.StringList(f), &entry.regions);
                    }},
                   {{"instance_type"},
                    "",
                    [&](const Entry& f) {
                      Store(f, NonEmptyString(f), &entry.instance_type);
                    }},
               });
    if (!item.value.IsMap()) {
      if (item.value.IsNull()) r_.Error(item.site, "expected a mapping");
      ok = false;
      continue;
    }
    if (!has_name) {
      if (!r_.IsSet(absl::StrCat(item.slot, ".name"))) {
        r_.Error(item.site, "name is required");
      }
      ok = false;
      continue;
    }
    list.push_back(std::move(entry));
  }
  if (!r_.Claim(e.slot, e.site)) return;
  if (ok && list.empty()) {
    r_.Error(e.site, "needs at least one provider");
    return;
  }
  if (ok) d->providers = std::move(list);
}

void Loader::ReadFileUploads(const Entry& e, PoolDraft* d) {
  if (e.value.IsNull() || !r_.Claim(e.slot, e.site)) return;
  for (const Entry& item : r_.ListItems(e.value, e.site, e.slot)) {
    FileUpload upload;
    r_.ReadMap(item.value, item.site, item.slot,
               {
                   {{"local"},
                    "",
                    [&](const Entry& f) {
                      Store(f, NonEmptyString(f), &upload.local);
                    }},
                   {{"remote"},
                    "",
                    [&](const Entry& f) {
                      Store(f, NonEmptyString(f), &upload.remote);
                    }},
                   {{"mode"},
                    "",
                    [&](const Entry& f) {
                      std::optional<std::string> s = r_.String(f);
                      if (!s) return;
                      uint32_t mode = 0;
                      bool octal = s->size() >= 3 && s->size() <= 4;
                      for (char c : *s) {
                        if (c < '0' || c > '7') octal = false;
                        mode = mode * 8 + static_cast<uint32_t>(c - '0');
                      }
                      if (!octal) {
                        r_.Error(f.site,
                                 absl::StrCat("expected an octal file "
                                              "mode such as 0644, got '",
                                              *s, "'"));
                        return;
                      }
                      Store(f, std::optional<uint32_t>(mode), &upload.mode);
                    }},
               });
    if (!item.value.IsMap()) {
      if (item.value.IsNull()) r_.Error(item.site, "expected a mapping");
      continue;
    }
    if (upload.local.empty() || upload.remote.empty()) {
      if (!r_.IsSet(item.slot + ".local") && !r_.IsSet(item.slot + ".remote")) {
        r_.Error(item.site, "local and remote are required");
      } else if (!r_.IsSet(item.slot + ".local") && !upload.remote.empty()) {
        r_.Error(item.site, "local is required");
      } else if (!r_.IsSet(item.slot + ".remote") && !upload.local.empty()) {
        r_.Error(item.site, "remote is required");
      }
      continue;
    }
    d->pool.file_uploads.push_back(std::move(upload));
  }
}

// Settings a pool may set itself or inherit from `defaults:`.
std::vector<KeySpec> Loader::InheritableKeys(PoolDefaults* d) {
  auto timeout = [this](std::optional<absl::Duration>* out) {
    return [this, out](const Entry& f) {
      StoreInterval(f, absl::Seconds(1), out);
    };
  };
  return {
      {{"ssh_keys", "ssh_key_names"},
       "",
       [this, d](const Entry& f) { Store(f, r_.StringList(f), &d->ssh_keys); }},
      {{"ssh_user"},
       "",
       [this, d](const Entry& f) {
         Store(f, NonEmptyString(f), &d->ssh_user);
       }},
      {{"ssh_private_key_path"},
       "",
       [this, d](const Entry& f) {
         Store(f, r_.String(f), &d->ssh_private_key_path);
       }},
      {{"health"}, "", [this, d](const Entry& f) { ReadHealth(f, d); }},
      {{"cooldown", "cooldown_period"},
       "",
       [this, d](const Entry& f) {
         StoreInterval(f, absl::ZeroDuration(), &d->cooldown);
       }},
      {{"autoscaling", "autoscaler"},
       "",
       [this, d](const Entry& f) { ReadAutoscalingKey(f, &d->autoscaling); }},
      {{"ip_wait_timeout"}, "", timeout(&d->ip_wait_timeout)},
      {{"ssh_timeout"}, "", timeout(&d->ssh_timeout)},
      {{"ssh_connect_timeout"}, "", timeout(&d->ssh_connect_timeout)},
      {{"command_timeout"}, "", timeout(&d->command_timeout)},
      {{"ssh_port"},
       "",
       [this, d](const Entry& f) {
         Store(f, IntValue(f, 1, 65535), &d->ssh_port);
       }},
      {{"ssh_host_key_policy"},
       "",
       [this, d](const Entry& f) {
         Store(f,
               ReadChoice<SshHostKeyPolicy>(
                   r_, f, "ssh_host_key_policy",
                   {{"known_hosts", SshHostKeyPolicy::kKnownHosts},
                    {"tofu", SshHostKeyPolicy::kTofu},
                    {"insecure", SshHostKeyPolicy::kInsecure}}),
               &d->ssh_host_key_policy);
       }},
      {{"ssh_known_hosts_file"},
       "",
       [this, d](const Entry& f) {
         Store(f, NonEmptyString(f), &d->ssh_known_hosts_file);
       }},
  };
}

// The keys of a `scaling:` block. Limits exist only per pool (`pool` null
// means the block sits under defaults).
std::vector<KeySpec> Loader::ScalingKeys(PoolDefaults* d, PoolDraft* pool) {
  std::vector<KeySpec> keys = {
      {{"cooldown", "cooldown_period"},
       "",
       [this, d](const Entry& f) {
         StoreInterval(f, absl::ZeroDuration(), &d->cooldown);
       }},
      {{"autoscaling", "autoscaler"},
       "",
       [this, d](const Entry& f) { ReadAutoscalingKey(f, &d->autoscaling); }},
  };
  if (pool != nullptr) {
    keys.push_back({{"min_nodes"}, "", [this, pool](const Entry& f) {
                      Store(f, IntValue(f, 0, kMaxNodes), &pool->min_nodes);
                    }});
    keys.push_back({{"max_nodes"}, "", [this, pool](const Entry& f) {
                      if (f.value.IsNull()) return;  // Reported as missing.
                      pool->max_nodes_written = true;
                      Store(f, IntValue(f, 1, kMaxNodes), &pool->max_nodes);
                    }});
  }
  return keys;
}

std::vector<KeySpec> Loader::DefaultsKeys() {
  std::vector<KeySpec> keys = InheritableKeys(&defaults_);
  keys.push_back({{"scaling"}, "", [this](const Entry& f) {
                    r_.ReadMap(f.value, f.site, "defaults",
                               ScalingKeys(&defaults_, nullptr));
                  }});
  // Upstream's `global.agent` block: what agents are told. These are the
  // server's settings, so they share its slots.
  keys.push_back({{"agent"}, "", [this](const Entry& f) {
                    r_.ReadMap(f.value, f.site, "server", AgentKeys(true));
                  }});
  return keys;
}

void Loader::ReadHealth(const Entry& e, PoolDefaults* d) {
  if (e.value.IsNull() || !r_.Claim(e.slot, e.site)) return;
  r_.ReadMap(e.value, e.site, e.slot,
             {
                 // `unhealthy_threshold` is the spelling of upstream's guides.
                 {{"unhealthy_after", "unhealthy_threshold"},
                  "",
                  [this, d](const Entry& f) {
                    std::optional<int> n = IntValue(f, 0, 1000);
                    if (!n || !r_.Claim(f.slot, f.site)) return;
                    if (*n > 0) d->unhealthy_after = *n;  // 0: the default.
                  }},
                 {{"auto_replace"},
                  "",
                  [this, d](const Entry& f) {
                    Store(f, r_.Bool(f), &d->auto_replace);
                  }},
                 {{"max_concurrent_replacements"},
                  "",
                  [this, d](const Entry& f) {
                    Store(f, IntValue(f, 1, 1000),
                          &d->max_concurrent_replacements);
                  }},
                 {{"max_unhealthy_percent"},
                  "",
                  [this, d](const Entry& f) {
                    Store(f, IntValue(f, 0, 100), &d->max_unhealthy_percent);
                  }},
                 {{"drain_timeout"},
                  "",
                  [this, d](const Entry& f) {
                    Store(f, r_.Duration(f), &d->drain_timeout);
                  }},
             });
}

// ------------------------------------------------------------ autoscaling

void Loader::ReadAutoscalingKey(const Entry& e,
                                std::optional<AutoscalingConfig>* out) {
  if (e.value.IsNull() || !r_.Claim(e.slot, e.site)) return;
  std::optional<AutoscalingConfig> a = ReadAutoscaling(e);
  if (a) *out = std::move(*a);
}

// Keys that hold a number or a choice.
std::vector<KeySpec> Loader::AutoscalerScalarKeys(AutoscalerDraft& d) {
  AutoscalingConfig& a = d.config;
  auto percent = [this, &d](absl::string_view canonical, int* out) {
    return [this, &d, canonical, out](const Entry& f) {
      d.Note(f, canonical);
      std::optional<int> v = IntValue(f, 0, 100);
      if (!v) d.ok = false;
      Store(f, v, out);
    };
  };
  return {
      {{"type"},
       "",
       [this, &d](const Entry& f) {
         d.type_written = true;
         d.type = ReadChoice<AutoscalerType>(
             r_, f, "autoscaler type",
             {{"reactive", AutoscalerType::kReactive},
              {"queue", AutoscalerType::kQueue},
              {"scheduled", AutoscalerType::kScheduled},
              {"predictive", AutoscalerType::kPredictive},
              {"composite", AutoscalerType::kComposite}});
       }},
      // `*_threshold` is the spelling of upstream's guides.
      {{"scale_up_at", "scale_up_threshold"},
       "",
       percent("scale_up_at", &a.scale_up_at)},
      {{"scale_down_at", "scale_down_threshold"},
       "",
       percent("scale_down_at", &a.scale_down_at)},
      {{"jobs_per_node"},
       "",
       [this, &d](const Entry& f) {
         d.Note(f, "jobs_per_node");
         Store(f, IntValue(f, 1, kNoMax), &d.config.jobs_per_node);
       }},
      {{"lookback_window"},
       "",
       [this, &d](const Entry& f) {
         d.Note(f, "lookback_window");
         Store(f, IntValue(f, 1, 100000), &d.config.lookback_window);
       }},
      {{"growth_factor"},
       "",
       [this, &d](const Entry& f) {
         d.Note(f, "growth_factor");
         std::optional<double> g = r_.Double(f, 0, 100);
         if (g && *g == 0) {
           r_.Error(f.site, "must be > 0, got 0");
           return;
         }
         Store(f, g, &d.config.growth_factor);
       }},
      {{"mode"},
       "",
       [this, &d](const Entry& f) {
         d.Note(f, "mode");
         Store(f,
               ReadChoice<CompositeMode>(r_, f, "composite mode",
                                         {{"max", CompositeMode::kMax},
                                          {"min", CompositeMode::kMin},
                                          {"avg", CompositeMode::kAvg}}),
               &d.config.mode);
       }},
  };
}

// Keys that hold lists: schedule windows and nested autoscalers.
std::vector<KeySpec> Loader::AutoscalerListKeys(AutoscalerDraft& d) {
  auto sub = [this, &d](const Entry& f) -> std::optional<AutoscalingConfig> {
    std::optional<AutoscalingConfig> child = ReadAutoscaling(f);
    if (!child) d.ok = false;
    return child;
  };
  return {
      {{"schedule"},
       "",
       [this, &d](const Entry& f) {
         d.Note(f, "schedule");
         for (const Entry& item : r_.ListItems(f.value, f.site, f.slot)) {
           std::optional<ScheduleWindow> w = ReadWindow(item);
           if (w) {
             d.config.schedule.push_back(std::move(*w));
           } else {
             d.ok = false;
           }
         }
       }},
      {{"fallback"},
       "",
       [&d, sub](const Entry& f) {
         d.Note(f, "fallback");
         if (f.value.IsNull()) return;
         if (std::optional<AutoscalingConfig> child = sub(f)) {
           d.config.fallback.push_back(std::move(*child));
         }
       }},
      // `strategies:` is the spelling of upstream's concepts page.
      {{"autoscalers", "strategies"},
       "",
       [this, &d, sub](const Entry& f) {
         d.Note(f, "autoscalers");
         for (const Entry& item : r_.ListItems(f.value, f.site, f.slot)) {
           if (std::optional<AutoscalingConfig> child = sub(item)) {
             d.config.autoscalers.push_back(std::move(*child));
           }
         }
       }},
  };
}

// Keys that do not apply to the type are errors; false when there were any.
bool Loader::CheckAutoscalerKeys(AutoscalerDraft& d) {
  for (const SeenKey& k : d.seen) {
    if ((AutoscalerKeyTypes(k.canonical) & Bit(d.config.type)) == 0) {
      r_.Error(
          k.key_site,
          absl::StrCat("'", k.written, "' does not apply to autoscaler type '",
                       AutoscalerTypeName(d.config.type), "'"));
      d.ok = false;
    }
  }
  return d.ok;
}

bool Loader::CheckAutoscaler(const Entry& e, const AutoscalerDraft& d) {
  const AutoscalingConfig& a = d.config;
  switch (a.type) {
    case AutoscalerType::kReactive: {
      if (a.scale_down_at < a.scale_up_at) return true;
      const Site* down_site = d.ValueSite("scale_down_at");
      const Site* up_site = d.ValueSite("scale_up_at");
      if (down_site != nullptr) {
        r_.Error(*down_site, absl::StrCat("scale_down_at (", a.scale_down_at,
                                          ") must be below scale_up_at (",
                                          a.scale_up_at, ")"));
      } else {
        r_.Error(up_site != nullptr ? *up_site : e.site,
                 absl::StrCat("scale_up_at (", a.scale_up_at,
                              ") must be above scale_down_at (",
                              a.scale_down_at, ")"));
      }
      return false;
    }
    case AutoscalerType::kScheduled:
      if (!a.schedule.empty()) return true;
      r_.Error(e.site,
               "a scheduled autoscaler needs at least one window in schedule");
      return false;
    case AutoscalerType::kComposite:
      if (!a.autoscalers.empty()) return true;
      r_.Error(e.site,
               "a composite autoscaler needs at least one entry in "
               "autoscalers");
      return false;
    default:
      return true;
  }
}

std::optional<AutoscalingConfig> Loader::ReadAutoscaling(const Entry& e) {
  if (!e.value.IsMap()) {
    r_.Error(e.site, e.value.IsNull() ? "expected a mapping with a type"
                                      : "expected a mapping");
    return std::nullopt;
  }
  AutoscalerDraft d;
  std::vector<KeySpec> keys = AutoscalerScalarKeys(d);
  for (KeySpec& k : AutoscalerListKeys(d)) keys.push_back(std::move(k));
  const bool readable = r_.ReadMap(e.value, e.site, e.slot, keys);
  if (!d.type) {
    if (readable && !d.type_written) {
      r_.Error(e.site,
               "type is required (reactive, queue, scheduled, "
               "predictive, composite)");
    }
    return std::nullopt;
  }
  d.config.type = *d.type;
  if (!CheckAutoscalerKeys(d) || !CheckAutoscaler(e, d)) return std::nullopt;
  return std::move(d.config);
}

std::optional<ScheduleWindow> Loader::ReadWindow(const Entry& e) {
  if (!e.value.IsMap()) {
    r_.Error(e.site,
             "expected a mapping with days, start, end, min_nodes and "
             "max_nodes");
    return std::nullopt;
  }
  ScheduleWindow w;
  bool ok = true;
  bool max_written = false;
  std::optional<Site> start_site;
  std::optional<Site> min_site;
  auto hour = [&](int* out, std::optional<Site>* site) {
    return [&, out, site](const Entry& f) {
      std::optional<int> h = IntValue(f, 0, 24);
      if (!h) ok = false;
      if (site != nullptr) *site = f.site;
      Store(f, h, out);
    };
  };
  r_.ReadMap(
      e.value, e.site, e.slot,
      {
          {{"days"},
           "",
           [&](const Entry& f) {
             for (const Entry& item : r_.ListItems(f.value, f.site, f.slot)) {
               std::optional<absl::Weekday> day;
               if (item.value.IsScalar()) day = ParseDay(item.value.Scalar());
               if (!day) {
                 r_.Error(item.site,
                          absl::StrCat(
                              "unknown day ",
                              item.value.IsScalar()
                                  ? absl::StrCat("'", item.value.Scalar(), "'")
                                  : std::string("(not a name)"),
                              " (monday..sunday or mon..sun)"));
                 ok = false;
                 continue;
               }
               if (std::find(w.days.begin(), w.days.end(), *day) ==
                   w.days.end()) {
                 w.days.push_back(*day);
               }
             }
           }},
          // `start_hour`/`end_hour` are the spelling of upstream's guides.
          {{"start", "start_hour"}, "", hour(&w.start, &start_site)},
          {{"end", "end_hour"}, "", hour(&w.end, nullptr)},
          {{"min_nodes"},
           "",
           [&](const Entry& f) {
             min_site = f.site;
             std::optional<int> n = IntValue(f, 0, kMaxNodes);
             if (!n) ok = false;
             Store(f, n, &w.min_nodes);
           }},
          {{"max_nodes"},
           "",
           [&](const Entry& f) {
             max_written = true;
             std::optional<int> n = IntValue(f, 0, kMaxNodes);
             if (!n) ok = false;
             Store(f, n, &w.max_nodes);
           }},
      });
  if (!ok) return std::nullopt;
  if (!max_written) {
    r_.Error(e.site, "max_nodes is required");
    return std::nullopt;
  }
  if (w.start >= w.end) {
    r_.Error(start_site ? *start_site : e.site,
             absl::StrCat("start (", w.start, ") must be before end (", w.end,
                          "); split a window that crosses midnight in two"));
    return std::nullopt;
  }
  if (w.min_nodes > w.max_nodes) {
    r_.Error(min_site ? *min_site : e.site,
             absl::StrCat("min_nodes (", w.min_nodes,
                          ") cannot exceed max_nodes (", w.max_nodes, ")"));
    return std::nullopt;
  }
  return w;
}

// ------------------------------------------------- defaults and validation

void Loader::Finish() {
  FinishProviders();
  for (auto& [name, draft] : pools_) FinishPool(draft);
  FinishServer();
  config_.defaults = defaults_;
}

void Loader::FinishProviders() {
  for (auto& [name, d] : providers_) {
    if (!d.type) {
      if (d.type_written) continue;  // Reported already.
      // Upstream's guides name providers after their type and leave `type`
      // out (`providers: {fake: {gpu_count: 8}}`): the name is the type then.
      d.type = TypeNamed(name);
      if (!d.type) {
        r_.Error(d.site, "type is required");
        continue;
      }
    }
    ProviderConfig& c = d.config;
    c.type = *d.type;
    bool ok = true;
    for (const SeenKey& k : d.keys) {
      const std::vector<ProviderType> types = ProviderKeyTypes(k.canonical);
      if (std::find(types.begin(), types.end(), c.type) == types.end()) {
        r_.Error(k.key_site, absl::StrCat("'", k.written,
                                          "' does not apply to provider type '",
                                          ProviderTypeName(c.type), "'"));
        ok = false;
      }
    }
    if (c.type == ProviderType::kGcp && c.project.empty()) {
      r_.Error(d.site, "project is required for gcp providers");
      ok = false;
    }
    // lambda (issue 16)
    if (c.type == ProviderType::kLambda && !c.lambda.endpoint.empty() &&
        !absl::StartsWith(c.lambda.endpoint, "https://") &&
        !absl::StartsWith(c.lambda.endpoint, "http://")) {
      r_.Error(d.site, "endpoint must be an http:// or https:// URL");
      ok = false;
    }
    ApplyProviderDefaults(&c);
    if (ok) config_.providers[name] = c;
  }
}

void Loader::FinishPool(PoolDraft& d) {
  PoolConfig& p = d.pool;
  const std::string& slot = d.slot;
  auto at = [&](absl::string_view key) {
    return r_.Nearest(absl::StrCat(slot, ".", key));
  };

  // Providers: exactly one of the two forms, each naming defined providers.
  if (d.provider_written && d.providers_written) {
    r_.Error(at("providers"), "cannot specify both provider and providers");
  } else if (!d.provider_written && !d.providers_written) {
    r_.Error(d.site, "must specify provider or providers");
  } else if (d.provider) {
    p.providers = {PoolProvider{*d.provider}};
    CheckProviderReference(*d.provider, at("provider"));
  } else if (d.providers) {
    p.providers = *d.providers;
    for (size_t i = 0; i < p.providers.size(); ++i) {
      CheckProviderReference(
          p.providers[i].name,
          r_.Nearest(absl::StrCat(slot, ".providers[", i, "].name")));
    }
  }

  if (!d.instance_type_written) r_.Error(d.site, "instance_type is required");

  // Limits.
  if (!d.max_nodes_written) {
    r_.Error(d.site, "max_nodes is required");
  }
  if (d.min_nodes) p.min_nodes = *d.min_nodes;
  if (d.max_nodes) p.max_nodes = *d.max_nodes;
  if (d.min_nodes && d.max_nodes && *d.min_nodes > *d.max_nodes) {
    r_.Error(at("min_nodes"),
             absl::StrCat("min_nodes (", *d.min_nodes,
                          ") cannot exceed max_nodes (", *d.max_nodes, ")"));
  }

  InheritPoolSettings(d.own, p);
  CheckPoolSsh(p, at);
  CheckPoolTemplates(p, at);

  // The pool label is how nodes are counted into their pool.
  auto label = p.labels.find("pool");
  if (label != p.labels.end() && label->second != p.name) {
    r_.Error(at("labels"), absl::StrCat("label 'pool' is reserved: it is "
                                        "always the pool name '",
                                        p.name, "'"));
  }
  p.labels["pool"] = p.name;

  config_.pools[p.name] = p;
}

// Inherited settings: the pool's own, else defaults, else built in.
void Loader::InheritPoolSettings(const PoolDefaults& own, PoolConfig& p) {
  const PoolDefaults& def = defaults_;
  auto pick = [](const auto& mine, const auto& theirs, auto* out) {
    if (mine) {
      *out = *mine;
    } else if (theirs) {
      *out = *theirs;
    }
  };
  pick(own.ssh_keys, def.ssh_keys, &p.ssh_keys);
  pick(own.ssh_user, def.ssh_user, &p.ssh_user);
  pick(own.ssh_private_key_path, def.ssh_private_key_path,
       &p.ssh_private_key_path);
  pick(own.unhealthy_after, def.unhealthy_after, &p.health.unhealthy_after);
  pick(own.auto_replace, def.auto_replace, &p.health.auto_replace);
  pick(own.max_concurrent_replacements, def.max_concurrent_replacements,
       &p.health.max_concurrent_replacements);
  pick(own.max_unhealthy_percent, def.max_unhealthy_percent,
       &p.health.max_unhealthy_percent);
  pick(own.drain_timeout, def.drain_timeout, &p.health.drain_timeout);
  pick(own.cooldown, def.cooldown, &p.cooldown);
  pick(own.ip_wait_timeout, def.ip_wait_timeout, &p.ip_wait_timeout);
  pick(own.ssh_timeout, def.ssh_timeout, &p.ssh_timeout);
  pick(own.ssh_connect_timeout, def.ssh_connect_timeout,
       &p.ssh_connect_timeout);
  pick(own.command_timeout, def.command_timeout, &p.command_timeout);
  pick(own.ssh_port, def.ssh_port, &p.ssh_port);
  pick(own.ssh_host_key_policy, def.ssh_host_key_policy,
       &p.ssh_host_key_policy);
  pick(own.ssh_known_hosts_file, def.ssh_known_hosts_file,
       &p.ssh_known_hosts_file);
  p.autoscaling = own.autoscaling ? own.autoscaling : def.autoscaling;
}

void Loader::CheckPoolSsh(const PoolConfig& p,
                          const std::function<Site(absl::string_view)>& at) {
  if (!p.setup_commands.empty() &&
      p.ssh_host_key_policy == SshHostKeyPolicy::kKnownHosts &&
      p.ssh_known_hosts_file.empty()) {
    r_.Error(at("ssh_host_key_policy"),
             "ssh_host_key_policy known_hosts needs ssh_known_hosts_file");
  }
  if (p.ssh_private_key_path.empty()) {
    if (!p.setup_commands.empty()) {
      r_.Error(at("setup_commands"),
               "ssh_private_key_path is required when "
               "setup_commands are configured");
    } else if (!p.file_uploads.empty()) {
      r_.Error(at("file_uploads"),
               "ssh_private_key_path is required when "
               "file_uploads are configured");
    }
  }
}

void Loader::CheckPoolTemplates(
    const PoolConfig& p, const std::function<Site(absl::string_view)>& at) {
  if (!p.user_data.empty() && !p.user_data_file.empty()) {
    r_.Error(at("user_data_file"),
             "cannot specify both user_data and user_data_file");
  }
  auto check = [&](const std::string& text, const Site& site,
                   const std::string& what) {
    absl::StatusOr<std::vector<std::string>> used =
        TemplateVariables(text, BootstrapTemplateVariables());
    if (!used.ok()) {
      r_.Error(site, absl::StrCat(what, used.status().message()));
    }
  };
  if (!p.user_data.empty()) check(p.user_data, at("user_data"), "");
  for (size_t i = 0; i < p.setup_commands.size(); ++i) {
    check(p.setup_commands[i], at("setup_commands"),
          absl::StrCat("command ", i + 1, ": "));
  }
}

void Loader::CheckProviderReference(const std::string& name, const Site& site) {
  if (providers_.count(name) > 0) return;
  const std::optional<ProviderType> type = TypeNamed(name);
  if (!type) {
    r_.Error(site, absl::StrCat("unknown provider '", name, "'"));
    return;
  }
  if (*type == ProviderType::kGcp) {
    // Cannot work with defaults alone.
    r_.Error(site,
             "unknown provider 'gcp' (a gcp provider needs a project: "
             "define it under providers)");
    return;
  }
  if (config_.providers.count(name) > 0) return;  // Made for another pool.
  ProviderConfig c;
  c.name = name;
  c.type = *type;
  c.implicit = true;
  ApplyProviderDefaults(&c);
  config_.providers[name] = c;
}

void Loader::FinishServer() {
  const ServerConfig& s = config_.server;
  if (s.heartbeat_flush_interval > absl::Seconds(1)) {
    // docs/architecture.md: heartbeat timestamps reach the store at most a
    // second apart.
    r_.Error(r_.Nearest("server.heartbeat_flush_interval"),
             absl::StrCat("must be at most 1s, got ",
                          FormatGoDuration(s.heartbeat_flush_interval)));
  }
  if (s.heartbeat_timeout > absl::ZeroDuration() &&
      s.heartbeat_timeout <= s.heartbeat_interval) {
    r_.Error(r_.Nearest("server.heartbeat_timeout"),
             absl::StrCat("must be longer than heartbeat_interval (",
                          FormatGoDuration(s.heartbeat_interval), "), got ",
                          FormatGoDuration(s.heartbeat_timeout)));
  }
  const auto grpc = SplitHostPort(s.address);
  // Port 0 for gRPC means "any free port" (scripts, tests); a fixed default
  // HTTP port would then collide between instances, so HTTP follows suit
  // unless the file chose its address.
  if (grpc && grpc->second == 0 && !r_.IsSet("server.http_address")) {
    config_.server.http_address = absl::StrCat(grpc->first, ":0");
  }
  const auto http = SplitHostPort(s.http_address);
  if (grpc && http && grpc->second != 0 && grpc->second == http->second &&
      (grpc->first == http->first || IsWildcardHost(grpc->first) ||
       IsWildcardHost(http->first))) {
    r_.Error(
        r_.Nearest("server.http_address"),
        absl::StrCat("uses the same port as address (", grpc->second, ")"));
  }
  CheckStorage();
}

}  // namespace

absl::Status ConfigLoadResult::status() const { return ErrorsToStatus(errors); }

ConfigLoadResult ParseConfig(absl::string_view yaml,
                             absl::string_view filename) {
  return Loader(std::string(filename)).Run(yaml);
}

absl::StatusOr<Config> LoadConfigString(absl::string_view yaml,
                                        absl::string_view filename) {
  ConfigLoadResult result = ParseConfig(yaml, filename);
  if (!result.ok()) return result.status();
  return std::move(result.config);
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("cannot read config file ", path, ": ",
                                     std::strerror(err)));
  }
  std::string data;
  char buf[65536];
  size_t n = 0;
  bool too_big = false;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    data.append(buf, n);
    if (data.size() > kMaxFileBytes) {
      too_big = true;
      break;
    }
  }
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (too_big) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": file is larger than ", kMaxFileBytes, " bytes"));
  }
  if (failed) {
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("cannot read config file ", path, ": ",
                                     std::strerror(err)));
  }
  return data;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  absl::StatusOr<std::string> data = ReadConfigFile(path);
  if (!data.ok()) return data.status();
  return LoadConfigString(*data, path);
}

}  // namespace navarch
