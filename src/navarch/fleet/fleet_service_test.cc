#include "navarch/fleet/fleet_service.h"

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "navarch/api/time_util.h"
#include "navarch/store/memory/memory_store.h"
#include "navarch/store/sqlite/sqlite_store.h"

namespace navarch {
namespace {

// A node agent's registration: `gpus` H100s, hostname = id, labelled with
// `pool` unless empty.
RegisterNodeRequest RegisterRequest(const std::string& id, int gpus,
                                    const std::string& pool) {
  RegisterNodeRequest r;
  r.set_node_id(id);
  r.set_provider("gcp");
  r.set_region("us-central1");
  r.set_zone("us-central1-a");
  r.set_instance_type("a3-highgpu-8g");
  for (int i = 0; i < gpus; ++i) {
    auto* g = r.add_gpus();
    g->set_index(i);
    g->set_uuid("GPU-" + std::to_string(i));
    g->set_name("NVIDIA H100 80GB HBM3");
  }
  r.mutable_metadata()->set_hostname(id);
  if (!pool.empty()) (*r.mutable_metadata()->mutable_labels())["pool"] = pool;
  return r;
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override { Restart(); }

  // A new fleet core on the same store, as after a control-plane restart.
  void Restart() {
    if (fleet_) fleet_->Stop();
    fleet_ = std::make_unique<FleetService>(store_, clock_, evaluator_,
                                            NullLogger(), options_);
    ASSERT_TRUE(fleet_->Start().ok());
  }

  absl::StatusOr<RegisterNodeResponse> Register(const std::string& id,
                                                int gpus = 8,
                                                const std::string& pool = "") {
    RegisterNodeRequest r = RegisterRequest(id, gpus, pool);
    return Await<RegisterNodeResponse>(
        [&](auto done) { fleet_->RegisterNode(r, done); });
  }

  // Records an instance as a pool manager would; `ended`: terminated now.
  void Upsert(const std::string& id, InstanceState state, bool ended = false) {
    InstanceInfo i;
    i.set_instance_id(id);
    i.set_provider("fake");
    i.set_state(state);
    if (ended) *i.mutable_terminated_at() = ToTimestamp(clock_.Now());
    ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                  fleet_->UpsertInstance(i, Actor{"pool-manager"}, done);
                }).ok());
  }

  absl::StatusOr<HeartbeatResponse> Heartbeat(const std::string& id) {
    HeartbeatRequest r;
    r.set_node_id(id);
    r.mutable_metrics()->set_cpu_usage_percent(12.5);
    return Await<HeartbeatResponse>(
        [&](auto done) { fleet_->SendHeartbeat(r, done); });
  }

  absl::StatusOr<ReportHealthResponse> ReportXid(const std::string& id,
                                                 int xid) {
    ReportHealthRequest r;
    r.set_node_id(id);
    auto* res = r.add_results();
    res->set_check_name("boot");
    res->set_status(HEALTH_STATUS_HEALTHY);
    auto* e = r.add_events();
    e->set_event_type(HEALTH_EVENT_TYPE_XID);
    e->set_system(HEALTH_WATCH_SYSTEM_DRIVER);
    e->set_gpu_index(3);
    (*e->mutable_metrics())["xid_code"] = std::to_string(xid);
    e->set_message("NVRM: Xid (PCI:0000:3b:00): " + std::to_string(xid));
    return Await<ReportHealthResponse>(
        [&](auto done) { fleet_->ReportHealth(r, done); });
  }

  absl::StatusOr<ReportHealthResponse> ReportClean(const std::string& id) {
    ReportHealthRequest r;
    r.set_node_id(id);
    auto* res = r.add_results();
    res->set_check_name("nvml");
    res->set_status(HEALTH_STATUS_HEALTHY);
    return Await<ReportHealthResponse>(
        [&](auto done) { fleet_->ReportHealth(r, done); });
  }

  absl::StatusOr<IssueCommandResponse> Issue(const std::string& id,
                                             NodeCommandType type,
                                             const std::string& reason = "") {
    IssueCommandRequest r;
    r.set_node_id(id);
    r.set_command_type(type);
    if (!reason.empty()) (*r.mutable_parameters())["reason"] = reason;
    return Await<IssueCommandResponse>(
        [&](auto done) { fleet_->IssueCommand(r, Actor{"operator"}, done); });
  }

  absl::StatusOr<GetNodeCommandsResponse> Poll(const std::string& id) {
    GetNodeCommandsRequest r;
    r.set_node_id(id);
    return Await<GetNodeCommandsResponse>(
        [&](auto done) { fleet_->GetNodeCommands(r, done); });
  }

  NodeInfo Node(const std::string& id) {
    GetNodeRequest r;
    r.set_node_id(id);
    auto resp = fleet_->GetNode(r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->node() : NodeInfo();
  }

  std::vector<Event> Events(const std::string& node_id,
                            const std::string& kind = "") {
    ListEventsRequest r;
    r.set_node_id(node_id);
    if (!kind.empty()) r.add_kinds(kind);
    r.set_page_size(1000);
    auto resp = fleet_->ListEvents(r);
    EXPECT_TRUE(resp.ok());
    return {resp->events().begin(), resp->events().end()};
  }

  MemoryStore store_;
  FakeClock clock_;
  PolicyEvaluator evaluator_;
  FleetOptions options_;
  std::unique_ptr<FleetService> fleet_;
};

TEST_F(FleetTest, RegisterReturnsConfigAndActivatesTheNode) {
  auto resp = Register("n1");
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_TRUE(resp->success());
  EXPECT_EQ(resp->message(), "registration successful");
  EXPECT_EQ(resp->config().heartbeat_interval_seconds(), 30);
  EXPECT_EQ(resp->config().health_check_interval_seconds(), 60);
  EXPECT_EQ(resp->config().enabled_health_checks_size(), 3);
  NodeInfo n = Node("n1");
  EXPECT_EQ(n.status(), NODE_STATUS_ACTIVE);
  EXPECT_EQ(n.health_status(), HEALTH_STATUS_UNKNOWN);
  EXPECT_EQ(n.gpus_size(), 8);
  EXPECT_EQ(FromTimestamp(n.registered_at()), clock_.Now());
  EXPECT_EQ(Events("n1", "node.registered").size(), 1u);
}

TEST_F(FleetTest, BadRequestsAreRejectedAndChangeNothing) {
  EXPECT_EQ(Register("").status().message(), "node_id is required");
  EXPECT_EQ(Register("bad id").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Register("n1", 65).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fleet_->node_count(), 0u);
  ASSERT_TRUE(Register("n1").ok());
  ReportHealthRequest r;
  r.set_node_id("n1");
  for (int i = 0; i < 1025; ++i)
    r.add_events()->set_event_type(HEALTH_EVENT_TYPE_XID);
  auto resp = Await<ReportHealthResponse>(
      [&](auto done) { fleet_->ReportHealth(r, done); });
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(resp.status().message().find("too many events: 1025"),
            std::string::npos);
  EXPECT_EQ(Node("n1").health_status(), HEALTH_STATUS_UNKNOWN);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_UNKNOWN).status().message(),
            "command_type is required");
}

TEST_F(FleetTest, UnknownNodesAreNotFoundExceptForPolling) {
  EXPECT_EQ(Heartbeat("ghost").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReportClean("ghost").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Issue("ghost", NODE_COMMAND_TYPE_CORDON).status().message(),
            "node ghost not found");
  auto polled = Poll("ghost");
  ASSERT_TRUE(polled.ok());
  EXPECT_EQ(polled->commands_size(), 0);
}

TEST_F(FleetTest, FatalXidMakesTheNodeUnhealthyAndItStaysSo) {
  ASSERT_TRUE(Register("n1").ok());
  auto resp = ReportXid("n1", 79);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->node_status(), NODE_STATUS_UNHEALTHY);
  EXPECT_EQ(resp->health_status(), HEALTH_STATUS_UNHEALTHY);
  // Events are one-shot: the next clean report heals the health status but
  // not the node status.
  resp = ReportClean("n1");
  EXPECT_EQ(resp->health_status(), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(resp->node_status(), NODE_STATUS_UNHEALTHY);
  // Re-registration (an agent restart) does not launder it either.
  ASSERT_TRUE(Register("n1").ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_UNHEALTHY);
  // The event log explains it.
  auto changes = Events("n1", "node.status_changed");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].actor(), "policy");
  EXPECT_NE(changes[0].message().find("fatal-xid"), std::string::npos)
      << changes[0].message();
  FleetStats stats = fleet_->stats();
  EXPECT_EQ(stats.health_events["xid|79"], 1);
  EXPECT_EQ(stats.rule_matches["fatal-xid"], 1);
  EXPECT_EQ(stats.status_changes["active|unhealthy"], 1);
  EXPECT_EQ(stats.health_reports, 2);
  auto hw = Events("n1", "health.event");
  ASSERT_EQ(hw.size(), 1u);
  EXPECT_EQ(hw[0].details().at("metric.xid_code"), "79");
  EXPECT_EQ(hw[0].details().at("rule"), "fatal-xid");
}

absl::StatusOr<ReportHealthResponse> ReportCheck(FleetService& fleet,
                                                 const std::string& id,
                                                 HealthStatus status) {
  ReportHealthRequest r;
  r.set_node_id(id);
  auto* res = r.add_results();
  res->set_check_name("gpu");
  res->set_status(status);
  res->set_message(status == HEALTH_STATUS_UNHEALTHY ? "NVML not answering"
                                                     : "");
  return Await<ReportHealthResponse>(
      [&](auto done) { fleet.ReportHealth(r, done); });
}

TEST_F(FleetTest, AFlappingCheckNeedsUnhealthyAfterInARow) {
  ASSERT_TRUE(Register("n1").ok());
  // Default unhealthy_after: 2. One bad measurement, then a good one, resets.
  auto r = ReportCheck(*fleet_, "n1", HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r->health_status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r->node_status(), NODE_STATUS_ACTIVE);
  r = ReportCheck(*fleet_, "n1", HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(r->node_status(), NODE_STATUS_ACTIVE);
  r = ReportCheck(*fleet_, "n1", HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r->node_status(), NODE_STATUS_ACTIVE);
  r = ReportCheck(*fleet_, "n1", HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r->node_status(), NODE_STATUS_UNHEALTHY);
  auto changes = Events("n1", "node.status_changed");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].details().at("consecutive_unhealthy_checks"), "2");
  EXPECT_EQ(changes[0].details().at("decided_by"), "check:gpu");
  EXPECT_NE(changes[0].message().find("NVML not answering"), std::string::npos);
}

TEST_F(FleetTest, UnhealthyAfterIsPerPool) {
  options_.unhealthy_after_by_pool["fragile"] = 1;
  Restart();
  ASSERT_TRUE(Register("n1", 8, "fragile").ok());
  EXPECT_EQ(ReportCheck(*fleet_, "n1", HEALTH_STATUS_UNHEALTHY)->node_status(),
            NODE_STATUS_UNHEALTHY);
}

TEST_F(FleetTest, AFailingRuleCountsAsNoMatchAndIsRecorded) {
  auto policy = Policy::Parse(R"(
rules:
  - name: needs-temperature
    condition: event.metrics.temperature > 90
    result: unhealthy
  - name: default
    condition: "true"
    result: healthy
)",
                              "test.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  evaluator_.SetPolicy(*policy);
  ASSERT_TRUE(Register("n1").ok());
  auto resp =
      ReportXid("n1", 79);  // no temperature metric: the first rule errors
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->node_status(), NODE_STATUS_ACTIVE);
  EXPECT_EQ(resp->health_status(), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(fleet_->stats().rule_errors["needs-temperature"], 1);
  auto errors = Events("n1", "policy.rule_error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].details().at("rule"), "needs-temperature");
  EXPECT_NE(errors[0].details().at("error").find("temperature"),
            std::string::npos);
  auto hw = Events("n1", "health.event");
  ASSERT_EQ(hw.size(), 1u);
  EXPECT_EQ(hw[0].details().at("rule"), "default");
}

TEST_F(FleetTest, RecoverableXidDegradesWithoutChangingStatus) {
  ASSERT_TRUE(Register("n1").ok());
  auto resp = ReportXid("n1", 7);
  EXPECT_EQ(resp->health_status(), HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(resp->node_status(), NODE_STATUS_ACTIVE);
}

TEST_F(FleetTest, CordonUncordonDrainFollowTheStateMachine) {
  ASSERT_TRUE(Register("n1").ok());
  auto unc = Issue("n1", NODE_COMMAND_TYPE_UNCORDON);
  EXPECT_EQ(unc.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(unc.status().message(),
            "node n1 is not cordoned (current status: NODE_STATUS_ACTIVE)");
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_CORDON, "maintenance").ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_CORDONED);
  EXPECT_NE(Node("n1").status_reason().find("maintenance"), std::string::npos);
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_UNCORDON).ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_ACTIVE);
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_DRAIN).ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_DRAINING);
}

TEST_F(FleetTest, UncordonOfAnUnhealthyNodeIsARecordedOverride) {
  ASSERT_TRUE(Register("n1").ok());
  ASSERT_TRUE(ReportXid("n1", 48).ok());
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_CORDON).ok());
  EXPECT_EQ(Node("n1").status(),
            NODE_STATUS_UNHEALTHY);  // cordon does not lift it
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_UNCORDON, "GPU reseated").ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_ACTIVE);
  auto changes = Events("n1", "node.status_changed");
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_NE(changes[1].message().find("operator override"), std::string::npos);
}

TEST_F(FleetTest, PolledCommandsAreDeliveredOnceInIssueOrder) {
  ASSERT_TRUE(Register("n1").ok());
  auto diag = Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  clock_.Advance(absl::Seconds(1));
  auto term = Issue("n1", NODE_COMMAND_TYPE_TERMINATE);
  auto first = Poll("n1");
  ASSERT_EQ(first->commands_size(), 2);
  EXPECT_EQ(first->commands(0).command_id(), diag->command_id());
  EXPECT_EQ(first->commands(1).command_id(), term->command_id());
  EXPECT_EQ(first->commands(1).type(), NODE_COMMAND_TYPE_TERMINATE);
  EXPECT_EQ(Poll("n1")->commands_size(), 0);
  EXPECT_EQ(fleet_->stats().commands_issued["terminate"], 1);
  EXPECT_EQ(fleet_->stats().command_outcomes["terminate|delivered"], 1);
}

TEST_F(FleetTest, AckFinishesACommandAndIsIdempotent) {
  ASSERT_TRUE(Register("n1").ok());
  auto cmd = Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  ASSERT_TRUE(Poll("n1").ok());
  AckCommandRequest ack;
  ack.set_node_id("n1");
  ack.set_command_id(cmd->command_id());
  ack.set_outcome(COMMAND_OUTCOME_FAILED);
  ack.set_message("dcgmi diag: GPU 3 failed");
  auto r = Await<AckCommandResponse>(
      [&](auto done) { fleet_->AckCommand(ack, done); });
  ASSERT_TRUE(r.ok()) << r.status();
  r = Await<AckCommandResponse>(
      [&](auto done) { fleet_->AckCommand(ack, done); });
  EXPECT_TRUE(r.ok()) << r.status();
  auto stored = store_.GetCommand(cmd->command_id());
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->state(), internal::COMMAND_STATE_FAILED);
  EXPECT_EQ(Events("n1", "command.failed").size(), 1u);
  ack.set_command_id("no-such-command");
  r = Await<AckCommandResponse>(
      [&](auto done) { fleet_->AckCommand(ack, done); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FleetTest, WatchDeliversBacklogThenNewCommandsAtOnce) {
  ASSERT_TRUE(Register("n1").ok());
  auto backlog = Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  std::vector<NodeCommand> got;
  bool closed = false;
  auto handle = fleet_->Watch(
      "n1", [&](const NodeCommand& c) { got.push_back(c); },
      [&] { closed = true; });
  ASSERT_TRUE(handle.ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].command_id(), backlog->command_id());
  auto live = Issue("n1", NODE_COMMAND_TYPE_DRAIN);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].command_id(), live->command_id());
  EXPECT_EQ(Poll("n1")->commands_size(), 0);  // already delivered
  // A second stream for the node replaces the first, and gets the unacked ones.
  std::vector<NodeCommand> got2;
  ASSERT_TRUE(
      fleet_
          ->Watch(
              "n1", [&](const NodeCommand& c) { got2.push_back(c); }, [] {})
          .ok());
  EXPECT_TRUE(closed);
  EXPECT_EQ(got2.size(), 2u);
  EXPECT_EQ(fleet_
                ->Watch(
                    "ghost", [](const NodeCommand&) {}, [] {})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FleetTest, HeartbeatTimeoutDeclaresSilentNodesUnhealthy) {
  ASSERT_TRUE(Register("n1").ok());
  ASSERT_TRUE(Register("n2").ok());
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(Heartbeat("n1").ok());
  clock_.Advance(absl::Seconds(31));  // n2 silent 91 s > 90 s; n1 31 s
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_ACTIVE);
  NodeInfo n2 = Node("n2");
  EXPECT_EQ(n2.status(), NODE_STATUS_UNHEALTHY);
  EXPECT_EQ(n2.health_status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_NE(n2.status_reason().find("no heartbeat for 1m31s"),
            std::string::npos)
      << n2.status_reason();
  EXPECT_EQ(fleet_->CheckHeartbeats(), 0);  // already unhealthy
}

TEST_F(FleetTest, HeartbeatMonitorWatchesExactlyTheLiveNodes) {
  // The monitor walks a dense list of live nodes that follows every status
  // change: terminated and unhealthy nodes leave it, cordoned and draining
  // ones stay, an override brings one back; declarations come in id order.
  for (const char* id : {"n6", "n5", "n4", "n3", "n2", "n1"})
    ASSERT_TRUE(Register(id).ok());
  ASSERT_TRUE(Await<NodeInfo>([&](auto done) {
                fleet_->MarkTerminated("n2", "gone", Actor{"test"}, done);
              }).ok());
  ASSERT_TRUE(ReportXid("n3", 79).ok());  // UNHEALTHY
  ASSERT_TRUE(Issue("n4", NODE_COMMAND_TYPE_CORDON).ok());
  ASSERT_TRUE(Issue("n5", NODE_COMMAND_TYPE_DRAIN).ok());
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(Heartbeat("n1").ok());
  ASSERT_TRUE(Register("n7").ok());  // after the removals
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 3);  // n4, n5, n6
  std::vector<std::string> declared;
  for (const Event& e : Events("", "node.status_changed")) {
    if (e.actor() == "heartbeat-monitor") declared.push_back(e.node_id());
  }
  EXPECT_EQ(declared, (std::vector<std::string>{"n4", "n5", "n6"}));
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_ACTIVE);
  EXPECT_EQ(Node("n2").status(), NODE_STATUS_TERMINATED);
  // The operator puts n3 back; it is silent too, and is watched again.
  ASSERT_TRUE(Issue("n3", NODE_COMMAND_TYPE_UNCORDON, "reseated").ok());
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);
  EXPECT_EQ(Node("n3").status(), NODE_STATUS_UNHEALTHY);
  clock_.Advance(absl::Seconds(60));  // n7 silent 91 s, n1 91 s
  EXPECT_EQ(fleet_->CheckHeartbeats(), 2);
  EXPECT_EQ(fleet_->CheckHeartbeats(), 0);
}

TEST_F(FleetTest, AVouchedNodeIsNeverSilentUntilTheVouchIsWithdrawn) {
  // The simulator vouches for nodes whose beats it skips: the monitor passes
  // them over, through status changes; withdrawn, the last beat counts
  // again; registering anew clears it.
  for (const char* id : {"n1", "n2", "n3"}) ASSERT_TRUE(Register(id).ok());
  EXPECT_TRUE(fleet_->VouchLiveness("n1", true));
  EXPECT_TRUE(fleet_->VouchLiveness("n2", true));
  EXPECT_FALSE(fleet_->VouchLiveness("nope", true));
  clock_.Advance(absl::Seconds(91));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);  // n3 only
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_ACTIVE);
  ASSERT_TRUE(Heartbeat("n1").ok());  // a real beat keeps the vouch
  // Out of the live set and back (cordon is live, drain too): still vouched.
  ASSERT_TRUE(Issue("n2", NODE_COMMAND_TYPE_CORDON).ok());
  clock_.Advance(absl::Seconds(91));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 0);
  // Withdrawn: the last beat counts (n1's at 91 s, now 91 s old).
  EXPECT_TRUE(fleet_->VouchLiveness("n1", false));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);
  NodeInfo n1 = Node("n1");
  EXPECT_EQ(n1.status(), NODE_STATUS_UNHEALTHY);
  EXPECT_NE(n1.status_reason().find("no heartbeat for 1m31s"),
            std::string::npos)
      << n1.status_reason();
  // n2 registers anew (a new agent): its vouch is gone.
  ASSERT_TRUE(Register("n2").ok());
  clock_.Advance(absl::Seconds(91));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);
  EXPECT_EQ(Node("n2").status(), NODE_STATUS_UNHEALTHY);
}

TEST_F(FleetTest, RestartKeepsStateAndGivesLivenessAGracePeriod) {
  ASSERT_TRUE(Register("n1", 8, "training").ok());
  ASSERT_TRUE(Heartbeat("n1").ok());
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_CORDON).ok());
  auto cmd = Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  absl::Time hb = clock_.Now();
  clock_.Advance(absl::Seconds(2));  // the flush timer writes the heartbeat
  // Down for ten minutes: far past the heartbeat timeout.
  clock_.Advance(absl::Minutes(10));
  Restart();
  NodeInfo n = Node("n1");
  EXPECT_EQ(n.status(), NODE_STATUS_CORDONED);
  EXPECT_EQ(n.pool(), "training");
  EXPECT_EQ(FromTimestamp(n.last_heartbeat()), hb);
  EXPECT_EQ(n.last_metrics().cpu_usage_percent(), 12.5);
  EXPECT_EQ(fleet_->CheckHeartbeats(), 0);  // grace period
  auto polled = Poll("n1");
  ASSERT_EQ(polled->commands_size(), 2);  // cordon + diagnostic, still pending
  EXPECT_EQ(polled->commands(1).command_id(), cmd->command_id());
  clock_.Advance(absl::Seconds(91));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);
}

TEST_F(FleetTest, InstancesBecomeRunningWhenTheirNodeRegisters) {
  InstanceInfo inst;
  inst.set_instance_id("n1");
  inst.set_provider("fake");
  inst.set_pool_name("training");
  inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
  ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                fleet_->UpsertInstance(inst, Actor{"pool-manager"}, done);
              }).ok());
  ASSERT_TRUE(Register("n1").ok());
  GetInstanceRequest g;
  g.set_instance_id("n1");
  auto got = fleet_->GetInstance(g);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->instance().state(), INSTANCE_STATE_RUNNING);
  EXPECT_EQ(got->instance().node_id(), "n1");
  ListInstancesRequest l;
  l.set_pool_name("training");
  EXPECT_EQ(fleet_->ListInstances(l)->instances_size(), 1);
  l.set_pool_name("other");
  EXPECT_EQ(fleet_->ListInstances(l)->instances_size(), 0);
  g.set_instance_id("nope");
  EXPECT_EQ(fleet_->GetInstance(g).status().code(),
            absl::StatusCode::kNotFound);
}

// The bootstrap is RecordBootstrap's: an instance update from a pool tick
// that read the instance before it was recorded leaves it alone; the host
// key is pinned once and survives a restart.
TEST_F(FleetTest, RecordBootstrapOwnsTheBootstrapAndPinsTheKeyOnce) {
  Upsert("i-1", INSTANCE_STATE_PENDING_REGISTRATION);
  InstanceBootstrap b;
  b.set_state(BOOTSTRAP_STATE_RUNNING);
  b.set_host("127.0.0.1:22");
  auto record = [&](const InstanceBootstrap& bs, const std::string& key) {
    return Await<InstanceInfo>([&](auto done) {
      fleet_->RecordBootstrap("i-1", bs, key, Actor{"pool-manager"}, done);
    });
  };
  ASSERT_TRUE(record(b, "").ok());
  b.set_state(BOOTSTRAP_STATE_SUCCEEDED);
  b.add_steps()->set_command("echo {{.Pool}}");
  ASSERT_TRUE(record(b, "ssh-ed25519 AAAAfirst").ok());
  Upsert("i-1", INSTANCE_STATE_RUNNING);  // an update without the bootstrap
  GetInstanceRequest g;
  g.set_instance_id("i-1");
  auto got = fleet_->GetInstance(g);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->instance().state(), INSTANCE_STATE_RUNNING);
  EXPECT_EQ(got->instance().bootstrap().state(), BOOTSTRAP_STATE_SUCCEEDED);
  EXPECT_EQ(got->instance().bootstrap().steps(0).command(), "echo {{.Pool}}");
  ASSERT_TRUE(record(b, "ssh-ed25519 AAAAsecond").ok());
  Restart();
  EXPECT_EQ(fleet_->PinnedHostKey("i-1"), "ssh-ed25519 AAAAfirst");
  EXPECT_EQ(fleet_->GetInstance(g)->instance().bootstrap().state(),
            BOOTSTRAP_STATE_SUCCEEDED);
  EXPECT_EQ(Events("i-1", "instance.bootstrap_started").size(), 1u);
  EXPECT_EQ(Events("i-1", "instance.bootstrap_succeeded").size(), 2u);
  EXPECT_EQ(record(b, "").status().code(), absl::StatusCode::kOk);
  EXPECT_EQ(Await<InstanceInfo>([&](auto done) {
              fleet_->RecordBootstrap("nope", b, "", Actor{"x"}, done);
            })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // Instances without a bootstrap have none, not an empty one.
  Upsert("i-2", INSTANCE_STATE_PENDING_REGISTRATION);
  g.set_instance_id("i-2");
  EXPECT_FALSE(fleet_->GetInstance(g)->instance().has_bootstrap());
}

// A memory store whose heartbeat writes can be made to fail.
class FlakyHeartbeatStore final : public Store {
 public:
  void Commit(WriteBatch b, std::function<void(absl::Status)> done) override {
    inner_.Commit(std::move(b), std::move(done));
  }
  absl::Status UpdateHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override {
    ++calls;
    last_batch = updates.size();
    if (fail) return absl::UnavailableError("disk full");
    return inner_.UpdateHeartbeats(updates);
  }
  absl::StatusOr<StoreSnapshot> Load() override { return inner_.Load(); }
  absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string& id) override {
    return inner_.GetNode(id);
  }
  absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string& id) override {
    return inner_.GetCommand(id);
  }
  absl::StatusOr<EventPage> ListEvents(const EventQuery& q) override {
    return inner_.ListEvents(q);
  }
  using Store::Prune;
  absl::StatusOr<int64_t> Prune(const PruneRequest& r) override {
    return inner_.Prune(r);
  }
  absl::Status Ping() override { return inner_.Ping(); }
  void Close() override { inner_.Close(); }
  std::string Name() const override { return "flaky"; }

  bool fail = false;
  int calls = 0;
  size_t last_batch = 0;

 private:
  MemoryStore inner_;
};

TEST(FleetFlushTest, FlushWritesOnlyNodesThatBeatAndRetriesAfterAFailure) {
  FlakyHeartbeatStore store;
  FakeClock clock;
  PolicyEvaluator evaluator;
  FleetService fleet(store, clock, evaluator, NullLogger(), FleetOptions{});
  ASSERT_TRUE(fleet.Start().ok());
  for (int i = 0; i < 1500; ++i) {
    RegisterNodeRequest r;
    r.set_node_id("n" + std::to_string(i));
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet.RegisterNode(r, done);
                }).ok());
  }
  auto beat = [&](const std::string& id) {
    HeartbeatRequest r;
    r.set_node_id(id);
    ASSERT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                  fleet.SendHeartbeat(r, done);
                }).ok());
  };
  ASSERT_TRUE(fleet.FlushHeartbeats().ok());
  const int calls = store.calls;
  // Nothing beat: no write at all.
  ASSERT_TRUE(fleet.FlushHeartbeats().ok());
  EXPECT_EQ(store.calls, calls);

  clock.Advance(absl::Seconds(5));
  for (int i = 0; i < 1200; ++i) beat("n" + std::to_string(i));
  beat("n3");  // Twice: still one update.
  store.fail = true;
  EXPECT_FALSE(fleet.FlushHeartbeats().ok());
  EXPECT_EQ(store.last_batch, 1200u);  // More than one 512-node chunk.
  store.fail = false;
  // The failed ones are written at the next flush.
  ASSERT_TRUE(fleet.FlushHeartbeats().ok());
  EXPECT_EQ(store.last_batch, 1200u);
  auto rec = store.GetNode("n1100");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ(FromTimestamp((*rec)->node().last_heartbeat()), clock.Now());
  auto quiet = store.GetNode("n1300");
  ASSERT_TRUE(quiet.ok() && quiet->has_value());
  EXPECT_LT(FromTimestamp((*quiet)->node().last_heartbeat()), clock.Now());
  fleet.Stop();
}

TEST_F(FleetTest, ListNodesPagesInIdOrder) {
  for (const char* id : {"d", "a", "c", "e", "b"})
    ASSERT_TRUE(Register(id).ok());
  ListNodesRequest r;
  r.set_page_size(2);
  std::vector<std::string> seen;
  int pages = 0;
  while (true) {
    auto resp = fleet_->ListNodes(r);
    ASSERT_TRUE(resp.ok()) << resp.status();
    ++pages;
    for (const auto& n : resp->nodes()) seen.push_back(n.node_id());
    if (resp->next_page_token().empty()) break;
    r.set_page_token(resp->next_page_token());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(pages, 3);
  // Exactly a page's worth left: no empty extra page.
  r.set_page_size(5);
  r.clear_page_token();
  EXPECT_EQ(fleet_->ListNodes(r)->next_page_token(), "");
  // Unpaged (upstream's clients): everything at once.
  EXPECT_EQ(fleet_->ListNodes({})->nodes_size(), 5);
  r.set_page_size(10001);
  EXPECT_EQ(fleet_->ListNodes(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.set_page_size(0);
  r.set_page_token("b");
  EXPECT_EQ(fleet_->ListNodes(r).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FleetTest, ListInstancesPagesInIdOrder) {
  for (const char* id : {"i4", "i1", "i3", "i5", "i2"})
    Upsert(id, INSTANCE_STATE_RUNNING);
  Upsert("f1", INSTANCE_STATE_FAILED);
  ListInstancesRequest r;
  r.set_state(INSTANCE_STATE_RUNNING);
  r.set_page_size(2);
  std::vector<std::string> seen;
  int pages = 0;
  while (true) {
    auto resp = fleet_->ListInstances(r);
    ASSERT_TRUE(resp.ok()) << resp.status();
    ++pages;
    for (const auto& i : resp->instances()) seen.push_back(i.instance_id());
    if (resp->next_page_token().empty()) break;
    r.set_page_token(resp->next_page_token());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"i1", "i2", "i3", "i4", "i5"}));
  EXPECT_EQ(pages, 3);
  // Exactly a page's worth left: no empty extra page.
  r.set_page_size(5);
  r.clear_page_token();
  EXPECT_EQ(fleet_->ListInstances(r)->next_page_token(), "");
  // A token past a removed id still goes on after it.
  r.set_page_size(2);
  r.set_page_token("i25");
  auto after = fleet_->ListInstances(r);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->instances_size(), 2);
  EXPECT_EQ(after->instances(0).instance_id(), "i3");
  // Unpaged (upstream's clients): every instance at once.
  EXPECT_EQ(fleet_->ListInstances({})->instances_size(), 6);
  EXPECT_EQ(fleet_->ListInstances({})->next_page_token(), "");
  r.set_page_size(kMaxInstancesPageSize + 1);
  EXPECT_EQ(fleet_->ListInstances(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.set_page_size(-1);
  EXPECT_EQ(fleet_->ListInstances(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.set_page_size(0);
  r.set_page_token("i2");
  EXPECT_EQ(fleet_->ListInstances(r).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FleetTest, PruneHistoryForgetsOldEndedInstances) {
  for (auto [id, state, ended] :
       {std::tuple{"old", INSTANCE_STATE_TERMINATED, true},
        std::tuple{"old-failed", INSTANCE_STATE_FAILED, true},
        std::tuple{"live", INSTANCE_STATE_RUNNING, false}}) {
    Upsert(id, state, ended);
  }
  clock_.Advance(absl::Hours(24) + absl::Seconds(1));
  PruneRequest r;
  r.instances_before = clock_.Now() - absl::Hours(24);
  auto pruned = fleet_->PruneHistory(r);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 2);
  auto listed = fleet_->ListInstances({});
  ASSERT_EQ(listed->instances_size(), 1);
  EXPECT_EQ(listed->instances(0).instance_id(), "live");
  Restart();  // And the store agrees.
  EXPECT_EQ(fleet_->ListInstances({})->instances_size(), 1);
}

TEST_F(FleetTest, TerminatedIsTerminal) {
  ASSERT_TRUE(Register("n1").ok());
  ASSERT_TRUE(Await<NodeInfo>([&](auto done) {
                fleet_->MarkTerminated("n1", "instance deleted",
                                       Actor{"pool-manager"}, done);
              }).ok());
  EXPECT_EQ(Register("n1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_UNCORDON).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Heartbeat("n1").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FleetTest, ListNodesFiltersAndEventsPage) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  ASSERT_TRUE(Issue("b", NODE_COMMAND_TYPE_CORDON).ok());
  ListNodesRequest l;
  EXPECT_EQ(fleet_->ListNodes(l)->nodes_size(), 2);
  l.set_status(NODE_STATUS_CORDONED);
  auto cordoned = fleet_->ListNodes(l);
  ASSERT_EQ(cordoned->nodes_size(), 1);
  EXPECT_EQ(cordoned->nodes(0).node_id(), "b");
  l.set_status(NODE_STATUS_UNKNOWN);
  l.set_provider("aws");
  EXPECT_EQ(fleet_->ListNodes(l)->nodes_size(), 0);

  ListEventsRequest e;
  e.set_page_size(2);
  auto page1 = fleet_->ListEvents(e);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->events_size(), 2);
  ASSERT_FALSE(page1->next_page_token().empty());
  e.set_page_token(page1->next_page_token());
  auto page2 = fleet_->ListEvents(e);
  ASSERT_GE(page2->events_size(), 1);
  EXPECT_GT(page2->events(0).id(), page1->events(1).id());
  e.set_page_token("garbage");
  EXPECT_EQ(fleet_->ListEvents(e).status().code(),
            absl::StatusCode::kInvalidArgument);
  ListEventsRequest kinds;
  kinds.add_kinds("node.*");
  auto node_events = fleet_->ListEvents(kinds);
  ASSERT_TRUE(node_events.ok());
  EXPECT_GT(node_events->events_size(), 0);
  for (const auto& ev : node_events->events()) {
    EXPECT_EQ(ev.kind().rfind("node.", 0), 0u) << ev.kind();
  }
}

TEST_F(FleetTest, RecordEventAppendsAControllerDecision) {
  auto e = Await<Event>([&](auto done) {
    fleet_->RecordEvent("pool.scaled", "", "train", Actor{"pool-manager"},
                        "utilization 87.3% > 80% for pool train: 5 -> 6",
                        {{"from", "5"}, {"to", "6"}}, done);
  });
  ASSERT_TRUE(e.ok()) << e.status();
  ListEventsRequest r;
  r.set_pool("train");
  r.add_kinds("pool.*");
  auto resp = fleet_->ListEvents(r);
  ASSERT_TRUE(resp.ok());
  ASSERT_EQ(resp->events_size(), 1);
  EXPECT_EQ(resp->events(0).actor(), "pool-manager");
  EXPECT_EQ(resp->events(0).details().at("to"), "6");
  auto bad = Await<Event>([&](auto done) {
    fleet_->RecordEvent("", "", "", Actor{}, "", {}, done);
  });
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// The index keeps a node's GPUs, metadata and last metrics serialized (for
// memory); every read and every commit must still see the whole node.
TEST_F(FleetTest, EveryReadAndCommitSeesTheWholeNode) {
  using google::protobuf::util::MessageDifferencer;
  RegisterNodeRequest reg;
  reg.set_provider("gcp");
  reg.set_region("us-central1");
  reg.set_instance_type("a3-highgpu-8g");
  for (int i = 0; i < 8; ++i) {
    GPUInfo* g = reg.add_gpus();
    g->set_index(i);
    g->set_uuid("GPU-1c0d7a7e-55f2-4b4e-9f0a-00000000000" + std::to_string(i));
    g->set_name("NVIDIA H100 80GB HBM3");
    g->set_pci_bus_id("00000000:1" + std::to_string(i) + ":00.0");
    g->set_memory_total(int64_t{85899345920});
    g->set_driver_version("550.90.07");
    g->set_cuda_version("12.4");
  }
  reg.mutable_metadata()->set_hostname("host-1");
  reg.mutable_metadata()->set_internal_ip("10.0.0.1");
  reg.mutable_metadata()->set_kernel_version("6.1.0");
  (*reg.mutable_metadata()->mutable_labels())["pool"] = "train";
  (*reg.mutable_metadata()->mutable_labels())["team"] = "ml";
  auto register_as = [&](const std::string& id) {
    reg.set_node_id(id);
    return Await<RegisterNodeResponse>(
        [&](auto done) { fleet_->RegisterNode(reg, done); });
  };
  HeartbeatRequest hb;
  hb.mutable_metrics()->set_cpu_usage_percent(41.5);
  hb.mutable_metrics()->set_memory_usage_percent(63.25);
  for (int i = 0; i < 8; ++i) {
    GPUMetrics* m = hb.mutable_metrics()->add_gpu_metrics();
    m->set_gpu_index(i);
    m->set_temperature(60 + i);
    m->set_power_usage(500 + i);
    m->set_utilization_percent(97.5);
    m->set_memory_used(int64_t{70000000000} + i);
  }
  auto beat = [&](const std::string& id) {
    hb.set_node_id(id);
    return Await<HeartbeatResponse>(
        [&](auto done) { fleet_->SendHeartbeat(hb, done); });
  };
  // Whether `n` has what the node registered with and (if `metrics`) the
  // last heartbeat's metrics.
  auto whole = [&](const NodeInfo& n, bool metrics) {
    EXPECT_EQ(n.gpus_size(), reg.gpus_size());
    for (int i = 0; i < std::min(n.gpus_size(), reg.gpus_size()); ++i)
      EXPECT_TRUE(MessageDifferencer::Equals(n.gpus(i), reg.gpus(i))) << i;
    EXPECT_TRUE(MessageDifferencer::Equals(n.metadata(), reg.metadata()))
        << n.metadata().DebugString();
    EXPECT_EQ(n.has_last_metrics(), metrics);
    if (metrics) {
      EXPECT_TRUE(MessageDifferencer::Equals(n.last_metrics(), hb.metrics()))
          << n.last_metrics().DebugString();
    }
    EXPECT_EQ(n.pool(), "train");
  };
  auto stored = [&](const std::string& id) {
    auto rec = store_.GetNode(id);
    EXPECT_TRUE(rec.ok() && rec->has_value());
    return rec.ok() && rec->has_value() ? (*rec)->node() : NodeInfo();
  };

  ASSERT_TRUE(register_as("n1").ok());
  whole(Node("n1"), false);
  whole(stored("n1"), false);
  ASSERT_TRUE(beat("n1").ok());
  whole(Node("n1"), true);
  ListNodesRequest list;
  list.set_page_size(1);
  auto listed = fleet_->ListNodes(list);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->nodes_size(), 1);
  whole(listed->nodes(0), true);

  // Commits carry the whole record, the last metrics included.
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_CORDON).ok());
  whole(stored("n1"), true);
  ASSERT_TRUE(ReportClean("n1").ok());
  whole(Node("n1"), true);
  ASSERT_TRUE(ReportXid("n1", 79).ok());
  EXPECT_EQ(Node("n1").status(), NODE_STATUS_UNHEALTHY);
  whole(Node("n1"), true);
  whole(stored("n1"), true);
  ASSERT_TRUE(fleet_->FlushHeartbeats().ok());
  whole(stored("n1"), true);

  // The heartbeat monitor's commit.
  ASSERT_TRUE(register_as("n2").ok());
  ASSERT_TRUE(beat("n2").ok());
  clock_.Advance(absl::Seconds(91));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);  // n2; n1 is already UNHEALTHY
  whole(stored("n2"), true);

  // Loaded again from the store.
  Restart();
  whole(Node("n1"), true);
  whole(Node("n2"), true);

  // Registering again replaces the inventory and keeps the last metrics.
  reg.mutable_gpus()->DeleteSubrange(4, 4);
  reg.mutable_metadata()->set_hostname("host-1b");
  ASSERT_TRUE(register_as("n1").ok());
  whole(Node("n1"), true);
  whole(stored("n1"), true);
  // Metrics present but empty are still present.
  hb.mutable_metrics()->Clear();
  ASSERT_TRUE(beat("n1").ok());
  whole(Node("n1"), true);

  auto terminated = Await<NodeInfo>([&](auto done) {
    fleet_->MarkTerminated("n1", "gone", Actor{"pool-manager"}, done);
  });
  ASSERT_TRUE(terminated.ok()) << terminated.status();
  whole(*terminated, true);
  whole(stored("n1"), true);
  whole(Node("n1"), true);
}

// The same through SQLite, which stores a commit's record and the node's
// serialized parts (WriteBatch::node_extras) as one blob: the whole node
// survives restarts, a heartbeat flush replaces only the metrics, and a later
// commit replaces the inventory rather than adding to it.
TEST(FleetSqliteTest, TheWholeNodeSurvivesRestarts) {
  using google::protobuf::util::MessageDifferencer;
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ("navarch-fleet-sqlite-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  SqliteOptions options;
  options.path = (dir / "navarch.db").string();
  FakeClock clock;
  PolicyEvaluator evaluator;
  RegisterNodeRequest reg = RegisterRequest("n1", 8, "train");
  HeartbeatRequest hb;
  hb.set_node_id("n1");
  for (int i = 0; i < 8; ++i)
    hb.mutable_metrics()->add_gpu_metrics()->set_utilization_percent(90 + i);
  // One control-plane run: a fleet core on the database, `body`, shutdown.
  auto run = [&](const std::function<void(FleetService&, Store&)>& body) {
    auto store = SqliteStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    FleetService fleet(**store, clock, evaluator, NullLogger(), FleetOptions{});
    ASSERT_TRUE(fleet.Start().ok());
    body(fleet, **store);
    fleet.Stop();
    (*store)->Close();
  };
  auto whole = [&](const NodeInfo& n, double cpu) {
    EXPECT_EQ(n.gpus_size(), reg.gpus_size());
    for (int i = 0; i < std::min(n.gpus_size(), reg.gpus_size()); ++i)
      EXPECT_TRUE(MessageDifferencer::Equals(n.gpus(i), reg.gpus(i))) << i;
    EXPECT_TRUE(MessageDifferencer::Equals(n.metadata(), reg.metadata()));
    NodeMetrics metrics = hb.metrics();
    metrics.set_cpu_usage_percent(cpu);
    EXPECT_TRUE(MessageDifferencer::Equals(n.last_metrics(), metrics))
        << n.last_metrics().DebugString();
    EXPECT_EQ(n.pool(), "train");
  };
  auto get = [](FleetService& fleet) {
    GetNodeRequest r;
    r.set_node_id("n1");
    auto resp = fleet.GetNode(r);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->node() : NodeInfo();
  };
  auto stored = [](Store& store) {
    auto rec = store.GetNode("n1");
    EXPECT_TRUE(rec.ok() && rec->has_value());
    return rec.ok() && rec->has_value() ? (*rec)->node() : NodeInfo();
  };
  auto beat = [&](FleetService& fleet, double cpu) {
    hb.mutable_metrics()->set_cpu_usage_percent(cpu);
    ASSERT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                  fleet.SendHeartbeat(hb, done);
                }).ok());
  };

  run([&](FleetService& fleet, Store& store) {
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet.RegisterNode(reg, done);
                }).ok());
    beat(fleet, 10);
    IssueCommandRequest cordon;
    cordon.set_node_id("n1");
    cordon.set_command_type(NODE_COMMAND_TYPE_CORDON);
    ASSERT_TRUE(Await<IssueCommandResponse>([&](auto done) {
                  fleet.IssueCommand(cordon, Actor{"operator"}, done);
                }).ok());
    whole(stored(store), 10);  // the cordon's commit carried the metrics
    beat(fleet, 20);
    ASSERT_TRUE(fleet.FlushHeartbeats().ok());
    whole(stored(store), 20);
  });
  run([&](FleetService& fleet, Store& store) {
    whole(get(fleet), 20);
    EXPECT_EQ(get(fleet).status(), NODE_STATUS_CORDONED);
    // Registering again with half the GPUs and another hostname.
    reg.mutable_gpus()->DeleteSubrange(4, 4);
    reg.mutable_metadata()->set_hostname("host-1b");
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet.RegisterNode(reg, done);
                }).ok());
    whole(stored(store), 20);
  });
  run([&](FleetService& fleet, Store&) { whole(get(fleet), 20); });
  std::filesystem::remove_all(dir);
}

TEST_F(FleetTest, NodeSummariesCarryWhatThePoolManagerReads) {
  ASSERT_TRUE(Register("n1", 8, "train").ok());
  ASSERT_TRUE(Register("n0", 0).ok());
  auto beat = [&](std::vector<double> utils, bool metrics = true) {
    HeartbeatRequest r;
    r.set_node_id("n1");
    if (metrics) r.mutable_metrics()->set_cpu_usage_percent(3);
    for (double u : utils)
      r.mutable_metrics()->add_gpu_metrics()->set_utilization_percent(u);
    ASSERT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                  fleet_->SendHeartbeat(r, done);
                }).ok());
  };
  auto summary = [&](const std::string& id) {
    for (const NodeSummary& s : fleet_->ListNodeSummaries()) {
      if (s.node_id == id) return s;
    }
    ADD_FAILURE() << id << " not listed";
    return NodeSummary();
  };
  auto summaries = fleet_->ListNodeSummaries();
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].node_id, "n0");
  EXPECT_EQ(summaries[0].gpu_count, 0);
  EXPECT_EQ(summaries[0].pool, "");
  EXPECT_FALSE(summaries[0].gpu_utilization.has_value());

  beat({10, 20, 45});
  ASSERT_TRUE(Issue("n1", NODE_COMMAND_TYPE_CORDON, "maintenance").ok());
  const NodeInfo n1 = Node("n1");
  NodeSummary s = summary("n1");
  EXPECT_EQ(s.pool, "train");
  EXPECT_EQ(s.status, NODE_STATUS_CORDONED);
  EXPECT_EQ(s.status_reason, n1.status_reason());
  EXPECT_FALSE(s.status_reason.empty());
  EXPECT_EQ(s.registered_at, FromTimestamp(n1.registered_at()));
  EXPECT_EQ(s.gpu_count, 8);
  ASSERT_TRUE(s.gpu_utilization.has_value());
  EXPECT_DOUBLE_EQ(*s.gpu_utilization, 25);
  EXPECT_EQ(s.provider, "gcp");
  EXPECT_EQ(s.health_status, n1.health_status());

  beat({}, /*metrics=*/false);  // No metrics: the last ones stay.
  EXPECT_DOUBLE_EQ(summary("n1").gpu_utilization.value_or(-1), 25);
  clock_.Advance(absl::Seconds(2));  // flushed
  Restart();
  s = summary("n1");
  EXPECT_EQ(s.gpu_count, 8);
  EXPECT_EQ(s.status, NODE_STATUS_CORDONED);
  EXPECT_DOUBLE_EQ(s.gpu_utilization.value_or(-1), 25);
  beat({});  // Metrics without GPUs: no utilization.
  EXPECT_FALSE(summary("n1").gpu_utilization.has_value());
  ASSERT_TRUE(ReportXid("n1", 79).ok());
  EXPECT_EQ(summary("n1").health_status, HEALTH_STATUS_UNHEALTHY);
}

TEST_F(FleetTest, NodeSummariesListEveryNodeInIdOrder) {
  // More than one chunk of the copy (4,096 nodes).
  constexpr int kNodes = 9000;
  for (int i = 0; i < kNodes; ++i) {
    RegisterNodeRequest r;
    r.set_node_id("n" + std::to_string(i));
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet_->RegisterNode(r, done);
                }).ok());
  }
  auto summaries = fleet_->ListNodeSummaries();
  ASSERT_EQ(summaries.size(), static_cast<size_t>(kNodes));
  std::set<std::string> ids;
  for (size_t i = 0; i < summaries.size(); ++i) {
    ids.insert(summaries[i].node_id);
    if (i > 0) {
      EXPECT_LT(summaries[i - 1].node_id, summaries[i].node_id);
    }
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kNodes));
}

TEST_F(FleetTest, UnsettledInstancesAreThoseATickActsOn) {
  Upsert("i6", INSTANCE_STATE_RUNNING);
  Upsert("i5", INSTANCE_STATE_FAILED);  // its termination failed
  Upsert("i4", INSTANCE_STATE_FAILED, /*ended=*/true);
  Upsert("i3", INSTANCE_STATE_TERMINATED, /*ended=*/true);
  Upsert("i2", INSTANCE_STATE_PENDING_REGISTRATION);
  Upsert("i1", INSTANCE_STATE_PROVISIONING);
  std::vector<std::string> unsettled;
  for (const InstanceInfo& i : fleet_->ListUnsettledInstances())
    unsettled.push_back(i.instance_id());
  EXPECT_EQ(unsettled, (std::vector<std::string>{"i1", "i2", "i5"}));
  EXPECT_EQ(fleet_->ListInstanceIds(),
            (std::vector<std::string>{"i1", "i2", "i3", "i4", "i5", "i6"}));
}

}  // namespace
}  // namespace navarch
