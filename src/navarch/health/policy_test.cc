#include "navarch/health/policy.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "navarch/cel/json.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

std::string Error(absl::string_view yaml) {
  auto p = Policy::Parse(yaml, "policy.yaml");
  return p.ok() ? "" : std::string(p.status().message());
}

TEST(PolicyTest, ParsesUpstreamFormat) {
  auto p = Policy::Parse(R"(version: v1
metadata:
  name: strict
  description: test
rules:
  - name: fatal
    description: fatal XIDs
    condition: event.event_type == "xid" && event.metrics.xid_code in [48, 79]
    result: unhealthy
  - name: default
    condition: "true"
    result: healthy
)",
                         "strict.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "strict");
  ASSERT_EQ((*p)->rules().size(), 2u);
  EXPECT_EQ((*p)->rules()[0].result, HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ((*p)->rules()[0].line, 6);
  HealthEvent e;
  e.set_event_type(HEALTH_EVENT_TYPE_XID);
  (*e.mutable_metrics())["xid_code"] = "79";
  RuleMatch m = (*p)->Match(EventToCel(e));
  ASSERT_NE(m.rule, nullptr);
  EXPECT_EQ(m.rule->name, "fatal");
  (*e.mutable_metrics())["xid_code"] = "13";
  EXPECT_EQ((*p)->Match(EventToCel(e)).rule->name, "default");
}

TEST(PolicyTest, ValidationNamesFileRuleAndPosition) {
  EXPECT_NE(Error("rules: []\n").find("policy must have at least one rule"),
            std::string::npos);
  EXPECT_NE(Error("rules:\n  - {condition: 'true', result: healthy}\n")
                .find("name is required"),
            std::string::npos);
  std::string dup = Error(
      "rules:\n  - {name: a, condition: 'true', result: healthy}\n"
      "  - {name: a, condition: 'true', result: healthy}\n");
  EXPECT_NE(dup.find("policy.yaml:3:5: rule \"a\": duplicate rule name"),
            std::string::npos)
      << dup;
  std::string bad_result =
      Error("rules:\n  - {name: a, condition: 'true', result: sick}\n");
  EXPECT_NE(bad_result.find("invalid result \"sick\""), std::string::npos)
      << bad_result;
  std::string syntax = Error(
      "rules:\n  - name: broken\n    condition: event.x ==\n    result: "
      "healthy\n");
  EXPECT_NE(syntax.find("policy.yaml:3:16: rule \"broken\": condition: 1:"),
            std::string::npos)
      << syntax;
  std::string unknown = Error(
      "rules:\n  - {name: a, condition: 'true', result: healthy, when: x}\n");
  EXPECT_NE(unknown.find("unknown key 'when'"), std::string::npos) << unknown;
  // The shared reader: wrong types are named, with the keys a rule takes.
  std::string typed =
      Error("rules:\n  - {name: a, condition: [x], result: healthy}\n");
  EXPECT_NE(typed.find("policy.yaml:2:26: rule 1.condition: expected a "
                       "string, got a list"),
            std::string::npos)
      << typed;
  EXPECT_NE(unknown.find("(known: name, description, condition, result)"),
            std::string::npos)
      << unknown;
  EXPECT_NE(Error("rules: []\n---\nrules: []\n")
                .find("only one YAML document is allowed"),
            std::string::npos);
  // All errors at once.
  std::string many = Error(
      "rules:\n  - {name: a, condition: '1 +', result: healthy}\n"
      "  - {name: b, condition: 'true', result: nope}\n");
  EXPECT_NE(many.find("rule \"a\""), std::string::npos);
  EXPECT_NE(many.find("rule \"b\""), std::string::npos);
}

TEST(PolicyTest, EventVariableIsTyped) {
  HealthEvent e;
  e.set_event_type(HEALTH_EVENT_TYPE_THERMAL);
  e.set_system(HEALTH_WATCH_SYSTEM_THERMAL);
  e.set_gpu_index(3);
  e.set_gpu_uuid("GPU-1");
  (*e.mutable_metrics())["temperature"] = "91";
  (*e.mutable_metrics())["ratio"] = "0.5";
  (*e.mutable_metrics())["throttled"] = "true";
  (*e.mutable_metrics())["reason"] = "hw_slowdown";
  nlohmann::json j = cel::ValueToJson(EventToCel(e));
  EXPECT_EQ(j["event_type"], "thermal");
  EXPECT_EQ(j["system"], "DCGM_HEALTH_WATCH_THERMAL");
  EXPECT_EQ(j["gpu_index"], 3);
  EXPECT_EQ(j["metrics"]["temperature"], 91);
  EXPECT_EQ(j["metrics"]["ratio"], 0.5);
  EXPECT_EQ(j["metrics"]["throttled"], true);
  EXPECT_EQ(j["metrics"]["reason"], "hw_slowdown");
  HealthEvent unknown;
  nlohmann::json u = cel::ValueToJson(EventToCel(unknown));
  EXPECT_EQ(u["event_type"], "unknown");
  EXPECT_EQ(u["system"], "DCGM_HEALTH_WATCH_UNKNOWN");
}

TEST(PolicyTest, DefaultPolicyIsTheShippedExample) {
  std::ifstream in(std::string(NAVARCH_SOURCE_DIR) +
                   "/examples/health-policy.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(Policy::DefaultYaml(), ss.str());
  EXPECT_GE(Policy::Default()->rules().size(), 5u);
  EXPECT_EQ(Policy::Default()->rules().back().result, HEALTH_STATUS_HEALTHY);
}

TEST(PolicyTest, EventsFromJsonTypeStringMetrics) {
  auto v = EventJsonToCel(
      R"({"event_type": "xid", "metrics": {"xid_code": "79", "n": 3}})");
  ASSERT_TRUE(v.ok());
  nlohmann::json j = cel::ValueToJson(*v);
  EXPECT_EQ(j["metrics"]["xid_code"], 79);
  EXPECT_EQ(j["metrics"]["n"], 3);
  EXPECT_FALSE(EventJsonToCel("[1]").ok());
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

HealthStatus ResultOf(const Policy& p, int gpu, int xid) {
  HealthEvent e;
  e.set_event_type(HEALTH_EVENT_TYPE_XID);
  e.set_gpu_index(gpu);
  (*e.mutable_metrics())["xid_code"] = std::to_string(xid);
  RuleMatch m = p.Match(EventToCel(e));
  return m.rule == nullptr ? HEALTH_STATUS_HEALTHY : m.rule->result;
}

// The three example policies of upstream's health-policy.md load unchanged and
// behave as that page says.
TEST(UpstreamExamplePoliciesTest, LoadAndBehaveAsDocumented) {
  std::string dir =
      std::string(NAVARCH_SOURCE_DIR) + "/examples/health-policies/";
  auto strict = Policy::LoadFile(dir + "strict.yaml");
  ASSERT_TRUE(strict.ok()) << strict.status();
  EXPECT_EQ(ResultOf(**strict, 0, 13),
            HEALTH_STATUS_UNHEALTHY);  // any XID is fatal

  auto permissive = Policy::LoadFile(dir + "permissive.yaml");
  ASSERT_TRUE(permissive.ok()) << permissive.status();
  EXPECT_EQ(ResultOf(**permissive, 0, 79),
            HEALTH_STATUS_UNHEALTHY);  // only bus errors
  EXPECT_EQ(ResultOf(**permissive, 0, 48), HEALTH_STATUS_HEALTHY);

  auto gpu = Policy::LoadFile(dir + "gpu-specific.yaml");
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(ResultOf(**gpu, 0, 13),
            HEALTH_STATUS_UNHEALTHY);  // GPU 0 is strict
  EXPECT_EQ(ResultOf(**gpu, 1, 13), HEALTH_STATUS_DEGRADED);
}

}  // namespace
}  // namespace navarch
