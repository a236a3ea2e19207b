// PlanPool decides a pool's tick from a snapshot alone: no provider, no
// fleet, no clock. These tests drive it directly.
#include "navarch/pool/pool_plan.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class PoolPlanTest : public ::testing::Test {
 protected:
  PoolPlanTest() {
    config_.name = "train";
    config_.min_nodes = 2;
    config_.max_nodes = 10;
    config_.cooldown = absl::Minutes(5);
    config_.health.max_concurrent_replacements = 2;
    config_.health.max_unhealthy_percent = 50;
    config_.health.drain_timeout = absl::Minutes(5);
    snap_.now = kNow;
    snap_.nodes = &nodes_;
    snap_.has_instance = [this](const std::string& id) {
      return !no_instance_.contains(id);
    };
  }

  // Nodes are kept in id order, as FleetService::ListNodeSummaries gives.
  NodeSummary& AddNode(const std::string& id,
                       NodeStatus status = NODE_STATUS_ACTIVE,
                       std::optional<double> util = 50,
                       absl::Duration age = absl::Hours(1)) {
    NodeSummary n;
    n.node_id = id;
    n.pool = "train";
    n.status = status;
    n.gpu_count = 8;
    n.gpu_utilization = util;
    n.registered_at = kNow - age;
    nodes_.nodes.push_back(n);
    std::sort(
        nodes_.nodes.begin(), nodes_.nodes.end(),
        [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
    return *const_cast<NodeSummary*>(nodes_.Find(id));
  }
  PoolPlan Plan() { return PlanPool(snap_, config_); }

  PoolConfig config_;
  NodeIndex nodes_;
  PoolSnapshot snap_;
  std::set<std::string> no_instance_;
};

TEST_F(PoolPlanTest, AnEmptyPoolWithoutAutoscalerIsBroughtToMinNodes) {
  PoolPlan plan = Plan();
  EXPECT_EQ(plan.current, 0);
  EXPECT_EQ(plan.previous, 0);
  EXPECT_EQ(plan.decision.target_nodes, 2);
  EXPECT_EQ(plan.scale_up, 2);
  EXPECT_EQ(plan.excess, 0);
}

TEST_F(PoolPlanTest, PendingInstancesCountAsNodes) {
  AddNode("a");
  snap_.pending = {{"i-1", kNow}};
  snap_.target = 2;
  PoolPlan plan = Plan();
  EXPECT_EQ(plan.current, 2);
  EXPECT_EQ(plan.healthy, 2);
  EXPECT_EQ(plan.pending, 1);
  EXPECT_EQ(plan.scale_up, 0);
  EXPECT_EQ(plan.decision.reason, "target unchanged");
}

TEST_F(PoolPlanTest, ManualTargetIsConsumedAndIgnoresCooldown) {
  for (const char* id : {"a", "b"}) AddNode(id);
  snap_.target = 2;
  snap_.last_scale = kNow - absl::Minutes(1);  // In cooldown.
  snap_.manual_target = 5;
  snap_.manual_actor = "alice";
  PoolPlan plan = Plan();
  EXPECT_TRUE(plan.manual_consumed);
  EXPECT_EQ(plan.decision.target_nodes, 5);
  EXPECT_EQ(plan.decision.reason, "manual scale by alice");
  EXPECT_EQ(plan.scale_up, 3);
}

TEST_F(PoolPlanTest, AutoscalerIsHeldByCooldown) {
  for (const char* id : {"a", "b"}) AddNode(id, NODE_STATUS_ACTIVE, 95);
  ReactiveAutoscaler reactive(80, 20);
  snap_.autoscaler = &reactive;
  snap_.target = 2;
  snap_.last_scale = kNow - absl::Minutes(1);
  EXPECT_EQ(Plan().scale_up, 0);
  snap_.last_scale = kNow - absl::Minutes(5);  // Cooldown over.
  PoolPlan plan = Plan();
  EXPECT_EQ(plan.decision.target_nodes, 3);
  EXPECT_EQ(plan.scale_up, 1);
  ASSERT_TRUE(plan.state.utilization.has_value());
  EXPECT_DOUBLE_EQ(*plan.state.utilization, 95);
  ASSERT_EQ(plan.state.utilization_history.size(), 1u);
  EXPECT_EQ(plan.state.utilization_history[0].time, kNow);
}

TEST_F(PoolPlanTest, UnhealthyNodesAreReplacedWithinTheConcurrencyLimit) {
  for (const char* id : {"a", "b", "c", "d", "e", "f", "g"}) AddNode(id);
  AddNode("u1", NODE_STATUS_UNHEALTHY).status_reason = "xid 79";
  AddNode("u2", NODE_STATUS_UNHEALTHY);
  AddNode("u3", NODE_STATUS_UNHEALTHY);
  snap_.target = 10;
  PoolPlan plan = Plan();
  EXPECT_FALSE(plan.trip_breaker.has_value());
  ASSERT_EQ(plan.start_replacing.size(), 2u);
  EXPECT_EQ(plan.start_replacing[0].node_id, "u1");
  EXPECT_EQ(plan.start_replacing[0].reason, "node unhealthy: xid 79");
  EXPECT_TRUE(plan.start_replacing[0].replace);
  EXPECT_EQ(plan.start_replacing[0].deadline, kNow + absl::Minutes(5));
  EXPECT_EQ(plan.start_replacing[1].node_id, "u2");
  EXPECT_THAT(plan.provision_replacements, ElementsAre("u1", "u2"));
  // Nodes being replaced keep their slot until the replacement exists.
  EXPECT_EQ(plan.current, 10);
  EXPECT_EQ(plan.unhealthy_counted, 1);  // u3 waits for a free slot.
}

TEST_F(PoolPlanTest, NoReplacementWithoutAutoReplace) {
  AddNode("a");
  AddNode("u", NODE_STATUS_UNHEALTHY);
  config_.health.auto_replace = false;
  snap_.target = 2;
  PoolPlan plan = Plan();
  EXPECT_THAT(plan.start_replacing, IsEmpty());
  EXPECT_THAT(plan.provision_replacements, IsEmpty());
}

TEST_F(PoolPlanTest, TooManyUnhealthyTripsTheBreakerInsteadOfReplacing) {
  AddNode("a");
  for (const char* id : {"u1", "u2"}) AddNode(id, NODE_STATUS_UNHEALTHY);
  snap_.target = 3;
  PoolPlan plan = Plan();
  ASSERT_TRUE(plan.trip_breaker.has_value());
  EXPECT_EQ(*plan.trip_breaker,
            "2 of 3 nodes unhealthy (> 50%): automatic replacement stopped "
            "for pool train until an operator resets it");
  EXPECT_EQ(plan.unhealthy, 2);
  EXPECT_EQ(plan.live, 3);
  EXPECT_THAT(plan.start_replacing, IsEmpty());
  // Once open, it is not tripped again, and still nothing is replaced.
  snap_.breaker_open = true;
  plan = Plan();
  EXPECT_FALSE(plan.trip_breaker.has_value());
  EXPECT_THAT(plan.start_replacing, IsEmpty());
}

TEST_F(PoolPlanTest, OneUnhealthyNodeNeverTripsTheBreaker) {
  AddNode("u", NODE_STATUS_UNHEALTHY);
  snap_.target = 1;
  config_.min_nodes = 1;
  PoolPlan plan = Plan();
  EXPECT_FALSE(plan.trip_breaker.has_value());
  EXPECT_EQ(plan.start_replacing.size(), 1u);
}

TEST_F(PoolPlanTest, ScaleDownRemovesPendingThenUnhealthyCordonedIdleNewest) {
  AddNode("busy-old", NODE_STATUS_ACTIVE, 90, absl::Hours(3));
  AddNode("busy-new", NODE_STATUS_ACTIVE, 90, absl::Hours(1));
  AddNode("idle", NODE_STATUS_ACTIVE, 1);
  AddNode("cordoned", NODE_STATUS_CORDONED);
  AddNode("sick", NODE_STATUS_UNHEALTHY);
  AddNode("handmade", NODE_STATUS_UNHEALTHY);
  no_instance_ = {"handmade"};  // Nothing we could terminate.
  config_.health.auto_replace = false;
  config_.min_nodes = 1;
  snap_.pending = {{"i-old", kNow - absl::Minutes(2)},
                   {"i-new", kNow - absl::Minutes(1)}};
  snap_.target = 8;
  snap_.manual_target = 1;
  PoolPlan plan = Plan();
  EXPECT_EQ(plan.current, 8);
  EXPECT_EQ(plan.excess, 7);
  EXPECT_THAT(plan.terminate_pending, ElementsAre("i-new", "i-old"));
  EXPECT_THAT(plan.remove_nodes,
              ElementsAre("sick", "cordoned", "idle", "busy-new", "busy-old"));
  EXPECT_EQ(plan.scale_up, 0);
}

TEST_F(PoolPlanTest, AReplacementBeingProvisionedIsNotScaledDown) {
  AddNode("a");
  AddNode("b", NODE_STATUS_UNHEALTHY);
  PoolRemoval r;
  r.node_id = "b";
  r.replace = true;
  r.replacement_id = "i-repl";
  snap_.removals["b"] = r;
  snap_.pending = {{"i-repl", kNow}, {"i-extra", kNow}};
  snap_.target = 3;
  snap_.manual_target = 2;
  PoolPlan plan = Plan();
  EXPECT_EQ(plan.current, 3);  // a, and two pending; b has left.
  EXPECT_THAT(plan.terminate_pending, ElementsAre("i-extra"));
  EXPECT_THAT(plan.remove_nodes, ElementsAre("a"));
  EXPECT_THAT(plan.provision_replacements, IsEmpty());
}

TEST_F(PoolPlanTest, RemovalsOfNodesGoneOrTerminatedAreForgotten) {
  AddNode("a");
  AddNode("done", NODE_STATUS_TERMINATED);
  for (const char* id : {"a", "done", "gone"}) {
    PoolRemoval r;
    r.node_id = id;
    snap_.removals[id] = r;
  }
  PoolPlan plan = Plan();
  EXPECT_THAT(plan.forget, ElementsAre("done", "gone"));
  EXPECT_EQ(plan.live, 1);
}

TEST_F(PoolPlanTest, AFailingSourceIsOneEventPerChangeAndHoldsItsSignals) {
  AddNode("a");
  snap_.target = 2;
  snap_.source_name = "prometheus";
  snap_.metrics = absl::UnavailableError("connection refused");
  PoolPlan plan = Plan();
  EXPECT_TRUE(plan.source_failed);
  EXPECT_EQ(plan.source_error, "connection refused");
  EXPECT_EQ(plan.source_change, PoolPlan::SourceChange::kFailed);
  EXPECT_FALSE(plan.state.queue_depth.has_value());
  snap_.source_was_up = false;  // Still failing: no second event.
  EXPECT_EQ(Plan().source_change, PoolPlan::SourceChange::kNone);
  ExternalMetrics m;
  m.queue_depth = 7;
  m.utilization = 12.5;
  snap_.metrics = m;
  plan = Plan();
  EXPECT_EQ(plan.source_change, PoolPlan::SourceChange::kRecovered);
  EXPECT_EQ(plan.state.queue_depth, 7);
  EXPECT_EQ(plan.state.utilization, 12.5);  // The source's wins.
}

TEST_F(PoolPlanTest, HistoryKeepsAtMostMaxHistorySamples) {
  AddNode("a", NODE_STATUS_ACTIVE, 40);
  snap_.max_history = 2;
  snap_.history = {{kNow - absl::Minutes(2), 10},
                   {kNow - absl::Minutes(1), 20}};
  PoolPlan plan = Plan();
  ASSERT_EQ(plan.state.utilization_history.size(), 2u);
  EXPECT_EQ(plan.state.utilization_history[0].percent, 20);
  EXPECT_EQ(plan.state.utilization_history[1].percent, 40);
}

}  // namespace
}  // namespace navarch
