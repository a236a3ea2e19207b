// The health-policy style of expression this library exists for: the rules
// of the upstream default policy (reference/navarch-go-inventory.md §5.4)
// evaluated against events built from JSON, as the health component does.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/json.h"
#include "navarch/cel/program.h"
#include "nlohmann/json.hpp"

namespace navarch::cel {
namespace {

using ::testing::HasSubstr;

struct Rule {
  const char* name;
  const char* condition;
};

// clang-format off
const Rule kDefaultPolicy[] = {
    {"fatal-xid", R"(event.event_type == "xid" && event.metrics.xid_code in [13, 31, 32, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 100, 119, 120])"},
    {"recoverable-xid", R"(event.event_type == "xid")"},
    {"ecc-dbe", R"(event.event_type == "ecc_dbe" || (event.system == "DCGM_HEALTH_WATCH_MEM" && has(event.metrics.ecc_dbe_count) && event.metrics.ecc_dbe_count > 0))"},
    {"ecc-sbe-high", R"(event.event_type == "ecc_sbe" && has(event.metrics.ecc_sbe_count) && event.metrics.ecc_sbe_count > 100)"},
    {"thermal-critical", R"(event.event_type == "thermal" && has(event.metrics.temperature) && event.metrics.temperature >= 95)"},
    {"thermal-warning", R"(event.event_type == "thermal" && has(event.metrics.temperature) && event.metrics.temperature >= 85)"},
    {"nvlink-error", R"(event.event_type == "nvlink" || event.system == "DCGM_HEALTH_WATCH_NVLINK")"},
    {"pcie-error", R"(event.event_type == "pcie" || event.system == "DCGM_HEALTH_WATCH_PCIE")"},
    {"power-warning", R"(event.event_type == "power" || event.system == "DCGM_HEALTH_WATCH_POWER")"},
    {"default", "true"},
};
// clang-format on

Activation EventActivation(const char* event_json) {
  absl::StatusOr<Value> event =
      ValueFromJson(nlohmann::json::parse(event_json));
  EXPECT_TRUE(event.ok()) << event.status();
  Activation a;
  a.Bind("event", *event);
  return a;
}

// The first rule whose condition is true; a rule that errs or yields a
// non-bool is skipped, as upstream does.
std::string FirstMatch(const std::vector<Program>& rules,
                       const Activation& activation) {
  for (size_t i = 0; i < rules.size(); ++i) {
    absl::StatusOr<Value> v = rules[i].Evaluate(activation);
    if (v.ok() && v->is_bool() && v->bool_value()) {
      return kDefaultPolicy[i].name;
    }
  }
  return "none";
}

std::vector<Program> CompilePolicy() {
  std::vector<Program> rules;
  for (const Rule& r : kDefaultPolicy) {
    absl::StatusOr<Program> p = Program::Compile(r.condition);
    EXPECT_TRUE(p.ok()) << r.name << ": " << p.status();
    rules.push_back(*p);
  }
  return rules;
}

TEST(CelPolicyTest, DefaultPolicyClassifiesEvents) {
  const std::vector<Program> rules = CompilePolicy();
  struct Case {
    const char* event;
    const char* rule;
  };
  // clang-format off
  const Case cases[] = {
      {R"({"event_type": "xid", "system": "", "metrics": {"xid_code": 79}})", "fatal-xid"},
      {R"({"event_type": "xid", "metrics": {"xid_code": 13, "pid": 4242}})", "fatal-xid"},
      {R"({"event_type": "xid", "metrics": {"xid_code": 120}})", "fatal-xid"},
      {R"({"event_type": "xid", "metrics": {"xid_code": 999}})", "recoverable-xid"},
      {R"({"event_type": "xid", "metrics": {"xid_code": 79.0}})", "fatal-xid"},
      // No xid_code: the fatal rule errs ("no such key") and is skipped.
      {R"({"event_type": "xid", "metrics": {}})", "recoverable-xid"},
      {R"({"event_type": "ecc_dbe", "metrics": {}})", "ecc-dbe"},
      {R"({"event_type": "memory", "system": "DCGM_HEALTH_WATCH_MEM", "metrics": {"ecc_dbe_count": 2}})", "ecc-dbe"},
      {R"({"event_type": "memory", "system": "DCGM_HEALTH_WATCH_MEM", "metrics": {"ecc_dbe_count": 0}})", "default"},
      {R"({"event_type": "memory", "system": "DCGM_HEALTH_WATCH_MEM", "metrics": {}})", "default"},
      {R"({"event_type": "ecc_sbe", "metrics": {"ecc_sbe_count": 101}})", "ecc-sbe-high"},
      {R"({"event_type": "ecc_sbe", "metrics": {"ecc_sbe_count": 100}})", "default"},
      {R"({"event_type": "thermal", "metrics": {"temperature": 96.5}})", "thermal-critical"},
      {R"({"event_type": "thermal", "metrics": {"temperature": 95}})", "thermal-critical"},
      {R"({"event_type": "thermal", "metrics": {"temperature": 90}})", "thermal-warning"},
      {R"({"event_type": "thermal", "metrics": {"temperature": 84.9}})", "default"},
      {R"({"event_type": "thermal", "metrics": {}})", "default"},
      {R"({"event_type": "nvlink", "metrics": {}})", "nvlink-error"},
      {R"({"event_type": "unknown", "system": "DCGM_HEALTH_WATCH_NVLINK", "metrics": {}})", "nvlink-error"},
      {R"({"event_type": "pcie", "metrics": {}})", "pcie-error"},
      {R"({"event_type": "unknown", "system": "DCGM_HEALTH_WATCH_POWER"})", "power-warning"},
      {R"({"event_type": "driver_error", "system": "DCGM_HEALTH_WATCH_DRIVER", "metrics": {}})", "default"},
  };
  // clang-format on
  for (const Case& c : cases) {
    SCOPED_TRACE(c.event);
    EXPECT_EQ(FirstMatch(rules, EventActivation(c.event)), c.rule);
  }
}

TEST(CelPolicyTest, MissingKeyIsAnErrorNotFalse) {
  const Program p = *Program::Compile("event.metrics.temperature >= 95");
  absl::StatusOr<Value> v = p.Evaluate(
      EventActivation(R"({"event_type": "thermal", "metrics": {}})"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "no such key: temperature");
}

TEST(CelPolicyTest, HasGuardsMissingKeysInEitherOrder) {
  const Activation a =
      EventActivation(R"({"event_type": "thermal", "metrics": {}})");
  for (const char* expr :
       {"has(event.metrics.temperature) && event.metrics.temperature >= 95",
        "event.metrics.temperature >= 95 && has(event.metrics.temperature)",
        "event.event_type == 'xid' && event.metrics.xid_code == 79",
        "event.metrics.xid_code == 79 && event.event_type == 'xid'"}) {
    SCOPED_TRACE(expr);
    absl::StatusOr<Value> v = Program::Compile(expr)->Evaluate(a);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_FALSE(v->bool_value());
  }
}

TEST(CelPolicyTest, CommentsAndLayoutInConditions) {
  const Program p = *Program::Compile(R"(
      // Fatal XIDs (see the XID catalog).
      event.event_type == "xid" &&
        event.metrics.xid_code in [48, 79, 95]  // double-bit ECC, off the bus
  )");
  EXPECT_TRUE(
      p.Evaluate(EventActivation(
                     R"({"event_type": "xid", "metrics": {"xid_code": 48}})"))
          ->bool_value());
}

TEST(CelPolicyTest, RicherConditions) {
  const Activation a = EventActivation(R"({
      "event_type": "xid", "gpu_index": 3, "gpu_uuid": "GPU-1a2b",
      "message": "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus",
      "metrics": {"xid_code": 79, "retired_pages": [1, 7, 9], "clocks": {"sm": 1410}}})");
  struct Case {
    const char* expr;
    const char* want;
  };
  // clang-format off
  const Case cases[] = {
      {R"(event.message.contains("fallen off the bus"))", "true"},
      {R"(event.message.matches(r"Xid \(PCI:[0-9a-f:.]+\): (48|79)\b"))", "true"},
      {R"(event.gpu_uuid.startsWith("GPU-") && event.gpu_index >= 0)", "true"},
      {R"(size(event.metrics.retired_pages) > 2)", "true"},
      {R"(event.metrics.retired_pages.exists(p, p > 8))", "true"},
      {R"(event.metrics.retired_pages.filter(p, p % 2 == 1).size())", "3"},
      {R"(event.metrics.clocks.sm < 1500.0)", "true"},
      {R"(event.metrics.xid_code in [13, 31, 79] ? "unhealthy" : "degraded")", R"("unhealthy")"},
      {R"("metrics" in event && "xid_code" in event.metrics)", "true"},
      {R"(event.metrics.exists(k, k.startsWith("clock")))", "true"},
      {R"(string(event.metrics.xid_code) + ":" + event.gpu_uuid)", R"("79:GPU-1a2b")"},
      {R"(has(event.metrics.ecc) ? event.metrics.ecc > 0 : false)", "false"},
  };
  // clang-format on
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expr);
    absl::StatusOr<Program> p = Program::Compile(c.expr);
    ASSERT_TRUE(p.ok()) << p.status();
    absl::StatusOr<Value> v = p->Evaluate(a);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->DebugString(), c.want);
  }
}

TEST(CelPolicyTest, TypoInFunctionNameFailsAtCompileTime) {
  absl::StatusOr<Program> p =
      Program::Compile("event.message.startswith('NVRM')");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "1:15: undeclared reference to 'startswith'");
}

TEST(CelPolicyTest, MixedArithmeticNeedsConversion) {
  const Activation a = EventActivation(
      R"({"event_type": "thermal", "metrics": {"temperature": 90.5, "limit": 5}})");
  absl::StatusOr<Value> v =
      Program::Compile("event.metrics.temperature + event.metrics.limit > 95.0")
          ->Evaluate(a);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("no such overload: _+_(double, int)"));
  v = Program::Compile(
          "event.metrics.temperature + double(event.metrics.limit) > 95.0")
          ->Evaluate(a);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->bool_value());
}

}  // namespace
}  // namespace navarch::cel
