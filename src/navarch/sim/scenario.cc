#include "navarch/sim/scenario.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "navarch/api/names.h"
#include "navarch/base/duration.h"
#include "navarch/config/config_error.h"
#include "navarch/config/config_loader.h"
#include "navarch/config/yaml_reader.h"
#include "navarch/health/policy.h"
#include "yaml-cpp/yaml.h"

namespace navarch::sim {

absl::Status ParseResult::status() const { return ErrorsToStatus(errors); }

bool Comparison::Holds(double actual) const {
  constexpr double kEps = 1e-9;
  if (op == ">=") return actual >= value - kEps;
  if (op == "<=") return actual <= value + kEps;
  if (op == ">") return actual > value + kEps;
  if (op == "<") return actual < value - kEps;
  return std::fabs(actual - value) < kEps;
}

std::string Comparison::ToString() const {
  std::string v = absl::StrCat(value);
  return op == "==" ? v : absl::StrCat(op, v);
}

bool IsKnownFailureType(absl::string_view type) {
  for (const char* t : kFailureTypes) {
    if (type == t) return true;
  }
  return false;
}

Config SimDefaultConfig() {
  Config c = DefaultConfig();
  c.server.health_check_interval = absl::Seconds(5);
  c.server.heartbeat_interval = absl::Seconds(3);
  c.storage.backend = StorageBackend::kMemory;
  ResolveConfig(&c);
  return c;
}

namespace {

using yaml::Entry;
using yaml::KeySpec;
using yaml::Site;
using yaml::YamlReader;

template <size_t N>
bool OneOf(absl::string_view s, const char* const (&list)[N]) {
  for (const char* x : list) {
    if (s == x) return true;
  }
  return false;
}

template <size_t N>
std::string ListOf(const char* const (&list)[N]) {
  return absl::StrJoin(std::begin(list), std::end(list), ", ");
}

bool ParseComparisonText(absl::string_view text, Comparison* out) {
  out->op = "==";
  text = absl::StripAsciiWhitespace(text);
  for (const char* op : {">=", "<=", "==", ">", "<"}) {
    if (absl::StartsWith(text, op)) {
      out->op = op;
      text.remove_prefix(strlen(op));
      break;
    }
  }
  text = absl::StripAsciiWhitespace(text);
  if (absl::EndsWith(text, "%")) text.remove_suffix(1);
  return absl::SimpleAtod(text, &out->value) && std::isfinite(out->value);
}

Pos PosOf(const Site& site) { return Pos{site.line, site.column}; }
Site At(Pos pos, std::string path) {
  return Site{pos.line, pos.column, std::move(path)};
}

// Upstream's Go reader gives an empty value the zero value: "" for text.
std::optional<std::string> Text(YamlReader& r, const Entry& e) {
  if (e.value.IsNull()) return std::string();
  return r.String(e);
}

// One KeySpec per kind of field: each reads one key into one destination.
KeySpec StrKey(YamlReader& r, const char* name, std::string* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<std::string> v = Text(r, e)) *dst = *v;
          }};
}

template <typename T>
KeySpec IntKey(YamlReader& r, const char* name, T* dst, int64_t min,
               int64_t max) {
  return {{name}, "", [&r, dst, min, max](const Entry& e) {
            if (std::optional<int64_t> v = r.Int(e, min, max)) *dst = *v;
          }};
}

KeySpec DoubleKey(YamlReader& r, const char* name, double* dst, double min,
                  double max) {
  return {{name}, "", [&r, dst, min, max](const Entry& e) {
            if (std::optional<double> v = r.Double(e, min, max)) *dst = *v;
          }};
}

KeySpec BoolKey(YamlReader& r, const char* name, bool* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<bool> v = r.Bool(e)) *dst = *v;
          }};
}

KeySpec DurKey(YamlReader& r, const char* name, absl::Duration* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<absl::Duration> v = r.Duration(e)) *dst = *v;
          }};
}

KeySpec LabelsKey(YamlReader& r, const char* name,
                  std::map<std::string, std::string>* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (auto v = r.StringMap(e)) *dst = std::move(*v);
          }};
}

// A name from a fixed list; kept even when unknown (the error says so).
KeySpec ChoiceKey(YamlReader& r, std::vector<std::string> names,
                  std::string* dst, std::string what,
                  std::vector<std::string> known) {
  return {std::move(names), "",
          [&r, dst, what = std::move(what),
           known = std::move(known)](const Entry& e) {
            std::optional<std::string> v = Text(r, e);
            if (!v) return;
            *dst = *v;
            if (std::find(known.begin(), known.end(), *v) == known.end()) {
              r.Error(e.site,
                      absl::StrCat("unknown ", what, " '", *v, "' (known: ",
                                   absl::StrJoin(known, ", "), ")"));
            }
          }};
}

template <size_t N>
std::vector<std::string> Names(const char* const (&list)[N]) {
  return std::vector<std::string>(std::begin(list), std::end(list));
}

KeySpec FailureTypeKey(YamlReader& r, std::vector<std::string> names,
                       std::string* dst) {
  return ChoiceKey(r, std::move(names), dst, "failure type",
                   Names(kFailureTypes));
}

// `name:` holding a mapping read by `keys`.
KeySpec MapKey(YamlReader& r, const char* name, std::vector<KeySpec> keys) {
  return {{name}, "", [&r, keys = std::move(keys)](const Entry& e) {
            r.ReadMap(e.value, e.site, e.slot, keys);
          }};
}

// `name:` holding a list whose items `read` turns into T.
template <typename T>
KeySpec ListKey(YamlReader& r, const char* name, std::vector<T>* dst,
                std::function<T(const Entry&, int)> read) {
  return {{name}, "", [&r, dst, read = std::move(read)](const Entry& e) {
            int i = 0;
            for (const Entry& item : r.ListItems(e.value, e.site, e.slot)) {
              dst->push_back(read(item, i++));
            }
          }};
}

// Records where each key's value was written (under `prefix`), for checks
// that run after the whole file is read.
std::vector<KeySpec> Tracked(std::map<std::string, Pos>* where,
                             const std::string& prefix,
                             std::vector<KeySpec> keys) {
  for (KeySpec& k : keys) {
    k.read = [where, key = prefix + k.names.front(),
              read = std::move(k.read)](const Entry& e) {
      (*where)[key] = PosOf(e.site);
      read(e);
    };
  }
  return keys;
}

NodeSpec ReadNode(YamlReader& r, const Entry& item) {
  NodeSpec n;
  n.pos = PosOf(item.site);
  r.ReadMap(item.value, item.site, item.slot,
            {StrKey(r, "id", &n.id), StrKey(r, "provider", &n.provider),
             StrKey(r, "region", &n.region), StrKey(r, "zone", &n.zone),
             StrKey(r, "instance_type", &n.instance_type),
             StrKey(r, "gpu_type", &n.gpu_type),
             IntKey(r, "gpu_count", &n.gpu_count, 1, 64),
             LabelsKey(r, "labels", &n.labels)});
  if (n.zone.empty()) n.zone = n.region + "-a";
  return n;
}

std::vector<KeySpec> EventParamKeys(YamlReader& r, EventSpec& e) {
  return {StrKey(r, "failure_type", &e.failure_type),
          IntKey(r, "xid_code", &e.xid_code, 1, 1000),
          IntKey(r, "gpu_index", &e.gpu_index, -1, 63),
          StrKey(r, "message", &e.message),
          StrKey(r, "command_type", &e.command_type),
          LabelsKey(r, "command_args", &e.command_args),
          StrKey(r, "expected_status", &e.expected_status),
          DurKey(r, "timeout", &e.timeout),
          StrKey(r, "log_message", &e.log_message),
          StrKey(r, "pool", &e.pool),
          StrKey(r, "status", &e.status),
          IntKey(r, "capacity", &e.capacity, -1, 1000000),
          IntKey(r, "quota", &e.quota, -1, 1000000),
          DurKey(r, "duration", &e.duration)};
}

EventSpec ReadEvent(YamlReader& r, const Entry& item, int index) {
  EventSpec e;
  e.index = index;
  e.pos = PosOf(item.site);
  bool has_at = false;
  KeySpec at = DurKey(r, "at", &e.at);
  at.read = [&has_at, read = std::move(at.read)](const Entry& x) {
    has_at = true;
    read(x);
  };
  r.ReadMap(
      item.value, item.site, item.slot,
      Tracked(
          &e.value_pos, "",
          {std::move(at),
           ChoiceKey(r, {"action"}, &e.action, "action", Names(kActions)),
           StrKey(r, "target", &e.target),
           MapKey(r, "params",
                  Tracked(&e.value_pos, "params.", EventParamKeys(r, e)))}));
  if (!has_at) r.Error(item.site, "'at' is required (e.g. at: 5s)");
  if (e.action.empty()) r.Error(item.site, "'action' is required");
  return e;
}

AssertionSpec ReadAssertion(YamlReader& r, const Entry& item) {
  AssertionSpec a;
  a.pos = PosOf(item.site);
  KeySpec type = StrKey(r, "type", &a.type);
  type.read = [&a, read = std::move(type.read)](const Entry& e) {
    read(e);
    if (a.type.empty()) a.type = "node_status";
  };
  r.ReadMap(
      item.value, item.site, item.slot,
      Tracked(
          &a.value_pos, "",
          {std::move(type), StrKey(r, "target", &a.target),
           StrKey(r, "expected", &a.expected),
           MapKey(
               r, "params",
               Tracked(&a.value_pos, "params.",
                       {StrKey(r, "status", &a.status),
                        StrKey(r, "pool", &a.pool), StrKey(r, "kind", &a.kind),
                        StrKey(r, "contains", &a.contains),
                        DoubleKey(r, "percentile", &a.percentile, 0, 100)}))}));
  return a;
}

// ----------------------------------------------------------- clouds

void ReadCloudRegion(YamlReader& r, const Entry& item, FakeRegionOptions& ro) {
  r.ReadMap(item.value, item.site, item.slot,
            {IntKey(r, "capacity", &ro.capacity, -1, 1000000),
             IntKey(r, "quota", &ro.quota, -1, 1000000),
             {{"zones"}, "", [&r, &ro](const Entry& e) {
                for (const Entry& z : r.MapEntries(e.value, e.site, e.slot)) {
                  if (auto v = r.Int(z, -1, 1000000)) ro.zones[z.key] = *v;
                }
              }}});
}

KeySpec CloudsKey(YamlReader& r, Scenario& s) {
  return {{"clouds"}, "", [&r, &s](const Entry& e) {
            for (const Entry& c : r.MapEntries(e.value, e.site, e.slot)) {
              CloudSpec& cs = s.clouds[c.key];
              cs.name = c.key;
              cs.pos = PosOf(c.site);
              KeySpec regions = {{"regions"}, "", [&r, &cs](const Entry& re) {
                                   for (const Entry& g : r.MapEntries(
                                            re.value, re.site, re.slot)) {
                                     ReadCloudRegion(r, g, cs.regions[g.key]);
                                   }
                                 }};
              r.ReadMap(c.value, c.site, c.slot,
                        {IntKey(r, "quota", &cs.quota, -1, 1000000),
                         DurKey(r, "call_latency", &cs.call_latency),
                         std::move(regions)});
            }
          }};
}

// ----------------------------------------------------------- stress

KeySpec WeightsKey(YamlReader& r, const char* name,
                   std::vector<WeightedName>* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            for (const Entry& w : r.MapEntries(e.value, e.site, e.slot)) {
              if (auto d = r.Double(w, 0, 1e9)) dst->push_back({w.key, *d});
            }
            std::sort(
                dst->begin(), dst->end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
          }};
}

TemplateSpec ReadTemplate(YamlReader& r, const Entry& item) {
  TemplateSpec t;
  KeySpec weight = DoubleKey(r, "weight", &t.weight, 0, 1e9);
  weight.read = [&r, &t, read = std::move(weight.read)](const Entry& e) {
    read(e);
    if (t.weight <= 0) r.Error(e.site, "must be greater than 0");
  };
  r.ReadMap(item.value, item.site, item.slot,
            {StrKey(r, "name", &t.name), std::move(weight),
             IntKey(r, "gpu_count", &t.gpu_count, 1, 64),
             StrKey(r, "gpu_type", &t.gpu_type),
             StrKey(r, "instance_type", &t.instance_type),
             LabelsKey(r, "labels", &t.labels)});
  if (t.name.empty()) r.Error(item.site, "template 'name' is required");
  return t;
}

std::vector<KeySpec> StartupKeys(YamlReader& r, StartupSpec& st) {
  KeySpec pattern = ChoiceKey(r, {"pattern"}, &st.pattern, "startup pattern",
                              {"instant", "linear", "exponential", "wave"});
  pattern.read = [&st, read = std::move(pattern.read)](const Entry& e) {
    // An empty pattern is upstream's zero value: everything at once.
    if (e.value.IsScalar() && e.value.Scalar().empty()) {
      st.pattern = "instant";
      return;
    }
    if (e.value.IsNull()) {
      st.pattern = "instant";
      return;
    }
    read(e);
  };
  return {std::move(pattern),
          DurKey(r, "duration", &st.duration),
          IntKey(r, "batch_size", &st.batch_size, 1, 1000000),
          IntKey(r, "jitter_percent", &st.jitter_percent, 0, 100),
          DurKey(r, "cold_start_min", &st.cold_start_min),
          DurKey(r, "cold_start_max", &st.cold_start_max),
          DurKey(r, "cold_start_mean", &st.cold_start_mean),
          DurKey(r, "cold_start_stddev", &st.cold_start_stddev)};
}

std::vector<KeySpec> FleetGenKeys(YamlReader& r, FleetGenSpec& g) {
  return {IntKey(r, "total_nodes", &g.total_nodes, 1, 1000000),
          ListKey<TemplateSpec>(
              r, "templates", &g.templates,
              [&r](const Entry& item, int) { return ReadTemplate(r, item); }),
          WeightsKey(r, "providers", &g.providers),
          WeightsKey(r, "regions", &g.regions),
          {{"zones"},
           "",
           [&r, &g](const Entry& e) {
             for (const Entry& z : r.MapEntries(e.value, e.site, e.slot)) {
               std::vector<std::string>& zones = g.zones[z.key];
               if (auto list = r.StringList(z)) zones = std::move(*list);
             }
           }},
          MapKey(r, "startup", StartupKeys(r, g.startup))};
}

KeySpec XidDistributionKey(YamlReader& r, ChaosSpec& c) {
  return {{"xid_distribution"}, "", [&r, &c](const Entry& e) {
            for (const Entry& x : r.MapEntries(e.value, e.site, e.slot)) {
              int code = 0;
              if (!absl::SimpleAtoi(x.key, &code) || code <= 0) {
                r.Error(x.site,
                        absl::StrCat("'", x.key, "' is not an XID code"));
                continue;
              }
              if (auto d = r.Double(x, 0, 1e9)) {
                c.xid_distribution.push_back({code, *d});
              }
            }
            std::sort(c.xid_distribution.begin(), c.xid_distribution.end());
          }};
}

std::vector<KeySpec> CascadeKeys(YamlReader& r, CascadeSpec& cs) {
  KeySpec depth = IntKey(r, "max_depth", &cs.max_depth, -1000, 1000);
  depth.read = [&cs, read = std::move(depth.read)](const Entry& e) {
    read(e);
    if (cs.max_depth <= 0) cs.max_depth = 3;  // Upstream's default.
  };
  return {BoolKey(r, "enabled", &cs.enabled),
          DoubleKey(r, "probability", &cs.probability, 0, 1),
          std::move(depth),
          DurKey(r, "min_delay", &cs.min_delay),
          DurKey(r, "max_delay", &cs.max_delay),
          ChoiceKey(r, {"scope"}, &cs.scope, "cascade scope",
                    {"zone", "region", "provider", "rack", "random"}),
          DoubleKey(r, "max_affected_percent", &cs.max_affected_percent, 0, 1)};
}

std::vector<KeySpec> RecoveryKeys(YamlReader& r, RecoverySpec& rs) {
  return {BoolKey(r, "enabled", &rs.enabled),
          DoubleKey(r, "probability", &rs.probability, 0, 1),
          DurKey(r, "mean_time", &rs.mean_time),
          DurKey(r, "std_dev", &rs.std_dev),
          BoolKey(r, "replace_fatal", &rs.replace_fatal),
          DurKey(r, "replace_cold_start", &rs.replace_cold_start)};
}

OutageSpec ReadOutage(YamlReader& r, const Entry& item) {
  OutageSpec o;
  o.pos = PosOf(item.site);
  r.ReadMap(item.value, item.site, item.slot,
            {StrKey(r, "name", &o.name), DurKey(r, "start_time", &o.start_time),
             DurKey(r, "duration", &o.duration),
             ChoiceKey(r, {"scope"}, &o.scope, "outage scope",
                       {"zone", "region", "provider", "percentage"}),
             StrKey(r, "target", &o.target),
             FailureTypeKey(r, {"failure_type"}, &o.failure_type)});
  if (o.scope.empty()) r.Error(item.site, "outage 'scope' is required");
  return o;
}

CorrelatedSpec ReadCorrelated(YamlReader& r, const Entry& item) {
  CorrelatedSpec cf;
  r.ReadMap(
      item.value, item.site, item.slot,
      {StrKey(r, "name", &cf.name),
       FailureTypeKey(r, {"trigger_type", "trigger"}, &cf.trigger_type),
       IntKey(r, "trigger_xid", &cf.trigger_xid, 0, 1000),
       FailureTypeKey(r, {"response_type", "response"}, &cf.response_type),
       IntKey(r, "response_xid", &cf.response_xid, 0, 1000),
       DoubleKey(r, "probability", &cf.probability, 0, 1),
       DurKey(r, "delay", &cf.delay),
       ChoiceKey(r, {"scope"}, &cf.scope, "scope",
                 {"same_node", "zone", "region", "provider", "rack"}),
       IntKey(r, "max_affected", &cf.max_affected, 1, 1000000)});
  return cf;
}

WeightedName ReadFailureWeight(YamlReader& r, const Entry& item) {
  WeightedName w;
  r.ReadMap(item.value, item.site, item.slot,
            {FailureTypeKey(r, {"type"}, &w.name),
             DoubleKey(r, "weight", &w.weight, 0, 1e9)});
  return w;
}

std::vector<KeySpec> ChaosKeys(YamlReader& r, ChaosSpec& c) {
  return {
      BoolKey(r, "enabled", &c.enabled),
      DoubleKey(r, "failure_rate", &c.failure_rate, 0, 1e6),
      XidDistributionKey(r, c),
      ListKey<WeightedName>(
          r, "failure_types", &c.failure_types,
          [&r](const Entry& item, int) { return ReadFailureWeight(r, item); }),
      MapKey(r, "cascading", CascadeKeys(r, c.cascading)),
      MapKey(r, "recovery", RecoveryKeys(r, c.recovery)),
      ListKey<OutageSpec>(
          r, "scheduled_outages", &c.scheduled_outages,
          [&r](const Entry& item, int) { return ReadOutage(r, item); }),
      ListKey<CorrelatedSpec>(
          r, "correlated_failures", &c.correlated_failures,
          [&r](const Entry& item, int) { return ReadCorrelated(r, item); })};
}

std::vector<KeySpec> StressKeys(YamlReader& r, StressSpec& s) {
  KeySpec metrics = DurKey(r, "metrics_interval", &s.metrics_interval);
  metrics.read = [&r, &s](const Entry& e) {
    std::optional<absl::Duration> d = r.Duration(e);
    if (!d) return;
    if (*d < absl::Seconds(1)) {
      r.Error(e.site, "must be at least 1s");
    } else {
      s.metrics_interval = *d;
    }
  };
  return {DurKey(r, "duration", &s.duration),
          std::move(metrics),
          IntKey(r, "seed", &s.seed, 0, INT64_MAX),
          StrKey(r, "report_file", &s.report_file),
          StrKey(r, "html_report_file", &s.html_report_file),
          StrKey(r, "log_file", &s.log_file),
          {{"fleet_gen"},
           "",
           [&r, &s](const Entry& e) {
             FleetGenSpec g;
             r.ReadMap(e.value, e.site, e.slot, FleetGenKeys(r, g));
             if (g.templates.empty()) {
               r.Error(e.site, "fleet_gen needs at least one template");
             }
             s.fleet_gen = std::move(g);
           }},
          MapKey(r, "chaos", ChaosKeys(r, s.chaos))};
}

// ----------------------------------------------------------- config

// The lines of `text` that hold the value of the top-level key at
// [first_line, end_line) (0-based), dedented by `indent` columns, with every
// other line blank so that line numbers stay those of the scenario file.
std::string ExtractBlock(absl::string_view text, int first_line, int end_line,
                         int indent) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  std::string out;
  for (int i = 0; i < static_cast<int>(lines.size()); ++i) {
    if (i >= first_line && i < end_line) {
      absl::string_view l = lines[i];
      int strip = 0;
      while (strip < indent && strip < static_cast<int>(l.size()) &&
             l[strip] == ' ') {
        ++strip;
      }
      l.remove_prefix(strip);
      out.append(l.data(), l.size());
    }
    out.push_back('\n');
  }
  return out;
}

// The `config:` block is a control-plane configuration read by the control
// plane's own loader, from the block's own text so that its errors point at
// the scenario's lines and columns.
void ParseConfigBlock(YamlReader& r, absl::string_view text,
                      const YAML::Node& root, const Entry& e, Scenario& s) {
  s.has_config = true;
  const YAML::Node& cfg = e.value;
  const Pos pos = PosOf(e.site);
  const bool block =
      cfg.IsMap() && cfg.Style() != YAML::EmitterStyle::Flow && pos.line > 0;
  std::string yaml;
  int column_shift = 0;
  if (block) {
    // The block ends where the next top-level key begins.
    int end = INT32_MAX;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const Site key = YamlReader::SiteOf(it->first, Site{}, "");
      if (key.line > pos.line) end = std::min(end, key.line - 1);
    }
    column_shift = pos.column - 1;
    yaml = ExtractBlock(text, pos.line - 1, end, column_shift);
  } else if (!cfg.IsNull()) {
    YAML::Emitter emitter;
    emitter << cfg;
    yaml = emitter.c_str();
  }
  ConfigLoadResult loaded = ParseConfig(yaml, s.file);
  for (const ConfigError& ce : loaded.errors) {
    Pos p = pos;
    if (ce.line > 0 && block) p = {ce.line, ce.column + column_shift};
    r.Error(At(p, ce.path.empty() ? "config" : "config." + ce.path),
            ce.message);
  }
  if (!loaded.ok()) return;
  s.config = loaded.config;
  // A relative policy path is relative to the scenario, so a scenario and its
  // policy travel together.
  std::string& policy = s.config.server.health_policy;
  if (!policy.empty() && !std::filesystem::path(policy).is_absolute()) {
    policy = (std::filesystem::path(s.file).parent_path() / policy).string();
  }
  if (!policy.empty()) {
    auto p = Policy::LoadFile(policy);
    if (!p.ok()) {
      r.Error(At(pos, "config.server.health_policy"),
              absl::StrCat("cannot load ", policy, ": ", p.status().message()));
    }
  }
  s.config.storage.backend = StorageBackend::kMemory;
  ResolveConfig(&s.config);
}

std::vector<KeySpec> ScenarioKeys(YamlReader& r, absl::string_view text,
                                  const YAML::Node& root, Scenario& s) {
  return {StrKey(r, "name", &s.name),
          StrKey(r, "description", &s.description),
          ListKey<NodeSpec>(
              r, "fleet", &s.fleet,
              [&r](const Entry& item, int) { return ReadNode(r, item); }),
          ListKey<EventSpec>(
              r, "events", &s.events,
              [&r](const Entry& item, int i) { return ReadEvent(r, item, i); }),
          ListKey<AssertionSpec>(
              r, "assertions", &s.assertions,
              [&r](const Entry& item, int) { return ReadAssertion(r, item); }),
          {{"stress"},
           "",
           [&r, &s](const Entry& e) {
             StressSpec st;
             r.ReadMap(e.value, e.site, e.slot, StressKeys(r, st));
             s.stress = std::move(st);
           }},
          {{"config"},
           "",
           [&r, text, &root, &s](const Entry& e) {
             ParseConfigBlock(r, text, root, e, s);
           }},
          DurKey(r, "boot_delay", &s.boot_delay),
          CloudsKey(r, s)};
}

// ----------------------------------------------------------- checks

// What can only be checked once the whole file is read: required keys, ids,
// targets, and values whose meaning depends on another key.
class Checker {
 public:
  Checker(YamlReader& r, const Scenario& s) : r_(r), s_(s) {}

  void Run(const Site& root) {
    Fleet(root);
    Clouds();
    for (const EventSpec& e : s_.events) Event(e);
    for (size_t i = 0; i < s_.assertions.size(); ++i) {
      Assertion(s_.assertions[i], absl::StrCat("assertions[", i, "]"));
    }
  }

 private:
  void Error(Pos pos, std::string path, std::string message) {
    r_.Error(At(pos, std::move(path)), std::move(message));
  }

  void Fleet(const Site& root) {
    const Pos at = PosOf(root);
    if (s_.name.empty()) Error(at, "name", "'name' is required");
    const bool generated = s_.stress && s_.stress->fleet_gen;
    const bool pools = s_.has_config && !s_.config.pools.empty();
    if (s_.fleet.empty() && !generated && !pools) {
      Error(at, "fleet",
            "'fleet' is required (or stress.fleet_gen, or config pools)");
    }
    // Nodes made by pools or generated by fleet_gen have ids that are only
    // known at run time.
    open_targets_ = generated || pools;
    for (size_t i = 0; i < s_.fleet.size(); ++i) {
      const NodeSpec& n = s_.fleet[i];
      const std::string p = absl::StrCat("fleet[", i, "].id");
      if (n.id.empty()) {
        Error(n.pos, p, "node 'id' is required");
      } else if (!ids_.insert(n.id).second) {
        Error(n.pos, p, absl::StrCat("duplicate node id '", n.id, "'"));
      }
    }
  }

  void Target(const std::string& target, Pos pos, const std::string& path) {
    if (target.empty()) {
      Error(pos, path, "'target' (a node id) is required");
    } else if (!open_targets_ && !ids_.contains(target)) {
      Error(pos, path,
            absl::StrCat("target '", target, "' is not a node of the fleet"));
    }
  }

  void Status(const std::string& value, Pos pos, const std::string& path) {
    if (!ParseNodeStatus(value).ok() || value == "unknown" ||
        value == "unspecified") {
      Error(pos, path,
            absl::StrCat("unknown node status '", value,
                         "' (known: active, cordoned, draining, unhealthy, "
                         "terminated)"));
    }
  }

  void Clouds() {
    for (const auto& [name, c] : s_.clouds) {
      if (!s_.config.providers.contains(name)) {
        Error(c.pos, "clouds." + name,
              absl::StrCat("provider '", name, "' is not in config.providers"));
      }
    }
  }
  // "provider", "provider/region" or "provider/region/zone": between `min`
  // and `max` parts, the first a configured provider.
  void CloudTarget(const std::string& target, size_t min, size_t max, Pos pos,
                   const std::string& path);

  void Event(const EventSpec& e);
  void CloudEvent(const EventSpec& e, const std::string& p);
  void FailureEvent(const EventSpec& e, const std::string& p);
  void Assertion(const AssertionSpec& a, const std::string& p);
  void AssertionExpected(const AssertionSpec& a, const std::string& p);
  void AssertionPool(const AssertionSpec& a, const std::string& p);

  YamlReader& r_;
  const Scenario& s_;
  std::set<std::string> ids_;
  bool open_targets_ = false;
};

void Checker::FailureEvent(const EventSpec& e, const std::string& p) {
  if (e.action == "inject_failure") {
    if (e.failure_type.empty()) {
      Error(e.PosOf("params"), p + ".params.failure_type",
            "failure_type is required");
    }
    if (e.failure_type == "xid_error" && e.xid_code == 0) {
      Error(e.PosOf("params.failure_type"), p + ".params.xid_code",
            "xid_code is required for xid_error");
    }
  }
  if (!e.failure_type.empty() && !IsKnownFailureType(e.failure_type)) {
    Error(e.PosOf("params.failure_type"), p + ".params.failure_type",
          absl::StrCat("unknown failure type '", e.failure_type,
                       "' (known: ", ListOf(kFailureTypes), ")"));
  }
}

void Checker::CloudTarget(const std::string& target, size_t min, size_t max,
                          Pos pos, const std::string& path) {
  const std::vector<std::string> parts = absl::StrSplit(target, '/');
  const char* what[] = {"provider", "provider/region", "provider/region/zone"};
  if (target.empty() || parts.size() < min || parts.size() > max ||
      std::find(parts.begin(), parts.end(), "") != parts.end()) {
    Error(pos, path,
          absl::StrCat("'target' must be ", what[min - 1],
                       min == max ? "" : absl::StrCat(" or ", what[max - 1]),
                       " (got '", target, "')"));
  } else if (!s_.config.providers.contains(parts[0])) {
    Error(pos, path,
          absl::StrCat("provider '", parts[0], "' is not in config.providers"));
  }
}

void Checker::CloudEvent(const EventSpec& e, const std::string& p) {
  const bool capacity = e.action == "set_capacity";
  if (s_.config.pools.empty()) {
    Error(e.pos, p + ".action",
          absl::StrCat(e.action,
                       " needs config pools (their providers are simulated)"));
  }
  CloudTarget(e.target, capacity ? 2 : 1, capacity ? 3 : 2, e.PosOf("target"),
              p + ".target");
  const std::string key = capacity ? "params.capacity" : "params.quota";
  if (!e.value_pos.contains(key)) {
    Error(e.PosOf("params"), p + "." + key,
          absl::StrCat(key.substr(7), " is required (-1: no cap)"));
  }
}

void Checker::Event(const EventSpec& e) {
  const std::string p = absl::StrCat("events[", e.index, "]");
  const std::string& act = e.action;
  if (act == "set_capacity" || act == "set_quota") CloudEvent(e, p);
  if (act == "inject_failure" || act == "recover_failure" ||
      act == "issue_command" || act == "wait_for_status") {
    Target(e.target, e.PosOf("target"), p + ".target");
  }
  if (act == "inject_failure" || act == "recover_failure") FailureEvent(e, p);
  if (act == "issue_command" && !OneOf(e.command_type, kCommandTypes)) {
    Error(e.PosOf("params.command_type"), p + ".params.command_type",
          absl::StrCat("unknown command type '", e.command_type,
                       "' (known: ", ListOf(kCommandTypes), ")"));
  }
  if (act == "wait_for_status") {
    Status(e.expected_status, e.PosOf("params.expected_status"),
           p + ".params.expected_status");
  }
  if (act == "assert") {
    // Upstream reads the assertion type from params.failure_type.
    const std::string type =
        e.failure_type.empty() ? "node_status" : e.failure_type;
    if (type != "node_status" && type != "health_status" &&
        type != "node_count") {
      Error(e.PosOf("params.failure_type"), p + ".params.failure_type",
            absl::StrCat("unknown assertion type '", type,
                         "' for action assert (known: node_status, "
                         "health_status, node_count)"));
    }
  }
}

void Checker::AssertionExpected(const AssertionSpec& a, const std::string& p) {
  const Pos at = a.PosOf("expected");
  const std::string path = p + ".expected";
  Comparison c;
  if (a.type == "node_status") {
    Target(a.target, a.PosOf("target"), p + ".target");
    Status(a.expected, at, path);
  } else if (a.type == "health_status") {
    Target(a.target, a.PosOf("target"), p + ".target");
    if (a.expected != "healthy" && a.expected != "degraded" &&
        a.expected != "unhealthy" && a.expected != "unknown") {
      Error(at, path,
            absl::StrCat("unknown health status '", a.expected,
                         "' (known: healthy, degraded, unhealthy, unknown)"));
    }
  } else if (a.type == "time_to_replace" || a.type == "time_to_detect") {
    if (!ParseGoDuration(a.expected).ok()) {
      Error(at, path,
            absl::StrCat("'", a.expected, "' is not a duration (e.g. \"5m\")"));
    }
  } else if (!ParseComparisonText(a.expected, &c)) {
    Error(at, path,
          absl::StrCat("'", a.expected,
                       "' is not a number or a comparison such as \">=800\""));
  }
}

void Checker::AssertionPool(const AssertionSpec& a, const std::string& p) {
  const bool pool_size = a.type == "pool_size";
  const std::string& pool = pool_size ? a.target : a.pool;
  if (pool_size && pool.empty()) {
    Error(a.pos, p + ".target", "'target' (a pool name) is required");
  }
  if (!pool.empty() && !s_.config.pools.contains(pool)) {
    Error(a.PosOf(pool_size ? "target" : "params.pool"),
          pool_size ? p + ".target" : p + ".params.pool",
          absl::StrCat("pool '", pool, "' is not in config.pools"));
  }
}

void Checker::Assertion(const AssertionSpec& a, const std::string& p) {
  if (!OneOf(a.type, kAssertionTypes)) {
    Error(a.PosOf("type"), p + ".type",
          absl::StrCat("unknown assertion type '", a.type,
                       "' (known: ", ListOf(kAssertionTypes), ")"));
    return;
  }
  AssertionExpected(a, p);
  if (!a.status.empty()) {
    Status(a.status, a.PosOf("params.status"), p + ".params.status");
  }
  AssertionPool(a, p);
  if (a.type == "events" && !absl::StartsWith(a.kind, "pool.")) {
    Error(a.PosOf("params.kind"), p + ".params.kind",
          absl::StrCat("'kind' must be a pool event kind such as "
                       "pool.provision_failed (got '",
                       a.kind, "')"));
  }
  if (a.type == "provisions") {
    CloudTarget(a.target, 1, 2, a.PosOf("target"), p + ".target");
  }
}

}  // namespace

bool ParseComparison(absl::string_view text, Comparison* out) {
  return ParseComparisonText(text, out);
}

ParseResult ParseScenario(absl::string_view yaml, const std::string& filename) {
  ParseResult result;
  Scenario& s = result.scenario;
  s.file = filename;
  s.config = SimDefaultConfig();
  YamlReader r(filename);
  std::optional<YAML::Node> root = r.Load(yaml);
  if (root && !root->IsMap()) {
    r.Error(YamlReader::SiteOf(*root, Site{1, 1, ""}, ""),
            "a scenario must be a YAML mapping");
  } else if (root) {
    r.Guard([&] {
      const Site site = YamlReader::SiteOf(*root, Site{1, 1, ""}, "");
      r.ReadMap(*root, site, "", ScenarioKeys(r, yaml, *root, s));
      Checker(r, s).Run(site);
    });
  }
  result.errors = r.TakeErrors();
  return result;
}

ParseResult LoadScenarioFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ParseResult r;
    r.errors.push_back(ConfigError{path, 0, 0, "", "cannot read the file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseScenario(ss.str(), path);
}

}  // namespace navarch::sim
