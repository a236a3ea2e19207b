// The event engine and assertions, end to end through RunScenario: real
// fleet core, policy and controllers on a FakeClock.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/sim/report.h"
#include "navarch/sim/scenario.h"
#include "navarch/sim/simulation.h"

namespace navarch::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Outcome {
  SimResult result;
  std::string out;
};

Outcome Simulate(const std::string& yaml, uint64_t seed = 0,
                 bool elide_calls = true) {
  ParseResult p = ParseScenario(yaml, "t.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  std::ostringstream out;
  SimOptions o;
  o.seed = seed;
  o.out = &out;
  o.elide_calls = elide_calls;
  Outcome r{RunScenario(p.scenario, o), ""};
  r.out = out.str();
  return r;
}

const char kFleet[] =
    "name: t\nfleet:\n  - id: n1\n  - id: n2\n    zone: us-central1-b\n";

TEST(EngineTest, RealtimePacingSeesEveryStepInOrder) {
  // --realtime waits before each step (agents' ticks and the clock's
  // timers alike) until as much wall time has passed: the steps it is told
  // about never go back and reach the last event.
  ParseResult p = ParseScenario(
      absl::StrCat(kFleet,
                   "events:\n  - {at: 0s, action: start_fleet}\n"
                   "  - {at: 2m, action: log, params: {message: end}}\n"),
      "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  std::vector<absl::Duration> steps;
  SimOptions o;
  o.pace = [&](absl::Duration d) { steps.push_back(d); };
  SimResult r = RunScenario(p.scenario, o);
  EXPECT_EQ(r.exit_code(), 0);
  ASSERT_GT(steps.size(), 10u);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_EQ(steps.back(), absl::Minutes(2));
}

TEST(EngineTest, SameTimeEventsRunInFileOrder) {
  // Upstream sorted with sort.Slice: stable only up to 12 events. Twenty
  // commands at one instant must apply in file order, the last one winning.
  std::string yaml = absl::StrCat(kFleet,
                                  "events:\n  - at: 0s\n"
                                  "    action: start_fleet\n");
  for (int i = 0; i < 20; ++i) {
    absl::StrAppend(&yaml, "  - at: 5s\n    action: issue_command\n",
                    "    target: n1\n    params: {command_type: ",
                    i % 2 == 0 ? "cordon" : "uncordon", "}\n");
  }
  absl::StrAppend(&yaml,
                  "  - at: 5s\n    action: issue_command\n    target: n1\n"
                  "    params: {command_type: cordon}\n"
                  "assertions:\n  - type: node_status\n    target: n1\n"
                  "    expected: cordoned\n");
  Outcome r = Simulate(yaml);
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
}

TEST(EngineTest, EventsRunAtTheirVirtualTimes) {
  Outcome r = Simulate(absl::StrCat(kFleet,
                                    "events:\n"
                                    "  - {at: 0s, action: start_fleet}\n"
                                    "  - {at: 90s, action: log, params: "
                                    "{log_message: first}}\n"
                                    "  - {at: 1h, action: log, params: "
                                    "{log_message: second}}\n"));
  EXPECT_THAT(r.out, HasSubstr("[1m30s] log: first"));
  EXPECT_THAT(r.out, HasSubstr("[1h] log: second"));
  EXPECT_EQ(r.result.report["summary"]["simulated_seconds"].get<double>(),
            3600);
}

TEST(EngineTest, WaitForStatusBlocksLaterEventsAndTimesOut) {
  Outcome r = Simulate(absl::StrCat(
      kFleet,
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - at: 1s\n    action: wait_for_status\n    target: n1\n"
      "    params: {expected_status: draining, timeout: 10s}\n"
      "  - {at: 2s, action: log, params: {log_message: never}}\n"));
  EXPECT_EQ(r.result.exit_code(), 1);
  ASSERT_EQ(r.result.errors.size(), 1u);
  EXPECT_THAT(r.result.errors[0],
              HasSubstr("timeout waiting for node n1 to reach status "
                        "draining (it is active after 10s)"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("never")));
}

TEST(EngineTest, FatalXidMakesTheNodeUnhealthyAndHealthRecovers) {
  Outcome r = Simulate(absl::StrCat(
      kFleet,
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - at: 5s\n    action: inject_failure\n    target: n1\n"
      "    params: {failure_type: xid_error, xid_code: 79}\n"
      "  - {at: 30s, action: wait}\n"
      "assertions:\n"
      "  - {type: node_status, target: n1, expected: unhealthy}\n"
      "  - {type: health_status, target: n1, expected: healthy}\n"
      "  - {type: node_status, target: n2, expected: active}\n"
      "  - {type: node_count, expected: '1', params: {status: unhealthy}}\n"
      "  - {type: failures, expected: '1'}\n"
      "  - {type: time_to_detect, expected: 1s}\n"));
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
  const auto& policy = r.result.report["policy"]["rules"];
  bool fatal_hit = false;
  for (const auto& rule : policy) {
    if (rule["name"] == "fatal-xid") fatal_hit = rule["hits"] == 1;
  }
  EXPECT_TRUE(fatal_hit) << policy.dump();
}

TEST(EngineTest, FailureTypesHaveRealEffects) {
  Outcome r = Simulate(
      "name: t\nfleet:\n  - id: hot\n  - id: net\n  - id: nvml\n"
      "  - id: link\n  - id: ecc\n  - id: boot\n"
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - {at: 10s, action: inject_failure, target: hot, params: "
      "{failure_type: temperature, gpu_index: 2}}\n"
      "  - {at: 10s, action: inject_failure, target: net, params: "
      "{failure_type: network}}\n"
      "  - {at: 10s, action: inject_failure, target: nvml, params: "
      "{failure_type: nvml_failure}}\n"
      "  - {at: 10s, action: inject_failure, target: link, params: "
      "{failure_type: nvlink_error}}\n"
      "  - {at: 10s, action: inject_failure, target: ecc, params: "
      "{failure_type: memory_error}}\n"
      "  - {at: 10s, action: inject_failure, target: boot, params: "
      "{failure_type: boot_failure}}\n"
      "  - {at: 20s, action: stop_fleet}\n"
      "  - {at: 21s, action: start_fleet}\n"
      "  - {at: 1m, action: wait}\n"
      "assertions:\n"
      "  - {type: node_status, target: hot, expected: unhealthy}\n"
      "  - {type: node_status, target: nvml, expected: unhealthy}\n"
      "  - {type: node_status, target: ecc, expected: unhealthy}\n"
      "  - {type: node_status, target: link, expected: active}\n");
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
  // The restarted boot node never registered again and was declared dead.
  EXPECT_EQ(r.result.report["summary"]["nodes_failed_to_start"], 1);
}

TEST(EngineTest, NetworkFailureIsCaughtByTheHeartbeatMonitor) {
  Outcome r = Simulate(absl::StrCat(
      kFleet,
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - {at: 10s, action: inject_failure, target: n2, params: "
      "{failure_type: network}}\n"
      "  - at: 10s\n    action: wait_for_status\n    target: n2\n"
      "    params: {expected_status: unhealthy, timeout: 15s}\n"
      "assertions:\n  - {type: node_status, target: n1, expected: active}\n"
      // Timeout 3 x 3s, checked every 1.5s.
      "  - {type: time_to_detect, expected: 12s, params: {percentile: "
      "100}}\n"));
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
}

TEST(EngineTest, TerminateEndsTheInstanceNotTheSimulator) {
  Outcome r = Simulate(absl::StrCat(
      kFleet,
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - {at: 5s, action: issue_command, target: n1, params: "
      "{command_type: terminate}}\n"
      "  - {at: 1m, action: log, params: {log_message: still here}}\n"
      "assertions:\n  - {type: node_status, target: n1, expected: terminated}\n"
      "  - {type: node_count, expected: '1'}\n"));
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("still here"));
}

TEST(EngineTest, FailingAssertionsAreReportedWithExpectedAndActual) {
  Outcome r = Simulate(absl::StrCat(
      kFleet,
      "events:\n  - {at: 0s, action: start_fleet}\n"
      "  - {at: 10s, action: wait}\n"
      "assertions:\n  - {type: node_status, target: n1, expected: draining}\n"
      "  - {type: node_count, expected: '>5'}\n"
      "  - {type: replacements, expected: '>=1'}\n"
      "  - {type: time_to_replace, expected: 1m}\n"));
  EXPECT_EQ(r.result.exit_code(), 1);
  ASSERT_EQ(r.result.assertions.size(), 4u);
  for (const auto& a : r.result.assertions) EXPECT_FALSE(a.passed);
  EXPECT_EQ(r.result.assertions[0].ToString(),
            "FAIL node_status n1: expected draining, actual active "
            "(assertions[0])");
  EXPECT_EQ(r.result.assertions[1].actual, "2");
  EXPECT_EQ(r.result.assertions[3].actual, "no samples");
}

TEST(EngineTest, PoolReplacementWithTheRealPoolManager) {
  Outcome r = Simulate(
      "name: t\nboot_delay: 20s\n"
      "config:\n"
      "  server: {heartbeat_interval: 10s, health_check_interval: 30s, "
      "autoscale_interval: 10s}\n"
      "  providers: {fake: {type: fake}}\n"
      "  pools:\n"
      "    p:\n"
      "      provider: fake\n"
      "      instance_type: h100-8x\n"
      "      min_nodes: 3\n"
      "      max_nodes: 5\n"
      "      health: {unhealthy_after: 1, drain_timeout: 30s}\n"
      "events:\n"
      "  - {at: 1m, action: inject_failure, target: fake-2, params: "
      "{failure_type: xid_error, xid_code: 48}}\n"
      "  - {at: 5m, action: wait}\n"
      "assertions:\n"
      "  - {type: pool_size, target: p, expected: '3'}\n"
      "  - {type: replacements, expected: '1', params: {pool: p}}\n"
      "  - {type: time_to_replace, expected: 1m}\n"
      "  - {type: node_status, target: fake-2, expected: terminated}\n"
      "  - {type: node_count, expected: '3', params: {pool: p, status: "
      "active}}\n");
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
}

// A production configuration with setup_commands simulates unchanged: the
// simulated machines run no sshd, so each bootstrap succeeds at once (no
// SSH connection is tried) and the pool fills.
TEST(EngineTest, SetupCommandsAreNotRunAndThePoolFills) {
  Outcome r = Simulate(
      "name: t\nboot_delay: 20s\n"
      "config:\n"
      "  server: {heartbeat_interval: 10s, autoscale_interval: 10s}\n"
      "  providers: {aws: {type: aws, region: us-east-1}}\n"
      "  defaults: {ssh_private_key_path: /nonexistent/key}\n"
      "  pools:\n"
      "    p:\n"
      "      provider: aws\n"
      "      instance_type: h100-8x\n"
      "      min_nodes: 2\n"
      "      max_nodes: 2\n"
      "      setup_commands: [sudo apt-get install -y navarch-node-agent]\n"
      "events:\n"
      "  - {at: 2m, action: wait}\n"
      "assertions:\n"
      "  - {type: node_count, expected: '2', params: {pool: p, status: "
      "active}}\n");
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
}

TEST(EngineTest, SameSeedSameSummaryDifferentSeedDifferent) {
  const std::string yaml =
      "name: t\nstress:\n  duration: 5m\n  seed: 7\n  fleet_gen:\n"
      "    total_nodes: 40\n    templates: [{name: h100, weight: 1}]\n"
      "    startup: {pattern: wave, duration: 20s, batch_size: 10}\n"
      "  chaos:\n    enabled: true\n    failure_rate: 100\n"
      "    failure_types: [{type: xid_error, weight: 3}, {type: network, "
      "weight: 1}, {type: temperature, weight: 1}]\n"
      "    cascading: {enabled: true, probability: 0.5, scope: zone}\n"
      "    recovery: {enabled: true, probability: 0.5, mean_time: 1m, "
      "replace_fatal: true}\n";
  Outcome a = Simulate(yaml), b = Simulate(yaml), c = Simulate(yaml, 8);
  EXPECT_EQ(a.result.report["summary"].dump(),
            b.result.report["summary"].dump());
  EXPECT_EQ(a.result.report["timeline"].dump(),
            b.result.report["timeline"].dump());
  EXPECT_NE(a.result.report["summary"].dump(),
            c.result.report["summary"].dump());
  EXPECT_GT(a.result.report["summary"]["failures_injected"].get<int>(), 5);
}

// Healthy nodes skip calls (sim_agent.h); nothing the report shows may change:
// detection times after a node goes silent, replacements, every node's
// history, the totals of calls the fleet would have handled.
void ExpectSameWithEveryCall(const std::string& yaml) {
  Outcome skip = Simulate(yaml, 0, /*elide_calls=*/true);
  Outcome every = Simulate(yaml, 0, /*elide_calls=*/false);
  const nlohmann::json& a = skip.result.report;
  const nlohmann::json& b = every.result.report;
  for (const char* section : {"summary", "timeline", "nodes"}) {
    // (Not EXPECT_EQ: the sections run to megabytes.)
    EXPECT_TRUE(a[section] == b[section]) << section << " differs";
  }
  for (const char* total : {"heartbeats", "health_reports"}) {
    EXPECT_EQ(a["policy"][total], b["policy"][total]) << total;
  }
  // The skipping really happened (else this test proves nothing).
  EXPECT_GT(a["policy"]["heartbeats_skipped"].get<int64_t>(),
            a["policy"]["heartbeats"].get<int64_t>() / 4);
  EXPECT_GT(a["policy"]["health_reports_skipped"].get<int64_t>(),
            a["policy"]["health_reports"].get<int64_t>() / 4);
  EXPECT_EQ(b["policy"]["heartbeats_skipped"].get<int64_t>(), 0);
  EXPECT_EQ(skip.result.exit_code(), every.result.exit_code());
}

TEST(EngineTest, SkippedCallsChangeNothingUnderChaos) {
  // Network failures (the heartbeat monitor must see the last beat each
  // node really sent), XIDs, thermal and NVML faults that recover, cascades,
  // replacements, at production intervals.
  ExpectSameWithEveryCall(
      "name: t\nconfig:\n  server: {heartbeat_interval: 30s, "
      "health_check_interval: 60s}\n"
      "stress:\n  duration: 40m\n  seed: 11\n  fleet_gen:\n"
      "    total_nodes: 60\n    templates: [{name: h100, weight: 1}]\n"
      "    startup: {pattern: linear, duration: 3m, jitter_percent: 20}\n"
      "  chaos:\n    enabled: true\n    failure_rate: 40\n"
      "    failure_types: [{type: xid_error, weight: 3}, {type: network, "
      "weight: 3}, {type: temperature, weight: 1}, {type: nvml_failure, "
      "weight: 1}, {type: memory_error, weight: 1}]\n"
      "    cascading: {enabled: true, probability: 0.3, scope: zone}\n"
      "    recovery: {enabled: true, probability: 0.7, mean_time: 4m, "
      "std_dev: 1m, replace_fatal: true}\n");
}

TEST(EngineTest, SkippedCallsChangeNothingWithPools) {
  // Pool-managed nodes: the pool manager's cordon, drain and replacement,
  // operator commands at whole minutes (on the heartbeat schedule of nodes
  // that registered at whole seconds) and a network partition that heals.
  ExpectSameWithEveryCall(
      "name: t\nconfig:\n"
      "  server: {heartbeat_interval: 10s, health_check_interval: 20s, "
      "autoscale_interval: 30s}\n"
      "  providers: {gcp: {type: fake, gpu_count: 8}}\n"
      "  pools:\n    gpu:\n      providers: [{name: gcp}]\n"
      "      instance_type: h100-8x\n      min_nodes: 6\n"
      "      max_nodes: 10\n      health: {unhealthy_after: 1, auto_replace: "
      "true}\n"
      "events:\n"
      "  - {at: 10m, action: inject_failure, target: gcp-1, params: "
      "{failure_type: network}}\n"
      "  - {at: 12m, action: recover_failure, target: gcp-1, params: "
      "{failure_type: network}}\n"
      "  - {at: 15m, action: inject_failure, target: gcp-2, params: "
      "{failure_type: xid_error, xid_code: 79}}\n"
      "  - {at: 20m, action: issue_command, target: gcp-3, params: "
      "{command_type: cordon}}\n"
      "  - {at: 21m, action: issue_command, target: gcp-3, params: "
      "{command_type: uncordon}}\n"
      "  - {at: 30m, action: log, params: {message: end}}\n");
}

TEST(EngineTest, APolicyThatNoLongerLoadsIsAnErrorNotASilentDefault) {
  const std::string path =
      absl::StrCat(testing::TempDir(), "/sim_engine_policy.yaml");
  {
    std::ofstream f(path);
    f << "version: v1\nrules:\n  - name: all-healthy\n"
         "    condition: \"true\"\n    result: healthy\n";
  }
  ParseResult p = ParseScenario(
      absl::StrCat("name: t\nconfig:\n  server: {health_policy: ", path,
                   "}\nfleet:\n  - id: n1\n"),
      "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  std::remove(path.c_str());  // gone between validation and the run
  SimResult r = RunScenario(p.scenario, SimOptions{});
  EXPECT_EQ(r.exit_code(), 1);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("server.health_policy"));
}

TEST(ReportTest, JsonSectionsAndSelfContainedHtml) {
  Outcome r = Simulate(
      absl::StrCat(kFleet,
                   "events:\n  - {at: 0s, action: start_fleet}\n"
                   "  - {at: 5s, action: inject_failure, target: n1, params: "
                   "{failure_type: xid_error, xid_code: 79}}\n"
                   "  - {at: 20s, action: wait}\n"
                   "assertions:\n  - {type: node_status, target: n1, expected: "
                   "unhealthy}\n"));
  const nlohmann::json& j = r.result.report;
  for (const char* key : {"summary", "timeline", "nodes", "policy", "run"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["summary"]["failures_by_xid"]["79"], 1);
  EXPECT_EQ(j["timeline"].size(), 20u);  // one sample a second, 1s..20s
  EXPECT_EQ(j["nodes"].size(), 2u);
  std::string html = RenderHtml(j);
  EXPECT_THAT(html, HasSubstr("<svg"));
  EXPECT_THAT(html, HasSubstr("fatal-xid"));
  EXPECT_THAT(html, ::testing::Not(HasSubstr("http://")));
  EXPECT_THAT(html, ::testing::Not(HasSubstr("https://")));
  EXPECT_THAT(html, ::testing::Not(HasSubstr("<script")));
}

}  // namespace
}  // namespace navarch::sim

namespace navarch::sim {
namespace {

// The pool spreads over two zones; zone a has room for one instance, so the
// cloud answers ZONE_RESOURCE_POOL_EXHAUSTED and the selector tries zone b
// of the same region before any other place.
TEST(EngineTest, AFullZoneMovesThePoolToTheRegionsNextZone) {
  Outcome r = Simulate(
      "name: t\nboot_delay: 20s\n"
      "config:\n"
      "  providers: {gcp: {type: fake}, aws: {type: fake}}\n"
      "  pools:\n"
      "    p:\n"
      "      providers: [{name: gcp, priority: 1, regions: [r1]}, "
      "{name: aws, priority: 2, regions: [r2]}]\n"
      "      zones: [a, b]\n"
      "      instance_type: h100-8x\n"
      "      min_nodes: 4\n"
      "      max_nodes: 4\n"
      "clouds:\n"
      "  gcp: {regions: {r1: {zones: {a: 1}}}}\n"
      "events:\n  - {at: 2m, action: wait}\n"
      "assertions:\n"
      "  - {type: pool_size, target: p, expected: '4'}\n"
      "  - {type: provisions, target: gcp/r1, expected: '4'}\n"
      "  - {type: provisions, target: aws, expected: '0'}\n");
  EXPECT_EQ(r.result.exit_code(), 0) << r.out;
  int in_a = 0;
  for (const auto& n : r.result.report["nodes"]) {
    if (n["zone"] == "a") ++in_a;
  }
  EXPECT_EQ(in_a, 1);
  const auto& gcp = r.result.report["summary"]["providers"]["gcp"];
  EXPECT_EQ(gcp["provisioned"], 4);
  EXPECT_GE(gcp["capacity_errors"].get<int>(), 1);
  EXPECT_EQ(gcp["quota_errors"], 0);
}

// The shipped failover scenario: its assertions hold, the report counts what
// each cloud answered, the run log says why the pool could not grow, and the
// same seed gives the same summary.
TEST(EngineTest, FailoverScenarioKeepsThePoolAndSaysWhy) {
  ParseResult p = LoadScenarioFile("examples/scenarios/failover.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  auto run = [&] {
    std::ostringstream out;
    SimOptions o;
    o.out = &out;
    SimResult result = RunScenario(p.scenario, o);
    return Outcome{std::move(result), out.str()};
  };
  Outcome a = run(), b = run();
  EXPECT_EQ(a.result.exit_code(), 0) << a.out;
  EXPECT_EQ(a.result.report["summary"].dump(),
            b.result.report["summary"].dump());
  const auto& providers = a.result.report["summary"]["providers"];
  EXPECT_GE(providers["gcp"]["quota_errors"].get<int>(), 1);
  EXPECT_GE(providers["aws"]["capacity_errors"].get<int>(), 1);
  EXPECT_EQ(providers["gcp"]["instances_started"], 5);
  EXPECT_EQ(providers["aws"]["instances_started"], 1);
  // aws answers in 5 s: its instance is created that much later.
  EXPECT_THAT(a.out, HasSubstr("QUOTA_EXCEEDED: instance quota of 3 reached"));
  EXPECT_THAT(a.out, HasSubstr("InsufficientInstanceCapacity"));
  EXPECT_THAT(a.out, HasSubstr("set_capacity gcp/us-central1 2 (restored)"));
  const std::string html = RenderHtml(a.result.report);
  EXPECT_THAT(html, HasSubstr("<h2>Providers</h2>"));
  EXPECT_THAT(html, HasSubstr(absl::StrCat(
                        "<tr><td>gcp</td><td>",
                        providers["gcp"]["provision_calls"].get<int>(),
                        "</td><td>5</td>")));
  for (const auto& n : a.result.report["nodes"]) {
    if (n["node_id"] == "aws-1") {
      EXPECT_EQ(n["events"][0]["t"], 5.0) << n.dump();
    }
  }
}

// Without `clouds:` the report has no providers section (every existing
// scenario's report is unchanged).
TEST(EngineTest, NoCloudsNoProvidersSection) {
  Outcome r = Simulate(
      "name: t\nconfig:\n  providers: {fake: {type: fake}}\n"
      "  pools: {p: {provider: fake, instance_type: h100-8x, min_nodes: 1, "
      "max_nodes: 1}}\n"
      "events:\n  - {at: 1m, action: wait}\n");
  EXPECT_FALSE(r.result.report["summary"].contains("providers"));
  EXPECT_THAT(RenderHtml(r.result.report),
              Not(HasSubstr("<h2>Providers</h2>")));
}

}  // namespace
}  // namespace navarch::sim
