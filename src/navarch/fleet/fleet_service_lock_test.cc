// FleetService promises that `done` (and every callback it hands work to:
// command streams, the commit observer) never runs with the fleet lock held,
// and that it never reads the store under it. Each mutating call is driven
// down its error paths and its success path here, and every callback checks
// the lock; a path that bypassed FleetService::Mutate would fail.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

// A memory store that notes reads made while the fleet lock is held.
// (Commit is submitted under the lock by design: batches reach the store in
// the order the index changed. Its completion is what `done` waits for.)
class LockCheckingStore : public Store {
 public:
  void Commit(WriteBatch batch,
              std::function<void(absl::Status)> done) override {
    inner_.Commit(std::move(batch), std::move(done));
  }
  absl::Status UpdateHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override {
    Check("UpdateHeartbeats");
    return inner_.UpdateHeartbeats(updates);
  }
  absl::StatusOr<StoreSnapshot> Load() override {
    Check("Load");
    return inner_.Load();
  }
  absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string& id) override {
    Check("GetNode");
    return inner_.GetNode(id);
  }
  absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string& id) override {
    Check("GetCommand");
    return inner_.GetCommand(id);
  }
  absl::StatusOr<EventPage> ListEvents(const EventQuery& q) override {
    Check("ListEvents");
    return inner_.ListEvents(q);
  }
  using Store::Prune;
  absl::StatusOr<int64_t> Prune(const PruneRequest& r) override {
    Check("Prune");
    return inner_.Prune(r);
  }
  absl::Status Ping() override { return inner_.Ping(); }
  void Close() override { inner_.Close(); }
  std::string Name() const override { return "lock-checking"; }

  FleetService* fleet = nullptr;
  std::vector<std::string> reads_under_lock;

 private:
  void Check(const std::string& what) {
    if (fleet != nullptr && fleet->LockHeldForTest())
      reads_under_lock.push_back(what);
  }
  MemoryStore inner_;
};

class FleetLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.max_open_commands_per_node = 2;
    options_.on_events_committed = [this](std::vector<Event>) {
      Note("on_events_committed");
    };
    fleet_ = std::make_unique<FleetService>(store_, clock_, evaluator_,
                                            NullLogger(), options_);
    store_.fleet = fleet_.get();
    ASSERT_TRUE(fleet_->Start().ok());
  }
  void TearDown() override {
    fleet_->Stop();
    EXPECT_EQ(under_lock_, std::vector<std::string>{});
    EXPECT_EQ(store_.reads_under_lock, std::vector<std::string>{});
  }

  // Records `what` if the fleet lock is held now.
  void Note(const std::string& what) {
    ++callbacks_;
    if (fleet_->LockHeldForTest()) under_lock_.push_back(what);
  }

  // A `done` that checks the lock and keeps the answer's code.
  template <typename T>
  Done<T> Check(const std::string& what, absl::StatusCode* code) {
    return [this, what, code](absl::StatusOr<T> r) {
      Note(what);
      *code = r.status().code();
    };
  }

  // Runs `call` with a checking `done`; returns the answer's code.
  template <typename T, typename Call>
  absl::StatusCode Run(const std::string& what, Call call) {
    absl::StatusCode code = absl::StatusCode::kUnknown;
    const int before = callbacks_;
    call(Check<T>(what, &code));
    EXPECT_GT(callbacks_, before) << what << ": done did not run";
    return code;
  }

  absl::StatusCode Register(const std::string& id) {
    RegisterNodeRequest r;
    r.set_node_id(id);
    return Run<RegisterNodeResponse>(
        "register " + id, [&](auto done) { fleet_->RegisterNode(r, done); });
  }
  absl::StatusCode Issue(const std::string& id, NodeCommandType type) {
    IssueCommandRequest r;
    r.set_node_id(id);
    r.set_command_type(type);
    return Run<IssueCommandResponse>("issue " + id, [&](auto done) {
      fleet_->IssueCommand(r, Actor{"operator"}, done);
    });
  }
  absl::StatusCode Terminate(const std::string& id) {
    return Run<NodeInfo>("terminate " + id, [&](auto done) {
      fleet_->MarkTerminated(id, "gone", Actor{"test"}, done);
    });
  }

  LockCheckingStore store_;
  FakeClock clock_;
  PolicyEvaluator evaluator_;
  FleetOptions options_;
  std::unique_ptr<FleetService> fleet_;
  std::vector<std::string> under_lock_;
  int callbacks_ = 0;
};

using Code = absl::StatusCode;

TEST_F(FleetLockTest, RegisterAndTerminate) {
  EXPECT_EQ(Register("n1"), Code::kOk);
  EXPECT_EQ(Register("n1"), Code::kOk);  // again
  EXPECT_EQ(Register(""), Code::kInvalidArgument);
  EXPECT_EQ(Terminate("ghost"), Code::kNotFound);
  EXPECT_EQ(Terminate("n1"), Code::kOk);
  EXPECT_EQ(Register("n1"), Code::kFailedPrecondition);
}

TEST_F(FleetLockTest, HeartbeatsAndReports) {
  ASSERT_EQ(Register("n1"), Code::kOk);
  ASSERT_EQ(Register("n2"), Code::kOk);
  ASSERT_EQ(Terminate("n2"), Code::kOk);
  auto beat = [&](const std::string& id) {
    HeartbeatRequest r;
    r.set_node_id(id);
    return Run<HeartbeatResponse>(
        "beat " + id, [&](auto done) { fleet_->SendHeartbeat(r, done); });
  };
  EXPECT_EQ(beat("n1"), Code::kOk);
  EXPECT_EQ(beat("ghost"), Code::kNotFound);
  EXPECT_EQ(beat("n2"), Code::kFailedPrecondition);
  auto report = [&](const std::string& id, HealthStatus check) {
    ReportHealthRequest r;
    r.set_node_id(id);
    auto* res = r.add_results();
    res->set_check_name("nvml");
    res->set_status(check);
    return Run<ReportHealthResponse>(
        "report " + id, [&](auto done) { fleet_->ReportHealth(r, done); });
  };
  EXPECT_EQ(report("n1", HEALTH_STATUS_HEALTHY), Code::kOk);    // a write
  EXPECT_EQ(report("n1", HEALTH_STATUS_HEALTHY), Code::kOk);    // routine
  EXPECT_EQ(report("n1", HEALTH_STATUS_UNHEALTHY), Code::kOk);  // a change
  EXPECT_EQ(report("ghost", HEALTH_STATUS_HEALTHY), Code::kNotFound);
  EXPECT_EQ(report("n2", HEALTH_STATUS_HEALTHY), Code::kFailedPrecondition);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 1);  // n1, through the observer
  EXPECT_TRUE(fleet_->FlushHeartbeats().ok());
}

TEST_F(FleetLockTest, CommandsPollsAndAcks) {
  ASSERT_EQ(Register("n1"), Code::kOk);
  ASSERT_EQ(Register("n2"), Code::kOk);
  EXPECT_EQ(Issue("ghost", NODE_COMMAND_TYPE_CORDON), Code::kNotFound);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC), Code::kOk);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_CORDON), Code::kOk);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_DRAIN), Code::kResourceExhausted);
  ASSERT_EQ(Terminate("n2"), Code::kOk);
  EXPECT_EQ(Issue("n2", NODE_COMMAND_TYPE_CORDON), Code::kFailedPrecondition);
  EXPECT_EQ(Issue("n2", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC),
            Code::kFailedPrecondition);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_UNKNOWN), Code::kInvalidArgument);

  std::vector<std::string> ids;
  auto poll = [&](const std::string& id) {
    GetNodeCommandsRequest r;
    r.set_node_id(id);
    absl::StatusCode code = Code::kUnknown;
    fleet_->GetNodeCommands(r, [&](absl::StatusOr<GetNodeCommandsResponse> p) {
      Note("poll " + id);
      code = p.status().code();
      if (p.ok())
        for (const auto& c : p->commands()) ids.push_back(c.command_id());
    });
    return code;
  };
  EXPECT_EQ(poll("n1"), Code::kOk);
  EXPECT_EQ(poll("ghost"), Code::kOk);  // unknown: empty
  EXPECT_EQ(poll(""), Code::kInvalidArgument);
  ASSERT_EQ(ids.size(), 2u);

  auto ack = [&](const std::string& node, const std::string& command) {
    AckCommandRequest r;
    r.set_node_id(node);
    r.set_command_id(command);
    r.set_outcome(COMMAND_OUTCOME_SUCCEEDED);
    return Run<AckCommandResponse>(
        "ack " + command, [&](auto done) { fleet_->AckCommand(r, done); });
  };
  EXPECT_EQ(ack("n1", ids[0]), Code::kOk);
  EXPECT_EQ(ack("n1", ids[0]), Code::kOk);  // repeated: read from the store
  EXPECT_EQ(ack("n1", "no-such-command"), Code::kNotFound);  // the store too
  EXPECT_EQ(ack("ghost", ids[1]), Code::kNotFound);
  EXPECT_EQ(ack("n1", ""), Code::kInvalidArgument);
}

TEST_F(FleetLockTest, StreamsInstancesAndEvents) {
  ASSERT_EQ(Register("n1"), Code::kOk);
  ASSERT_EQ(Issue("n1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC), Code::kOk);
  auto watch = [&](const std::string& id) {
    return fleet_->Watch(
        id, [this, id](const NodeCommand&) { Note("deliver " + id); },
        [this, id] { Note("closed " + id); });
  };
  const int before = callbacks_;
  ASSERT_TRUE(watch("n1").ok());  // the backlog
  ASSERT_TRUE(watch("n1").ok());  // replaces the first: closed, backlog
  EXPECT_EQ(callbacks_ - before, 3);
  EXPECT_EQ(watch("ghost").status().code(), Code::kNotFound);
  EXPECT_EQ(Issue("n1", NODE_COMMAND_TYPE_CORDON), Code::kOk);  // delivered
  EXPECT_EQ(Terminate("n1"), Code::kOk);  // closes the stream
  EXPECT_EQ(watch("n1").status().code(), Code::kFailedPrecondition);

  InstanceInfo i;
  EXPECT_EQ(Run<InstanceInfo>("upsert ''",
                              [&](auto done) {
                                fleet_->UpsertInstance(i, Actor{"pool"}, done);
                              }),
            Code::kInvalidArgument);
  i.set_instance_id("i1");
  i.set_state(INSTANCE_STATE_PROVISIONING);
  EXPECT_EQ(Run<InstanceInfo>("upsert i1",
                              [&](auto done) {
                                fleet_->UpsertInstance(i, Actor{"pool"}, done);
                              }),
            Code::kOk);
  auto record = [&](const std::string& kind) {
    return Run<Event>("record " + kind, [&](auto done) {
      fleet_->RecordEvent(kind, "", "p", Actor{"pool"}, "m", {}, done);
    });
  };
  EXPECT_EQ(record(""), Code::kInvalidArgument);
  EXPECT_EQ(record("pool.scaled"), Code::kOk);
  EXPECT_TRUE(fleet_->ListEvents({}).ok());
  EXPECT_TRUE(fleet_->PruneHistory(PruneRequest{}).ok());
}

// The evaluator runs under the fleet lock (it is part of the change): there
// the check must say "held", or the tests above could not fail.
class LockProbingEvaluator : public HealthEvaluator {
 public:
  HealthEvaluation Evaluate(const NodeInfo& node,
                            const ReportHealthRequest& report) const override {
    held = fleet->LockHeldForTest();
    return inner.Evaluate(node, report);
  }
  std::string Name() const override { return "probe"; }
  FleetService* fleet = nullptr;
  mutable bool held = false;
  PolicyEvaluator inner;
};

TEST(FleetLockCheckTest, TheCheckSeesTheLockHeld) {
  MemoryStore store;
  FakeClock clock;
  LockProbingEvaluator evaluator;
  FleetService fleet(store, clock, evaluator, NullLogger(), FleetOptions{});
  evaluator.fleet = &fleet;
  ASSERT_TRUE(fleet.Start().ok());
  EXPECT_FALSE(fleet.LockHeldForTest());
  RegisterNodeRequest reg;
  reg.set_node_id("n1");
  ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                fleet.RegisterNode(reg, done);
              }).ok());
  ReportHealthRequest report;
  report.set_node_id("n1");
  ASSERT_TRUE(Await<ReportHealthResponse>([&](auto done) {
                fleet.ReportHealth(report, done);
              }).ok());
  EXPECT_TRUE(evaluator.held);
  fleet.Stop();
}

}  // namespace
}  // namespace navarch
