#include "navarch/sim/scenario.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string Errors(const ParseResult& r) { return r.status().ToString(); }

constexpr char kBasic[] = R"(name: t
description: d
fleet:
  - id: node-1
    provider: aws
    region: us-east-1
    gpu_count: 4
    labels: {team: ml}
  - id: node-2
events:
  - at: 0s
    action: start_fleet
  - at: 5s
    action: inject_failure
    target: node-1
    params: {failure_type: xid_error, xid_code: 79, gpu_index: 3}
  - at: 5s
    action: issue_command
    target: node-2
    params: {command_type: uncordon}
  - at: 6s
    action: wait_for_status
    target: node-1
    params: {expected_status: unhealthy}
assertions:
  - type: node_status
    target: node-1
    expected: unhealthy
  - target: node-2
    expected: active
  - type: node_count
    expected: ">= 2"
    params: {status: active}
)";

TEST(ScenarioTest, ParsesUpstreamFormat) {
  ParseResult r = ParseScenario(kBasic, "t.yaml");
  ASSERT_TRUE(r.ok()) << Errors(r);
  const Scenario& s = r.scenario;
  EXPECT_EQ(s.name, "t");
  ASSERT_THAT(s.fleet, SizeIs(2));
  EXPECT_EQ(s.fleet[0].provider, "aws");
  EXPECT_EQ(s.fleet[0].zone, "us-east-1-a");  // default
  EXPECT_EQ(s.fleet[0].gpu_count, 4);
  EXPECT_EQ(s.fleet[0].labels.at("team"), "ml");
  EXPECT_EQ(s.fleet[1].gpu_count, 8);
  ASSERT_THAT(s.events, SizeIs(4));
  EXPECT_EQ(s.events[1].at, absl::Seconds(5));
  EXPECT_EQ(s.events[1].xid_code, 79);
  EXPECT_EQ(s.events[1].gpu_index, 3);
  EXPECT_EQ(s.events[3].timeout, absl::Seconds(30));  // upstream default
  ASSERT_THAT(s.assertions, SizeIs(3));
  EXPECT_EQ(s.assertions[1].type, "node_status");  // "" = node_status
  EXPECT_EQ(s.assertions[2].status, "active");
  EXPECT_FALSE(s.has_config);
  // Upstream's embedded control plane.
  EXPECT_EQ(s.config.server.health_check_interval, absl::Seconds(5));
  EXPECT_EQ(s.config.server.heartbeat_interval, absl::Seconds(3));
}

struct BadCase {
  std::string name;
  std::string yaml;
  std::string expected;  // substring of the error, position included
};

TEST(ScenarioTest, RejectsWhatUpstreamLetThrough) {
  const std::string head = "name: t\nfleet:\n  - id: n1\n  - id: n2\nevents:\n";
  std::vector<BadCase> cases = {
      {"unknown action", head + "  - at: 1s\n    action: explode\n",
       "t.yaml:7:13: events[0].action: unknown action 'explode'"},
      {"bare number", head + "  - at: 5\n    action: wait\n",
       "t.yaml:6:9: events[0].at: invalid duration \"5\": missing unit"},
      {"unknown failure type",
       head + "  - at: 1s\n    action: inject_failure\n    target: n1\n"
              "    params: {failure_type: meteor}\n",
       "events[0].params.failure_type: unknown failure type 'meteor'"},
      {"unknown command",
       head + "  - at: 1s\n    action: issue_command\n    target: n1\n"
              "    params: {command_type: reboot}\n",
       "unknown command type 'reboot'"},
      {"unknown status",
       head + "  - at: 1s\n    action: wait_for_status\n    target: n1\n"
              "    params: {expected_status: sleepy}\n",
       "unknown node status 'sleepy'"},
      {"target not in fleet",
       head + "  - at: 1s\n    action: inject_failure\n    target: n9\n"
              "    params: {failure_type: network}\n",
       "target 'n9' is not a node of the fleet"},
      {"unknown key", head + "  - at: 1s\n    action: wait\n    when: now\n",
       "t.yaml:8:5: events[0]: unknown key 'when' (known: at, action, "
       "target, params)"},
      {"unknown param",
       head + "  - at: 1s\n    action: log\n    params: {log_msg: hi}\n",
       "events[0].params: unknown key 'log_msg'"},
      {"xid without code",
       head + "  - at: 1s\n    action: inject_failure\n    target: n1\n"
              "    params: {failure_type: xid_error}\n",
       "xid_code is required"},
      {"unknown assertion",
       "name: t\nfleet:\n  - id: n1\nassertions:\n  - type: vibes\n"
       "    expected: good\n",
       "t.yaml:5:11: assertions[0].type: unknown assertion type 'vibes'"},
      {"bad comparison",
       "name: t\nfleet:\n  - id: n1\nassertions:\n  - type: node_count\n"
       "    expected: lots\n",
       "'lots' is not a number or a comparison"},
      {"pool not configured",
       "name: t\nfleet:\n  - id: n1\nassertions:\n  - type: pool_size\n"
       "    target: gpu\n    expected: 3\n",
       "pool 'gpu' is not in config.pools"},
      {"duplicate id", "name: t\nfleet:\n  - id: n1\n  - id: n1\n",
       "duplicate node id 'n1'"},
      {"no name", "fleet:\n  - id: n1\n", "'name' is required"},
      {"no fleet", "name: t\n", "'fleet' is required"},
      {"stress template",
       "name: t\nstress:\n  fleet_gen:\n    total_nodes: 5\n",
       "fleet_gen needs at least one template"},
      {"cascade probability",
       "name: t\nfleet:\n  - id: n1\nstress:\n  chaos:\n    cascading:\n"
       "      probability: 2\n",
       "t.yaml:7:20: stress.chaos.cascading.probability: must be between 0 "
       "and 1, got 2"},
      {"chaos failure type",
       "name: t\nfleet:\n  - id: n1\nstress:\n  chaos:\n    failure_types:\n"
       "      - {type: gremlins, weight: 1}\n",
       "unknown failure type 'gremlins'"},
      {"yaml syntax", "name: [t\n",
       "t.yaml:2:1: invalid YAML: end of sequence flow not found"},
  };
  for (const BadCase& c : cases) {
    ParseResult r = ParseScenario(c.yaml, "t.yaml");
    EXPECT_FALSE(r.ok()) << c.name;
    EXPECT_THAT(Errors(r), HasSubstr(c.expected)) << c.name;
  }
}

TEST(ScenarioTest, SharedStrictReader) {
  // Two spellings of one setting: upstream let the last one win.
  ParseResult twice = ParseScenario(
      "name: t\nfleet:\n  - id: n1\nstress:\n  chaos:\n"
      "    correlated_failures:\n"
      "      - {trigger: network, trigger_type: xid_error}\n",
      "t.yaml");
  EXPECT_THAT(Errors(twice),
              HasSubstr("t.yaml:7:28: stress.chaos.correlated_failures[0]: "
                        "'trigger_type' and 'trigger' (line 7) are the same "
                        "setting; keep one"));
  // One document per file: a second one was silently ignored.
  ParseResult two_docs =
      ParseScenario("name: t\nfleet:\n  - id: n1\n---\nname: u\n", "t.yaml");
  EXPECT_THAT(Errors(two_docs), HasSubstr("only one YAML document is allowed"));
  // Quoted numbers are strings, as in the control plane's configuration.
  ParseResult quoted = ParseScenario(
      "name: t\nfleet:\n  - {id: n1, gpu_count: \"4\"}\n", "t.yaml");
  EXPECT_THAT(Errors(quoted),
              HasSubstr("fleet[0].gpu_count: expected an integer, got '4'"));
}

TEST(ScenarioTest, CollectsEveryErrorInFileOrder) {
  ParseResult r = ParseScenario(
      "name: t\nfleet:\n  - id: n1\nevents:\n  - at: 1s\n    action: a1\n"
      "  - at: 2s\n    action: a2\n",
      "t.yaml");
  ASSERT_THAT(r.errors, SizeIs(2));
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_EQ(r.errors[1].line, 8);
}

TEST(ScenarioTest, ConfigBlockUsesTheConfigLoaderWithScenarioPositions) {
  const std::string yaml =
      "name: t\n"
      "config:\n"
      "  server:\n"
      "    heartbeat_interval: 10s\n"
      "  providers:\n"
      "    gcp: {type: fake}\n"
      "  pools:\n"
      "    train:\n"
      "      provider: gcp\n"
      "      instance_type: h100-8x\n"
      "      min_nodes: 2\n"
      "      max_nodes: 4\n"
      "assertions:\n"
      "  - type: pool_size\n"
      "    target: train\n"
      "    expected: 2\n";
  ParseResult r = ParseScenario(yaml, "t.yaml");
  ASSERT_TRUE(r.ok()) << Errors(r);
  EXPECT_TRUE(r.scenario.has_config);
  EXPECT_EQ(r.scenario.config.server.heartbeat_interval, absl::Seconds(10));
  ASSERT_TRUE(r.scenario.config.pools.contains("train"));
  EXPECT_EQ(r.scenario.config.pools.at("train").min_nodes, 2);

  // An unknown key inside the block: the scenario's line and column.
  std::string bad = yaml;
  bad.replace(bad.find("min_nodes: 2"), 12, "min_nodez: 2");
  ParseResult b = ParseScenario(bad, "t.yaml");
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(Errors(b), HasSubstr("t.yaml:11:7: config.pools.train"));
  EXPECT_THAT(Errors(b), HasSubstr("min_nodez"));
}

TEST(ScenarioTest, PoolScenariosMayTargetNodesNotYetKnown) {
  ParseResult r = ParseScenario(
      "name: t\nconfig:\n  providers: {gcp: {type: fake}}\n  pools:\n"
      "    p: {provider: gcp, instance_type: x, min_nodes: 1, max_nodes: 2}\n"
      "events:\n  - at: 1m\n    action: inject_failure\n    target: gcp-1\n"
      "    params: {failure_type: network}\n",
      "t.yaml");
  EXPECT_TRUE(r.ok()) << Errors(r);
}

TEST(ScenarioTest, Comparisons) {
  Comparison c;
  ASSERT_TRUE(ParseComparison(">= 800", &c));
  EXPECT_EQ(c.op, ">=");
  EXPECT_TRUE(c.Holds(800));
  EXPECT_FALSE(c.Holds(799));
  ASSERT_TRUE(ParseComparison("3", &c));
  EXPECT_TRUE(c.Holds(3));
  EXPECT_FALSE(c.Holds(4));
  ASSERT_TRUE(ParseComparison("<2", &c));
  EXPECT_TRUE(c.Holds(1));
  EXPECT_FALSE(c.Holds(2));
  ASSERT_TRUE(ParseComparison("90%", &c));
  EXPECT_EQ(c.value, 90);
  EXPECT_FALSE(ParseComparison("many", &c));
}

TEST(ScenarioTest, ShippedScenariosAreValid) {
  int n = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator("examples/scenarios")) {
    if (entry.path().extension() != ".yaml") continue;
    ParseResult r = LoadScenarioFile(entry.path().string());
    EXPECT_TRUE(r.ok()) << entry.path() << ": " << Errors(r);
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(ScenarioTest, StressDefaultsAndUpstreamQuirks) {
  ParseResult r = ParseScenario(
      "name: t\nstress:\n  fleet_gen:\n    total_nodes: 3\n    templates:\n"
      "      - {name: h100, weight: 1}\n  chaos:\n    cascading:\n"
      "      max_depth: 0\n    xid_distribution: {79: 2, 13: 1}\n",
      "t.yaml");
  ASSERT_TRUE(r.ok()) << Errors(r);
  const StressSpec& s = *r.scenario.stress;
  EXPECT_EQ(s.duration, absl::Minutes(10));
  EXPECT_EQ(s.metrics_interval, absl::Seconds(5));
  EXPECT_EQ(s.chaos.cascading.max_depth, 3);  // <= 0 means 3
  ASSERT_THAT(s.chaos.xid_distribution, SizeIs(2));
  EXPECT_EQ(s.chaos.xid_distribution[0].first, 13);  // sorted by code
  EXPECT_EQ(s.fleet_gen->startup.pattern, "linear");
}

}  // namespace
}  // namespace navarch::sim

namespace navarch::sim {
namespace {

constexpr char kClouds[] = R"(name: t
config:
  providers: {gcp: {type: fake}, aws: {type: fake}}
  pools:
    p:
      providers: [{name: gcp, priority: 1}, {name: aws, priority: 2}]
      instance_type: h100-8x
      min_nodes: 2
      max_nodes: 4
clouds:
  gcp:
    quota: 3
    call_latency: 2s
    regions:
      us-central1: {capacity: 2, quota: 5, zones: {us-central1-a: 1}}
events:
  - {at: 1m, action: set_capacity, target: gcp/us-central1, params: {capacity: 0, duration: 5m}}
  - {at: 1m, action: set_capacity, target: gcp/us-central1/us-central1-b, params: {capacity: -1}}
  - {at: 2m, action: set_quota, target: aws, params: {quota: 1}}
assertions:
  - {type: events, expected: ">=1", params: {kind: pool.provision_failed, contains: QUOTA_EXCEEDED}}
  - {type: provisions, target: gcp/us-central1, expected: "2"}
)";

TEST(ScenarioTest, CloudsAndTheirActions) {
  ParseResult r = ParseScenario(kClouds, "t.yaml");
  ASSERT_TRUE(r.ok()) << Errors(r);
  const Scenario& s = r.scenario;
  ASSERT_EQ(s.clouds.size(), 1u);
  const CloudSpec& gcp = s.clouds.at("gcp");
  EXPECT_EQ(gcp.quota, 3);
  EXPECT_EQ(gcp.call_latency, absl::Seconds(2));
  const FakeRegionOptions& region = gcp.regions.at("us-central1");
  EXPECT_EQ(region.capacity, 2);
  EXPECT_EQ(region.quota, 5);
  EXPECT_EQ(region.zones.at("us-central1-a"), 1);
  ASSERT_THAT(s.events, SizeIs(3));
  EXPECT_EQ(s.events[0].capacity, 0);
  EXPECT_EQ(s.events[0].duration, absl::Minutes(5));
  EXPECT_EQ(s.events[1].capacity, -1);
  EXPECT_EQ(s.events[2].quota, 1);
  EXPECT_EQ(s.assertions[0].kind, "pool.provision_failed");
  EXPECT_EQ(s.assertions[0].contains, "QUOTA_EXCEEDED");
}

TEST(ScenarioTest, CloudMistakesAreNamed) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string text = kClouds;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  std::vector<BadCase> cases = {
      {"cloud not configured", with("  gcp:\n    quota", "  ibm:\n    quota"),
       "t.yaml:12:5: clouds.ibm: provider 'ibm' is not in config.providers"},
      {"unknown cloud key", with("quota: 3", "quotas: 3"),
       "unknown key 'quotas'"},
      {"capacity below -1", with("capacity: 2", "capacity: -2"),
       "clouds.gcp.regions.us-central1.capacity"},
      {"region target needed", with("target: gcp/us-central1,", "target: gcp,"),
       "events[0].target: 'target' must be provider/region or "
       "provider/region/zone (got 'gcp')"},
      {"unknown provider in target", with("target: aws,", "target: azure,"),
       "events[2].target: provider 'azure' is not in config.providers"},
      {"capacity required", with("{capacity: -1}", "{duration: 1m}"),
       "events[1].params.capacity: capacity is required (-1: no cap)"},
      {"quota target too deep", with("target: aws,", "target: aws/r/z,"),
       "'target' must be provider or provider/region (got 'aws/r/z')"},
      {"events kind",
       with("kind: pool.provision_failed", "kind: node.registered"),
       "assertions[0].params.kind: 'kind' must be a pool event kind"},
      {"provisions target",
       with("target: gcp/us-central1, expected", "target: gce, expected"),
       "assertions[1].target: provider 'gce' is not in config.providers"},
  };
  for (const BadCase& c : cases) {
    ParseResult r = ParseScenario(c.yaml, "t.yaml");
    EXPECT_FALSE(r.ok()) << c.name;
    EXPECT_THAT(Errors(r), HasSubstr(c.expected)) << c.name;
  }
  // Without pools there is no simulated provider to change.
  ParseResult r = ParseScenario(
      "name: t\nfleet: [{id: n1}]\nevents:\n"
      "  - {at: 1s, action: set_quota, target: gcp, params: {quota: 1}}\n",
      "t.yaml");
  EXPECT_THAT(Errors(r), HasSubstr("set_quota needs config pools"));
}

}  // namespace
}  // namespace navarch::sim
