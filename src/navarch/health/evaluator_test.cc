#include "navarch/health/evaluator.h"

#include "gtest/gtest.h"

namespace navarch {
namespace {

HealthEvent Event(HealthEventType type,
                  std::map<std::string, std::string> metrics,
                  HealthWatchSystem system = HEALTH_WATCH_SYSTEM_UNKNOWN) {
  HealthEvent e;
  e.set_event_type(type);
  e.set_system(system);
  for (auto& [k, v] : metrics) (*e.mutable_metrics())[k] = v;
  return e;
}

HealthStatus Classify(const HealthEvent& e) {
  return BuiltinPolicyEvaluator::Classify(e).status;
}

TEST(BuiltinPolicyTest, ClassifiesLikeUpstreamsDefaultPolicy) {
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", "79"}})),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", "48"}})),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", "7"}})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_ECC_DBE, {})),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_MEMORY, {{"ecc_dbe_count", "2"}},
                           HEALTH_WATCH_SYSTEM_MEM)),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(
      Classify(Event(HEALTH_EVENT_TYPE_ECC_SBE, {{"ecc_sbe_count", "101"}})),
      HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(
      Classify(Event(HEALTH_EVENT_TYPE_ECC_SBE, {{"ecc_sbe_count", "100"}})),
      HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "95"}})),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "90"}})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_THERMAL, {{"temperature", "70"}})),
            HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_NVLINK, {})),
            HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(
      Classify(Event(HEALTH_EVENT_TYPE_UNKNOWN, {}, HEALTH_WATCH_SYSTEM_PCIE)),
      HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(Classify(Event(HEALTH_EVENT_TYPE_POWER, {})),
            HEALTH_STATUS_DEGRADED);
}

TEST(BuiltinPolicyTest, WorstAcrossResultsAndEventsWins) {
  BuiltinPolicyEvaluator eval;
  ReportHealthRequest r;
  auto* res = r.add_results();
  res->set_check_name("boot");
  res->set_status(HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(eval.Evaluate(NodeInfo(), r).status, HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(eval.Evaluate(NodeInfo(), r).decided_by, "check:boot");
  *r.add_events() = Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", "13"}});
  *r.add_events() = Event(HEALTH_EVENT_TYPE_XID, {{"xid_code", "79"}});
  auto ev = eval.Evaluate(NodeInfo(), r);
  EXPECT_EQ(ev.status, HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(ev.decided_by, "rule:fatal-xid");
  ASSERT_EQ(ev.verdicts.size(), 2u);
  EXPECT_EQ(ev.verdicts[1].event_index, 1);
  EXPECT_EQ(eval.Evaluate(NodeInfo(), ReportHealthRequest()).status,
            HEALTH_STATUS_HEALTHY);
}

}  // namespace
}  // namespace navarch
