#include "navarch/controlplane/metrics.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/controlplane/fleet_metrics.h"
#include "navarch/controlplane/instrumented_store.h"
#include "navarch/controlplane/pool_metrics.h"
#include "navarch/controlplane/process_metrics.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/controlplane/test_util.h"
#include "navarch/health/evaluator.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricValueTest, IntegersExactlyAndSpecialValues) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(1234567890123), "1234567890123");
  EXPECT_EQ(FormatMetricValue(0.5), "0.5");
  EXPECT_EQ(FormatMetricValue(0.0025), "0.0025000000000000001");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(0.0 / 0.0), "NaN");
}

TEST(MetricsRegistryTest, CountersWithEscapedLabels) {
  MetricsRegistry r;
  CounterFamily& c =
      r.AddCounter("x_total", "Help with \\ and\nnewline.", {"a", "b"});
  c.Add({"plain", "q\"uote\\back\nline"}, 2);
  c.Add({"plain", "q\"uote\\back\nline"});
  c.Add({"other", ""}, -5);  // ignored: counters never go down
  EXPECT_EQ(r.Render(),
            "# HELP x_total Help with \\\\ and\\nnewline.\n"
            "# TYPE x_total counter\n"
            "x_total{a=\"plain\",b=\"q\\\"uote\\\\back\\nline\"} 3\n");
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulative) {
  MetricsRegistry r;
  HistogramFamily& h =
      r.AddHistogram("lat_seconds", "Latency.", {"m"}, {0.1, 1});
  h.Observe({"a"}, 0.05);
  h.Observe({"a"}, 0.5);
  h.Observe({"a"}, 7);
  EXPECT_EQ(h.Count({"a"}), 3u);
  EXPECT_EQ(r.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{m=\"a\",le=\"0.10000000000000001\"} 1\n"
            "lat_seconds_bucket{m=\"a\",le=\"1\"} 2\n"
            "lat_seconds_bucket{m=\"a\",le=\"+Inf\"} 3\n"
            "lat_seconds_sum{m=\"a\"} 7.5499999999999998\n"
            "lat_seconds_count{m=\"a\"} 3\n");
}

TEST(MetricsRegistryTest, CollectorsRunAtEachScrape) {
  MetricsRegistry r;
  int scrapes = 0;
  r.AddCollector([&scrapes](MetricWriter& w) {
    ++scrapes;
    w.Family("g", "A gauge.", MetricType::kGauge, {});
    w.Sample({}, scrapes);
  });
  EXPECT_THAT(r.Render(), HasSubstr("\ng 1\n"));
  EXPECT_THAT(r.Render(), HasSubstr("\ng 2\n"));
}

// A fleet on the memory store with some life in it, measured by every
// collector the control plane installs; promtool must accept the result.
class FleetMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<InstrumentedStore>(
        std::make_unique<MemoryStore>(), clock_, registry_);
    fleet_ = std::make_unique<FleetService>(*store_, clock_, evaluator_,
                                            NullLogger(), FleetOptions{});
    ASSERT_TRUE(fleet_->Start().ok());
    AddFleetMetrics(registry_, *fleet_);
    AddProcessMetrics(registry_);
    AddBuildInfo(registry_);
    rpc_ = std::make_unique<RpcMetrics>(registry_);
  }
  void TearDown() override { fleet_->Stop(); }

  void Register(const std::string& id, const std::string& provider, int gpus) {
    RegisterNodeRequest r;
    r.set_node_id(id);
    r.set_provider(provider);
    for (int i = 0; i < gpus; ++i) r.add_gpus()->set_index(i);
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet_->RegisterNode(r, done);
                }).ok());
  }

  FakeClock clock_;
  PolicyEvaluator evaluator_;
  MetricsRegistry registry_;
  std::unique_ptr<InstrumentedStore> store_;
  std::unique_ptr<FleetService> fleet_;
  std::unique_ptr<RpcMetrics> rpc_;
};

TEST_F(FleetMetricsTest, UpstreamFamiliesKeepTheirNamesLabelsAndValues) {
  Register("a", "lambda", 8);
  Register("b", "lambda", 8);
  Register("c", "", 2);
  IssueCommandRequest cordon;
  cordon.set_node_id("b");
  cordon.set_command_type(NODE_COMMAND_TYPE_CORDON);
  ASSERT_TRUE(Await<IssueCommandResponse>([&](auto done) {
                fleet_->IssueCommand(cordon, Actor{"operator:ops"}, done);
              }).ok());
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE navarch_nodes_total untyped\n"));
  EXPECT_THAT(text, HasSubstr("navarch_nodes_total{status=\"active\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("navarch_nodes_total{status=\"cordoned\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_nodes_total{status=\"unhealthy\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("navarch_gpus_total{provider=\"lambda\"} 16\n"));
  EXPECT_THAT(text, HasSubstr("navarch_gpus_total{provider=\"unknown\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("navarch_node_health_status{node_id=\"a\","
                              "status=\"unknown\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("navarch_commands_issued_total{type=\"cordon\"} "
                              "1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_node_status_changes_total{from="
                              "\"active\",to=\"cordoned\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_store_operations_total{operation="
                              "\"commit\",code=\"ok\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("navarch_store_commit_duration_seconds_count{"
                              "operation=\"commit\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("navarch_build_info{version=\""));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("process_start_time_seconds "));
  EXPECT_THAT(text, HasSubstr("process_open_fds "));
  EXPECT_THAT(text, HasSubstr("process_cpu_seconds_total "));
}

TEST_F(FleetMetricsTest, HealthEventsHeartbeatsAndRules) {
  Register("a", "fake", 1);
  HeartbeatRequest hb;
  hb.set_node_id("a");
  ASSERT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                fleet_->SendHeartbeat(hb, done);
              }).ok());
  ReportHealthRequest report;
  report.set_node_id("a");
  HealthEvent* e = report.add_events();
  e->set_event_type(HEALTH_EVENT_TYPE_XID);
  (*e->mutable_metrics())["xid_code"] = "79";
  e->set_message("GPU has fallen off the bus");
  ASSERT_TRUE(Await<ReportHealthResponse>([&](auto done) {
                fleet_->ReportHealth(report, done);
              }).ok());
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("navarch_heartbeats_received_total 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_health_reports_total 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("navarch_health_events_total{type=\"xid\",xid=\"79\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_policy_rule_matches_total{rule=\""));
  EXPECT_THAT(text, HasSubstr("navarch_node_health_status{node_id=\"a\","
                              "status=\"unhealthy\"} 0\n"));
}

TEST_F(FleetMetricsTest, TerminatedNodesLeaveTheNodeGauges) {
  Register("a", "fake", 4);
  ASSERT_TRUE(Await<NodeInfo>([&](auto done) {
                fleet_->MarkTerminated("a", "test", Actor{"test"}, done);
              }).ok());
  const std::string text = registry_.Render();
  EXPECT_THAT(text,
              HasSubstr("navarch_nodes_total{status=\"terminated\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("navarch_node_health_status{node_id=\"a\"")));
  EXPECT_THAT(text, Not(HasSubstr("navarch_gpus_total{provider=\"fake\"}")));
}

TEST_F(FleetMetricsTest, PromtoolAcceptsTheExposition) {
#ifndef NAVARCH_PROMTOOL
  GTEST_SKIP() << "promtool not found (Debian package prometheus)";
#else
  Register("a", "lambda", 8);
  Register("b", "gcp", 0);
  rpc_->Record("grpc", "ListNodes", absl::StatusCode::kOk,
               absl::Milliseconds(2));
  rpc_->Record("rest", "GetNode", absl::StatusCode::kNotFound,
               absl::Microseconds(300));
  rpc_->RecordStream("grpc", "WatchCommands", absl::StatusCode::kOk);
  testing::PromtoolResult r =
      testing::PromtoolCheckMetrics(NAVARCH_PROMTOOL, registry_.Render());
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << registry_.Render();
  EXPECT_EQ(r.output, "");
#endif
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

// The pool manager's gauges and counters, through a tick of a real pool on
// the fake provider; promtool accepts them too.
TEST_F(FleetMetricsTest, PoolFamiliesAndPromtool) {
  ProviderRegistry providers;
  FakeProviderOptions fo;
  fo.name = "sim";
  ASSERT_TRUE(providers.Add(std::make_unique<FakeProvider>(clock_, fo)).ok());
  Config config;
  config.providers["sim"].name = "sim";
  config.providers["sim"].type = ProviderType::kFake;
  PoolConfig pool;
  pool.name = "train";
  pool.providers = {PoolProvider{.name = "sim"}};
  pool.instance_type = "h100-8x";
  pool.min_nodes = 2;
  pool.max_nodes = 4;
  pool.labels = {{"pool", "train"}};
  pool.metrics.type = MetricsSourceType::kCommand;
  pool.metrics.command = {"/bin/sh", "-c", "exit 1"};
  config.pools["train"] = pool;
  NoopNotifier notifier;
  PoolManager manager(*fleet_, providers, notifier, clock_, config);
  ASSERT_TRUE(manager.Init().ok());
  AddPoolMetrics(registry_, manager);
  manager.Tick();
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("navarch_pool_target_nodes{pool=\"train\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("navarch_pool_scaling_actions_total{pool=\"train\","
                        "direction=\"up\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("navarch_provider_calls_total{provider=\"sim\","
                              "operation=\"provision\",code=\"ok\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("navarch_pool_metrics_source_up{pool=\"train\","
                              "source=\"command\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("navarch_pool_metrics_source_errors_total{pool="
                              "\"train\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("# TYPE navarch_pool_replacements_total counter"));
  EXPECT_THAT(text, HasSubstr("navarch_pool_breaker_open{pool=\"train\"} 0\n"));
#ifdef NAVARCH_PROMTOOL
  testing::PromtoolResult r =
      testing::PromtoolCheckMetrics(NAVARCH_PROMTOOL, text);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << text;
  EXPECT_EQ(r.output, "");
#endif
}

}  // namespace
}  // namespace navarch
