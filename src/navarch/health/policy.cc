#include "navarch/health/policy.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/logging.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/json.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace navarch {

// Defined in the generated default_policy.cc (CMake embeds
// examples/health-policy.yaml).
extern const char kDefaultPolicyYaml[];

namespace {

std::string At(absl::string_view file, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return std::string(file);
  return absl::StrCat(file, ":", m.line + 1, ":", m.column + 1);
}

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
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  std::vector<std::string> errors;
  auto policy = std::make_shared<Policy>();
  policy->source_ = std::string(filename);
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ": a policy is a map with version, metadata and rules"));
  }
  static const std::set<std::string> kTop = {"version", "metadata", "rules"};
  static const std::set<std::string> kRule = {"name", "description",
                                              "condition", "result"};
  try {
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!kTop.count(key)) {
        errors.push_back(
            absl::StrCat(At(filename, kv.first), ": unknown key '", key, "'"));
      }
    }
    if (root["metadata"] && root["metadata"].IsMap() &&
        root["metadata"]["name"]) {
      policy->name_ = root["metadata"]["name"].as<std::string>();
    }
    const YAML::Node rules = root["rules"];
    if (!rules || !rules.IsSequence() || rules.size() == 0) {
      errors.push_back(
          absl::StrCat(filename, ": policy must have at least one rule"));
    } else {
      std::set<std::string> names;
      for (size_t i = 0; i < rules.size(); ++i) {
        const YAML::Node r = rules[i];
        std::string where = At(filename, r);
        if (!r.IsMap()) {
          errors.push_back(
              absl::StrCat(where, ": rule ", i + 1, " is not a map"));
          continue;
        }
        for (const auto& kv : r) {
          std::string key = kv.first.as<std::string>();
          if (!kRule.count(key)) {
            errors.push_back(absl::StrCat(At(filename, kv.first), ": rule ",
                                          i + 1, ": unknown key '", key, "'"));
          }
        }
        PolicyRule rule;
        rule.line = r.Mark().line + 1;
        if (r["name"]) rule.name = r["name"].as<std::string>();
        if (rule.name.empty()) {
          errors.push_back(
              absl::StrCat(where, ": rule ", i + 1, ": name is required"));
          continue;
        }
        std::string label = absl::StrCat(where, ": rule \"", rule.name, "\"");
        if (!names.insert(rule.name).second) {
          errors.push_back(absl::StrCat(label, ": duplicate rule name"));
        }
        if (r["description"])
          rule.description = r["description"].as<std::string>();
        if (r["condition"]) rule.condition = r["condition"].as<std::string>();
        if (rule.condition.empty()) {
          errors.push_back(absl::StrCat(label, ": condition is required"));
        } else {
          auto program = cel::Program::Compile(rule.condition);
          if (!program.ok()) {
            errors.push_back(absl::StrCat(
                At(filename, r["condition"]), ": rule \"", rule.name,
                "\": condition: ", program.status().message()));
          } else {
            rule.program = std::move(*program);
          }
        }
        std::string result = r["result"] ? r["result"].as<std::string>() : "";
        auto parsed = ParsePolicyResult(result);
        if (!parsed.ok()) {
          errors.push_back(
              absl::StrCat(label, ": ", parsed.status().message()));
        } else {
          rule.result = *parsed;
        }
        policy->rules_.push_back(std::move(rule));
      }
    }
  } catch (const YAML::Exception& e) {
    errors.push_back(absl::StrCat(filename, ":", e.mark.line + 1, ":",
                                  e.mark.column + 1, ": ", e.msg));
  }
  if (!errors.empty())
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
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
