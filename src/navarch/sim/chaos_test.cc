#include "navarch/sim/chaos.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/sim/fleet_gen.h"
#include "navarch/sim/rng.h"

namespace navarch::sim {
namespace {

struct Injection {
  absl::Time at;
  std::string node;
  Failure failure;
  FailureCause cause;
};

// A fleet of N live nodes spread over zones; records what chaos does.
class FakeHost final : public ChaosHost {
 public:
  FakeHost(Clock& clock, int nodes, int zones = 4) : clock_(clock) {
    for (int i = 0; i < nodes; ++i) {
      NodeSpec n;
      n.id = absl::StrCat("n", i);
      n.provider = i % 2 ? "aws" : "gcp";
      n.region = i % 3 ? "us-east1" : "us-central1";
      n.zone = absl::StrCat(n.region, "-", i % zones);
      specs_.push_back(n);
    }
    for (const NodeSpec& n : specs_) live_.Add(&n);
  }
  void set_engine(ChaosEngine* e) { engine_ = e; }

  LiveSet& Live() override { return live_; }
  bool InjectFailure(const std::string& id, const Failure& f,
                     FailureCause cause) override {
    injections.push_back({clock_.Now(), id, f, cause});
    for (const NodeSpec& n : specs_) {
      if (n.id == id && engine_ != nullptr) engine_->OnInjected(n, f, cause);
    }
    return true;
  }
  void RecoverFailure(const std::string& id, const std::string& type) override {
    recoveries.push_back({clock_.Now(), id, {type}, FailureCause::kScenario});
  }
  const NodeSpec& spec(const std::string& id) const {
    for (const NodeSpec& n : specs_) {
      if (n.id == id) return n;
    }
    return specs_[0];
  }
  // As the simulation does for a node with an injected failure.
  void SetFailing(const std::string& id, bool failing) {
    live_.SetFailing(&spec(id), failing);
  }

  std::vector<Injection> injections;
  std::vector<Injection> recoveries;

 private:
  Clock& clock_;
  std::vector<NodeSpec> specs_;
  LiveSet live_;
  ChaosEngine* engine_ = nullptr;
};

struct Fixture {
  explicit Fixture(ChaosSpec spec, int nodes, uint64_t seed = 1)
      : host(clock, nodes), engine(spec, clock, host, seed) {
    host.set_engine(&engine);
  }
  void RunFor(absl::Duration d) {
    const absl::Time start = clock.Now();
    engine.Start(start, start + d);
    clock.AdvanceTo(start + d);
  }
  FakeClock clock;
  FakeHost host;
  ChaosEngine engine;
};

ChaosSpec Rate(double per_min_per_1000) {
  ChaosSpec s;
  s.enabled = true;
  s.failure_rate = per_min_per_1000;
  return s;
}

TEST(ChaosTest, RateIsPerThousandNodesPerMinuteWithoutUpstreamsCap) {
  // 5,000 nodes at 50/min per 1,000: 250 a minute, where upstream's one
  // draw per second capped it at 60.
  Fixture f(Rate(50), 5000);
  f.RunFor(absl::Minutes(10));
  const double expected = 2500;
  const double n = f.host.injections.size();
  EXPECT_NEAR(n, expected, 5 * std::sqrt(expected));  // Poisson, 5 sigma
}

TEST(ChaosTest, RateMatchesTheBenchmarkShape) {
  // ~8 failures a minute per 1,000 nodes over 40 minutes, 1,000 nodes.
  Fixture f(Rate(8), 1000);
  f.RunFor(absl::Minutes(40));
  EXPECT_NEAR(f.host.injections.size(), 320, 5 * std::sqrt(320.0));
  for (const auto& i : f.host.injections) {
    EXPECT_EQ(i.failure.type, "xid_error");  // no types configured
    EXPECT_GT(i.failure.xid, 0);
    EXPECT_GE(i.failure.gpu, 0);
    EXPECT_LT(i.failure.gpu, 8);
  }
}

TEST(ChaosTest, SameSeedSameFailuresDifferentSeedDifferent) {
  ChaosSpec s = Rate(100);
  s.failure_types = {{"xid_error", 2}, {"network", 1}, {"temperature", 1}};
  s.cascading.enabled = true;
  s.cascading.probability = 0.5;
  Fixture a(s, 300, 9), b(s, 300, 9), c(s, 300, 10);
  a.RunFor(absl::Minutes(5));
  b.RunFor(absl::Minutes(5));
  c.RunFor(absl::Minutes(5));
  ASSERT_EQ(a.host.injections.size(), b.host.injections.size());
  for (size_t i = 0; i < a.host.injections.size(); ++i) {
    EXPECT_EQ(a.host.injections[i].at, b.host.injections[i].at);
    EXPECT_EQ(a.host.injections[i].node, b.host.injections[i].node);
    EXPECT_EQ(a.host.injections[i].failure.type,
              b.host.injections[i].failure.type);
    EXPECT_EQ(a.host.injections[i].failure.xid,
              b.host.injections[i].failure.xid);
  }
  bool differs = a.host.injections.size() != c.host.injections.size();
  for (size_t i = 0; !differs && i < a.host.injections.size(); ++i) {
    differs = a.host.injections[i].node != c.host.injections[i].node;
  }
  EXPECT_TRUE(differs);
}

TEST(LiveSetTest, GroupsFollowAddsAndRemoves) {
  std::vector<NodeSpec> specs(6);
  for (int i = 0; i < 6; ++i) {
    specs[i].id = absl::StrCat("n", i);
    specs[i].provider = i < 4 ? "gcp" : "aws";
    specs[i].region = i < 4 ? "us-central1" : "us-east1";
    specs[i].zone = absl::StrCat(specs[i].region, i % 2 ? "-a" : "-b");
  }
  LiveSet live;
  for (const NodeSpec& n : specs) EXPECT_TRUE(live.Add(&n));
  EXPECT_FALSE(live.Add(&specs[0]));
  auto ids = [](const auto& v) {
    std::vector<std::string> out;
    for (const auto& e : v) {
      if constexpr (std::is_same_v<std::decay_t<decltype(e)>,
                                   LiveSet::Member>) {
        out.push_back(e.node->id);
      } else {
        out.push_back(e->id);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  auto failing = [&](const NodeSpec& origin) {
    std::vector<std::string> out;
    for (const LiveSet::Member& m : live.InScope(origin, LiveSet::kRegion)) {
      EXPECT_EQ(m.failing, live.Failing(m.node)) << m.node->id;
      if (m.failing) out.push_back(m.node->id);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids(live.InScope(specs[1], LiveSet::kZone)), (V{"n1", "n3"}));
  EXPECT_EQ(ids(live.InScope(specs[0], LiveSet::kRegion)),
            (V{"n0", "n1", "n2", "n3"}));
  EXPECT_EQ(ids(live.InScope(specs[5], LiveSet::kProvider)), (V{"n4", "n5"}));
  // Failure flags follow the nodes through every move below.
  live.SetFailing(&specs[3], true);
  live.SetFailing(&specs[2], true);
  live.SetFailing(&specs[2], false);
  live.SetFailing(&specs[5], true);
  EXPECT_EQ(failing(specs[0]), (V{"n3"}));
  // Removing from the middle moves the last node into its place, in every
  // group, and keeps the others findable.
  EXPECT_TRUE(live.Remove(&specs[1]));
  EXPECT_FALSE(live.Remove(&specs[1]));
  EXPECT_TRUE(live.Remove(&specs[0]));
  EXPECT_EQ(ids(live.nodes()), (V{"n2", "n3", "n4", "n5"}));
  // The stable order chaos picks from: n4 took n0's place, n5 n1's.
  EXPECT_EQ(live.nodes()[0]->id, "n4");
  EXPECT_EQ(live.nodes()[1]->id, "n5");
  EXPECT_EQ(ids(live.InScope(specs[1], LiveSet::kZone)), (V{"n3"}));
  EXPECT_EQ(ids(live.InScope(specs[0], LiveSet::kRegion)), (V{"n2", "n3"}));
  EXPECT_EQ(failing(specs[0]), (V{"n3"}));
  EXPECT_EQ(failing(specs[4]), (V{"n5"}));
  EXPECT_TRUE(live.Remove(&specs[5]));
  EXPECT_FALSE(live.Failing(&specs[5]));  // not live
  live.SetFailing(&specs[5], true);       // nothing
  EXPECT_TRUE(live.Add(&specs[1], /*failing=*/true));
  EXPECT_EQ(failing(specs[0]), (V{"n1", "n3"}));
  EXPECT_TRUE(failing(specs[4]).empty());
  EXPECT_EQ(ids(live.InScope(specs[3], LiveSet::kZone)), (V{"n1", "n3"}));
  EXPECT_EQ(ids(live.InScope(specs[4], LiveSet::kZone)), (V{"n4"}));
  EXPECT_EQ(live.size(), 4u);
  NodeSpec elsewhere;
  elsewhere.zone = "eu-west4-a";
  EXPECT_TRUE(live.InScope(elsewhere, LiveSet::kZone).empty());
}

TEST(ChaosTest, CascadesStayInTheRealZone) {
  ChaosSpec s = Rate(20);
  s.cascading.enabled = true;
  s.cascading.probability = 1;
  s.cascading.max_depth = 1;
  s.cascading.scope = "zone";
  s.cascading.max_affected_percent = 0.5;
  Fixture f(s, 200);
  f.RunFor(absl::Minutes(10));
  int cascades = 0;
  for (const auto& i : f.host.injections) {
    if (i.cause == FailureCause::kCascade) {
      ++cascades;
      const std::string prefix = "cascade from ";
      ASSERT_TRUE(absl::StartsWith(i.failure.message, prefix));
      const std::string origin = i.failure.message.substr(prefix.size());
      EXPECT_NE(origin, i.node);
      EXPECT_EQ(f.host.spec(i.node).zone, f.host.spec(origin).zone);
    }
  }
  EXPECT_GT(cascades, 0);
  EXPECT_EQ(f.engine.stats().cascading, cascades);
}

TEST(ChaosTest, CascadesPassOverNodesWithAFailure) {
  ChaosSpec s = Rate(0);  // no random failures: only the one below
  s.cascading.enabled = true;
  s.cascading.probability = 1;
  s.cascading.max_depth = 1;
  s.cascading.scope = "zone";
  s.cascading.max_affected_percent = 1;
  Fixture f(s, 8, /*seed=*/3);
  // n1 and n5 share zone us-east1-1, alone.
  ASSERT_EQ(f.host.spec("n1").zone, f.host.spec("n5").zone);
  const absl::Time start = f.clock.Now();
  f.engine.Start(start, start + absl::Hours(1));
  Failure xid{"xid_error", 79, 0, ""};
  f.host.SetFailing("n5", true);
  f.host.InjectFailure("n1", xid, FailureCause::kChaos);
  f.clock.Advance(absl::Minutes(1));
  EXPECT_EQ(f.host.injections.size(), 1u);  // n5 was passed over
  f.host.SetFailing("n5", false);
  f.host.InjectFailure("n1", xid, FailureCause::kChaos);
  f.clock.Advance(absl::Minutes(1));
  ASSERT_EQ(f.host.injections.size(), 3u);
  EXPECT_EQ(f.host.injections[2].node, "n5");
  EXPECT_EQ(f.host.injections[2].cause, FailureCause::kCascade);
}

TEST(ChaosTest, OutagesHitTheirZoneAndClearAfterTheirDuration) {
  ChaosSpec s;
  s.enabled = true;
  OutageSpec o;
  o.name = "zone-b";
  o.scope = "zone";
  o.target = "us-east1-1";
  o.start_time = absl::Minutes(1);
  o.duration = absl::Minutes(2);
  o.failure_type = "network";
  s.scheduled_outages.push_back(o);
  Fixture f(s, 120);
  f.RunFor(absl::Minutes(10));
  ASSERT_FALSE(f.host.injections.empty());
  for (const auto& i : f.host.injections) {
    EXPECT_EQ(f.host.spec(i.node).zone, "us-east1-1");
    EXPECT_EQ(i.cause, FailureCause::kOutage);
  }
  EXPECT_EQ(f.host.recoveries.size(), f.host.injections.size());
  EXPECT_EQ(f.host.recoveries[0].at - f.host.injections[0].at,
            absl::Minutes(2));
  EXPECT_EQ(f.engine.stats().outages, 1);
}

TEST(ChaosTest, CorrelatedFailuresFollowTheirTrigger) {
  ChaosSpec s = Rate(50);
  s.xid_distribution = {{74, 1}};
  CorrelatedSpec c;
  c.name = "nvlink-then-bus";
  c.trigger_type = "xid_error";
  c.trigger_xid = 74;
  c.response_type = "xid_error";
  c.response_xid = 79;
  c.probability = 1;
  c.delay = absl::Seconds(5);
  c.scope = "same_node";
  s.correlated_failures.push_back(c);
  Fixture f(s, 100);
  f.RunFor(absl::Minutes(10));
  int triggers = 0, responses = 0;
  for (const auto& i : f.host.injections) {
    if (i.cause == FailureCause::kCorrelated) {
      ++responses;
      EXPECT_EQ(i.failure.xid, 79);
    } else {
      ++triggers;
    }
  }
  EXPECT_GT(triggers, 0);
  // Responses to triggers in the last 5 s fall after the end.
  EXPECT_GE(responses, triggers - 2);
  EXPECT_LE(responses, triggers);
}

TEST(ChaosTest, RecoveryIsScheduledForRecoverableFailuresOnly) {
  ChaosSpec s = Rate(100);
  s.xid_distribution = {{79, 1}, {31, 1}};
  s.recovery.enabled = true;
  s.recovery.probability = 1;
  s.recovery.mean_time = absl::Seconds(30);
  Fixture f(s, 200);
  f.RunFor(absl::Minutes(30));
  // Every recovery clears an XID 31 the node got before it (never a 79).
  for (const auto& r : f.host.recoveries) {
    bool had_31 = false;
    for (const auto& i : f.host.injections) {
      had_31 |= i.node == r.node && i.failure.xid == 31 && i.at <= r.at;
    }
    EXPECT_TRUE(had_31) << r.node;
  }
  int recoverable = 0;
  for (const auto& i : f.host.injections) recoverable += i.failure.xid == 31;
  EXPECT_NEAR(f.host.recoveries.size(), recoverable, 3);
  EXPECT_GT(recoverable, 0);
}

TEST(FleetGenTest, IdsTemplatesAndStartupPatterns) {
  FleetGenSpec g;
  g.total_nodes = 250;
  g.templates = {{"h100", 3, 8, "NVIDIA H100 80GB HBM3", "", {}},
                 {"a100", 1, 4, "NVIDIA A100-SXM4-80GB", "", {}}};
  std::mt19937_64 rng = MakeRng(1, Purpose::kFleetGen);
  std::vector<NodeSpec> nodes = GenerateFleet(g, rng);
  ASSERT_EQ(nodes.size(), 250u);
  EXPECT_THAT(nodes[7].id, ::testing::MatchesRegex(
                               "(gcp|aws|lambda)-[a-z0-9-]+-(h100|a100)-0007"));
  EXPECT_EQ(nodes[7].labels.at("index"), "7");
  EXPECT_EQ(nodes[7].labels.at("generated"), "true");
  EXPECT_TRUE(absl::StartsWith(nodes[7].zone, nodes[7].region + "-"));

  absl::Duration end;
  StartupSpec wave;
  wave.pattern = "wave";
  wave.duration = absl::Minutes(5);
  wave.batch_size = 100;
  wave.jitter_percent = 0;
  std::vector<NodeStart> w = StartupSchedule(wave, 250, rng, &end);
  EXPECT_EQ(w[99].start, absl::ZeroDuration());
  EXPECT_EQ(w[100].start, absl::Minutes(5) / 3);
  EXPECT_EQ(end, 2 * (absl::Minutes(5) / 3));

  StartupSpec exp;
  exp.pattern = "exponential";
  exp.jitter_percent = 0;
  std::vector<NodeStart> e = StartupSchedule(exp, 7, rng, &end);
  // Batches 1, 2, 4 in three rounds over the default 2m.
  EXPECT_EQ(e[0].start, absl::ZeroDuration());
  EXPECT_EQ(e[1].start, e[2].start);
  EXPECT_EQ(e[3].start, e[6].start);
  EXPECT_EQ(e[3].start, absl::Minutes(2) / 3 * 2);

  StartupSpec cold;
  cold.cold_start_min = absl::Seconds(10);
  cold.cold_start_max = absl::Seconds(20);
  for (int i = 0; i < 100; ++i) {
    absl::Duration d = ColdStart(cold, rng);
    EXPECT_GE(d, absl::Seconds(10));
    EXPECT_LT(d, absl::Seconds(20));
  }
}

}  // namespace
}  // namespace navarch::sim
