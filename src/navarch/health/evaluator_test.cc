#include "navarch/health/evaluator.h"

#include <map>

#include "gtest/gtest.h"

namespace navarch {
namespace {

HealthEvent Event(HealthEventType type,
                  std::map<std::string, std::string> metrics,
                  HealthWatchSystem system = HEALTH_WATCH_SYSTEM_UNKNOWN) {
  HealthEvent e;
  e.set_event_type(type);
  e.set_system(system);
  e.set_gpu_index(0);
  for (auto& [k, v] : metrics) (*e.mutable_metrics())[k] = v;
  return e;
}

HealthEvent Xid(int code) {
  return Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", std::to_string(code)}});
}

HealthStatus Classify(const HealthEvent& e) {
  PolicyEvaluator eval;
  ReportHealthRequest r;
  *r.add_events() = e;
  return eval.Evaluate(NodeInfo(), r).status;
}

// The default policy, as docs/health.md describes it.
TEST(DefaultPolicyTest, HardwareXidsAreUnhealthy) {
  for (int code : {48, 64, 74, 79, 95, 119, 120, 140}) {
    EXPECT_EQ(Classify(Xid(code)), HEALTH_STATUS_UNHEALTHY) << "XID " << code;
  }
}

TEST(DefaultPolicyTest, RowRemapRecordingIsAttentionNotReplacement) {
  // XID 63: a row was marked for remapping; the catalog asks for a GPU reset
  // at the next opportunity, not a replacement. 64 (remapping failed) is.
  EXPECT_EQ(Classify(Xid(63)), HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Xid(7)), HEALTH_STATUS_DEGRADED);  // unknown: worth a look
}

TEST(DefaultPolicyTest, ApplicationXidsDoNotMakeANodeUnhealthy) {
  for (int code : {13, 31, 43, 45}) {
    EXPECT_NE(Classify(Xid(code)), HEALTH_STATUS_UNHEALTHY) << "XID " << code;
  }
}

TEST(DefaultPolicyTest, OtherSignals) {
  EXPECT_EQ(
      Classify(Event(HEALTH_EVENT_TYPE_ECC_DBE, {{"ecc_dbe_count", "1"}})),
      HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(
      Classify(Event(HEALTH_EVENT_TYPE_ECC_SBE, {{"ecc_sbe_count", "500"}})),
      HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "96"}})),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "88"}})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "60"}})),
            HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_NVLINK, {})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_PCIE, {})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_POWER, {})),
            HEALTH_STATUS_DEGRADED);
}

TEST(PolicyEvaluatorTest, SeparatesEventsFromChecksAndWorstWins) {
  PolicyEvaluator eval;
  ReportHealthRequest r;
  auto* res = r.add_results();
  res->set_check_name("boot");
  res->set_status(HEALTH_STATUS_DEGRADED);
  auto ev = eval.Evaluate(NodeInfo(), r);
  EXPECT_EQ(ev.status, HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(ev.check_status, HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(ev.event_status, HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(ev.decided_by, "check:boot");
  *r.add_events() = Xid(79);
  ev = eval.Evaluate(NodeInfo(), r);
  EXPECT_EQ(ev.status, HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(ev.event_status, HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(ev.decided_by.rfind("rule:", 0), 0u) << ev.decided_by;
  ASSERT_EQ(ev.verdicts.size(), 1u);
  EXPECT_FALSE(ev.verdicts[0].rule.empty());
  EXPECT_NE(ev.message.find("XID 79"), std::string::npos) << ev.message;
  EXPECT_EQ(eval.Evaluate(NodeInfo(), ReportHealthRequest()).status,
            HEALTH_STATUS_HEALTHY);
}

TEST(PolicyEvaluatorTest, SwapsPoliciesAtomically) {
  PolicyEvaluator eval;
  auto all_bad = Policy::Parse(
      "rules:\n  - {name: all, condition: 'true', result: unhealthy}\n",
      "p.yaml");
  ASSERT_TRUE(all_bad.ok()) << all_bad.status();
  eval.SetPolicy(*all_bad);
  EXPECT_EQ(Classify(Xid(13)),
            HEALTH_STATUS_HEALTHY);  // a fresh evaluator: default
  ReportHealthRequest r;
  *r.add_events() = Xid(13);
  EXPECT_EQ(eval.Evaluate(NodeInfo(), r).status, HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(eval.Name(), "policy:p.yaml");
}

}  // namespace
}  // namespace navarch
