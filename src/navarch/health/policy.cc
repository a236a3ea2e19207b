#include "navarch/health/policy.h"

#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/logging.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/json.h"
#include "navarch/config/config_error.h"
#include "navarch/config/yaml_reader.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace navarch {

// Defined in the generated default_policy.cc (CMake embeds
// examples/health-policy.yaml).
extern const char kDefaultPolicyYaml[];

namespace {

using yaml::Entry;
using yaml::KeySpec;
using yaml::Site;
using yaml::YamlReader;

cel::Value TypedMetric(const std::string& s) {
  int64_t i;
  if (absl::SimpleAtoi(s, &i)) return cel::Value::Int(i);
  double d;
  if (!s.empty() &&
      s.find_first_not_of("0123456789.eE+-") == std::string::npos &&
      absl::SimpleAtod(s, &d)) {
    return cel::Value::Double(d);
  }
  if (s == "true") return cel::Value::Bool(true);
  if (s == "false") return cel::Value::Bool(false);
  return cel::Value::String(s);
}

cel::Value MustMap(std::vector<std::pair<cel::Value, cel::Value>> entries) {
  auto m = cel::Value::Map(std::move(entries));
  return m.ok() ? *m : cel::Value::Null();
}

// A rule as written: its fields and where they were.
struct RuleDraft {
  PolicyRule rule;
  Site site;  // The rule's mapping; path "rule N" (1-based, as users count).
  Site condition_site;
  std::string result;
};

std::vector<KeySpec> RuleKeys(YamlReader& r, RuleDraft& d) {
  auto text = [&r](std::string* dst) {
    return [&r, dst](const Entry& e) {
      if (std::optional<std::string> s = r.String(e)) *dst = *s;
    };
  };
  return {
      {{"name"}, "", text(&d.rule.name)},
      {{"description"}, "", text(&d.rule.description)},
      {{"condition"},
       "",
       [&d, read = text(&d.rule.condition)](const Entry& e) {
         d.condition_site = e.site;
         read(e);
       }},
      {{"result"}, "", text(&d.result)},
  };
}

// Compiles the condition and parses the result of a named rule; errors name
// the rule as `rule "<name>"`.
void CheckRule(YamlReader& r, RuleDraft& d) {
  const std::string label = absl::StrCat("rule \"", d.rule.name, "\"");
  const Site at{d.site.line, d.site.column, label};
  if (d.rule.condition.empty()) {
    r.Error(at, "condition is required");
  } else {
    auto program = cel::Program::Compile(d.rule.condition);
    if (program.ok()) {
      d.rule.program = std::move(*program);
    } else {
      r.Error(Site{d.condition_site.line, d.condition_site.column, label},
              absl::StrCat("condition: ", program.status().message()));
    }
  }
  absl::StatusOr<HealthStatus> result = ParsePolicyResult(d.result);
  if (result.ok()) {
    d.rule.result = *result;
  } else {
    r.Error(at, std::string(result.status().message()));
  }
}

void ReadRules(YamlReader& r, const Entry& rules, std::vector<PolicyRule>& out,
               bool& any) {
  std::set<std::string> names;
  int n = 0;
  for (const Entry& item : r.ListItems(rules.value, rules.site, "rules")) {
    any = true;
    RuleDraft d;
    d.site = Site{item.site.line, item.site.column, absl::StrCat("rule ", ++n)};
    d.rule.line = item.site.line;
    if (!r.ReadMap(item.value, d.site, "", RuleKeys(r, d))) continue;
    if (d.rule.name.empty()) {
      r.Error(d.site, "name is required");
      continue;
    }
    if (!names.insert(d.rule.name).second) {
      r.Error(Site{d.site.line, d.site.column,
                   absl::StrCat("rule \"", d.rule.name, "\"")},
              "duplicate rule name");
    }
    CheckRule(r, d);
    out.push_back(std::move(d.rule));
  }
}

void ReadPolicy(YamlReader& r, const YAML::Node& root, std::string& name,
                std::vector<PolicyRule>& rules) {
  if (!root.IsMap()) {
    r.Error(Site{}, "a policy is a map with version, metadata and rules");
    return;
  }
  bool any_rule = false;
  r.ReadMap(
      root, YamlReader::SiteOf(root, Site{1, 1, ""}, ""), "",
      {
          {{"version"}, "", [&r](const Entry& e) { r.String(e); }},
          // Free-form, as upstream's: only the name is used.
          {{"metadata"},
           "",
           [&r, &name](const Entry& e) {
             for (const Entry& m : r.MapEntries(e.value, e.site, "metadata")) {
               if (m.key != "name") continue;
               if (std::optional<std::string> s = r.String(m)) name = *s;
             }
           }},
          {{"rules"},
           "",
           [&](const Entry& e) { ReadRules(r, e, rules, any_rule); }},
      });
  if (!any_rule) r.Error(Site{}, "policy must have at least one rule");
}

}  // namespace

absl::StatusOr<HealthStatus> ParsePolicyResult(absl::string_view s) {
  std::string r = absl::AsciiStrToLower(s);
  if (r == "healthy") return HEALTH_STATUS_HEALTHY;
  if (r == "degraded") return HEALTH_STATUS_DEGRADED;
  if (r == "unhealthy") return HEALTH_STATUS_UNHEALTHY;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid result \"", s, "\" (must be healthy, degraded, or unhealthy)"));
}

absl::StatusOr<std::shared_ptr<const Policy>> Policy::Parse(
    absl::string_view yaml, absl::string_view filename) {
  auto policy = std::make_shared<Policy>();
  policy->source_ = std::string(filename);
  YamlReader r{std::string(filename)};
  if (std::optional<YAML::Node> root = r.Load(yaml)) {
    r.Guard([&] { ReadPolicy(r, *root, policy->name_, policy->rules_); });
  }
  std::vector<ConfigError> errors = r.TakeErrors();
  if (!errors.empty()) return ErrorsToStatus(errors);
  return std::shared_ptr<const Policy>(std::move(policy));
}

absl::StatusOr<std::shared_ptr<const Policy>> Policy::LoadFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat("cannot read health policy ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

absl::string_view Policy::DefaultYaml() { return kDefaultPolicyYaml; }

std::shared_ptr<const Policy> Policy::Default() {
  static const auto* policy = [] {
    auto p = Parse(kDefaultPolicyYaml, "<builtin default policy>");
    // The build embeds a file that the tests load: it cannot be invalid.
    if (!p.ok()) abort();
    return new std::shared_ptr<const Policy>(*p);
  }();
  return *policy;
}

RuleMatch Policy::Match(const cel::Value& event) const {
  cel::Activation vars;
  vars.Bind("event", event);
  RuleMatch match;
  for (const auto& rule : rules_) {
    auto v = rule.program->Evaluate(vars);
    if (!v.ok()) {
      match.errors.emplace_back(rule.name, std::string(v.status().message()));
      continue;
    }
    if (v->is_bool() && v->bool_value()) {
      match.rule = &rule;
      return match;
    }
  }
  return match;
}

cel::Value EventToCel(const HealthEvent& e) {
  std::vector<std::pair<cel::Value, cel::Value>> metrics;
  for (const auto& [k, v] : e.metrics()) {
    metrics.emplace_back(cel::Value::String(k), TypedMetric(v));
  }
  std::string type = PolicyName(e.event_type());
  std::string system = PolicyName(e.system());
  std::vector<std::pair<cel::Value, cel::Value>> fields;
  fields.emplace_back(cel::Value::String("event_type"),
                      cel::Value::String(type.empty() ? "unknown" : type));
  fields.emplace_back(
      cel::Value::String("system"),
      cel::Value::String(system.empty() ? "DCGM_HEALTH_WATCH_UNKNOWN"
                                        : system));
  fields.emplace_back(cel::Value::String("gpu_index"),
                      cel::Value::Int(e.gpu_index()));
  fields.emplace_back(cel::Value::String("gpu_uuid"),
                      cel::Value::String(e.gpu_uuid()));
  fields.emplace_back(cel::Value::String("message"),
                      cel::Value::String(e.message()));
  fields.emplace_back(
      cel::Value::String("timestamp"),
      cel::Value::String(IsSet(e.timestamp())
                             ? FormatRfc3339(FromTimestamp(e.timestamp()))
                             : ""));
  fields.emplace_back(cel::Value::String("metrics"),
                      MustMap(std::move(metrics)));
  return MustMap(std::move(fields));
}

absl::StatusOr<cel::Value> EventJsonToCel(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("an event must be a JSON object");
  }
  // Every key the control plane always sets, so that test events behave as
  // real ones: event_type "unknown", node-level GPU index, empty strings.
  const std::pair<const char*, nlohmann::json> defaults[] = {
      {"event_type", "unknown"},
      {"system", "DCGM_HEALTH_WATCH_UNKNOWN"},
      {"gpu_index", -1},
      {"gpu_uuid", ""},
      {"message", ""},
      {"timestamp", ""},
      {"metrics", nlohmann::json::object()}};
  for (const auto& [key, value] : defaults) {
    if (!j.contains(key)) j[key] = value;
  }
  if (j.contains("metrics") && j["metrics"].is_object()) {
    for (auto& [k, v] : j["metrics"].items()) {
      if (v.is_string()) {
        cel::Value typed = TypedMetric(v.get<std::string>());
        v = cel::ValueToJson(typed);
      }
    }
  }
  return cel::ValueFromJson(j);
}

}  // namespace navarch
