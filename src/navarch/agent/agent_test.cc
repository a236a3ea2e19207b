// The whole agent on a fake clock: fake GPUs, a fake control plane, inline
// executors and a kernel log that is a plain file. Time only moves when a test
// advances it, so intervals of minutes take no time at all.
#include "navarch/agent/agent.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/testing/fake_control_plane.h"
#include "navarch/agent/testing/fake_process_runner.h"
#include "navarch/api/names.h"

namespace navarch::agent {
namespace {

using testing::FakeControlPlane;
using testing::FakeProcessRunner;

std::string Metric(const HealthEvent& e, const std::string& key) {
  auto it = e.metrics().find(key);
  return it == e.metrics().end() ? "<none>" : it->second;
}

// A copy: reports() returns a temporary.
std::optional<HealthCheckResult> FindCheck(const ReportHealthRequest& r,
                                           const std::string& name) {
  for (const auto& c : r.results()) {
    if (c.check_name() == name) return c;
  }
  return std::nullopt;
}

NodeCommand Command(const std::string& id, NodeCommandType type,
                    std::map<std::string, std::string> params = {}) {
  NodeCommand c;
  c.set_command_id(id);
  c.set_type(type);
  for (auto& [k, v] : params) (*c.mutable_parameters())[k] = v;
  return c;
}

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() : gpus_({.gpu_count = 8}) {
    dir_ =
        (std::filesystem::temp_directory_path() /
         absl::StrCat(
             "agent-test-", getpid(), "-",
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    std::filesystem::create_directories(dir_);
    kmsg_ = dir_ + "/kmsg";
    std::ofstream(kmsg_) << "6,1,100,-;Linux version 6.1.0\n";
    std::ofstream(dir_ + "/stat") << "cpu  100 0 100 700 100 0 0 0 0 0\n";
    std::ofstream(dir_ + "/meminfo")
        << "MemTotal: 1000 kB\nMemAvailable: 400 kB\n";
  }
  ~AgentTest() override {
    agent_.reset();
    std::filesystem::remove_all(dir_);
  }

  AgentOptions Options() {
    AgentOptions o;
    o.identity.set_node_id("node-1");
    o.identity.set_provider("fake");
    o.identity.set_instance_type("h100-8x");
    (*o.identity.mutable_metadata()->mutable_labels())["pool"] = "training";
    o.kmsg_path = kmsg_;
    o.proc_stat = dir_ + "/stat";
    o.proc_meminfo = dir_ + "/meminfo";
    o.seed = 42;
    o.on_terminate = [this] { ++terminations_; };
    return o;
  }

  void Start(AgentOptions options) {
    agent_ = std::make_unique<Agent>(
        std::move(options), clock_, cp_, gpus_, runner_, NullLogger(),
        AgentExecutors{&control_, &gpu_, &commands_, &xid_});
    agent_->Start();
    clock_.Advance(absl::ZeroDuration());
  }
  void Start() { Start(Options()); }

  void Advance(absl::Duration d) { clock_.Advance(d); }

  void AppendKmsg(const std::string& line) {
    std::ofstream(kmsg_, std::ios::app) << line << "\n";
  }

  std::string dir_, kmsg_;
  FakeClock clock_;
  FakeControlPlane cp_;
  FakeGpuBackend gpus_;
  FakeProcessRunner runner_;
  InlineExecutor control_, gpu_, commands_, xid_;
  int terminations_ = 0;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, RegistersWithItsGpusThenHeartbeatsAndReports) {
  cp_.SetIntervals(5, 20);
  Start();
  ASSERT_EQ(cp_.registrations(), 1);
  RegisterNodeRequest reg = cp_.register_requests()[0];
  EXPECT_EQ(reg.node_id(), "node-1");
  EXPECT_EQ(reg.provider(), "fake");
  EXPECT_EQ(reg.metadata().labels().at("pool"), "training");
  ASSERT_EQ(reg.gpus_size(), 8);
  EXPECT_EQ(reg.gpus(0).name(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(reg.gpus(0).uuid(), gpus_.Device(0)->uuid);
  EXPECT_EQ(reg.gpus(0).pci_bus_id(), "00000000:18:00.0");
  EXPECT_EQ(reg.gpus(7).index(), 7);
  EXPECT_EQ(reg.gpus(7).memory_total(), 81559LL * 1024 * 1024);
  EXPECT_EQ(reg.gpus(7).driver_version(), "580.159.04");
  EXPECT_EQ(reg.gpus(7).cuda_version(), "13.0");

  // At once: a heartbeat and a health report, not one interval later.
  ASSERT_EQ(cp_.heartbeats().size(), 1u);
  HeartbeatRequest hb = cp_.heartbeats()[0];
  EXPECT_EQ(hb.metrics().gpu_metrics_size(), 8);
  EXPECT_DOUBLE_EQ(hb.metrics().memory_usage_percent(), 60);
  EXPECT_GT(hb.metrics().gpu_metrics(2).temperature(), 20);
  ASSERT_EQ(cp_.reports().size(), 1u);
  ReportHealthRequest report = cp_.reports()[0];
  for (const char* check : {"boot", "gpu", "health_events"}) {
    std::optional<HealthCheckResult> c = FindCheck(report, check);
    ASSERT_TRUE(c.has_value()) << check;
    EXPECT_EQ(c->status(), HEALTH_STATUS_HEALTHY)
        << check << ": " << c->message();
  }
  EXPECT_EQ(FindCheck(report, "boot")->message(),
            "8 GPUs detected and accessible at start");
  EXPECT_EQ(FindCheck(report, "health_events")->message(),
            "no health events detected");

  // The intervals the server gave.
  std::ofstream(dir_ + "/stat") << "cpu  200 0 200 800 200 0 0 0 0 0\n";
  Advance(absl::Seconds(5));
  ASSERT_EQ(cp_.heartbeats().size(), 2u);
  EXPECT_DOUBLE_EQ(cp_.heartbeats()[1].metrics().cpu_usage_percent(), 50);
  Advance(absl::Seconds(15));
  EXPECT_EQ(cp_.heartbeats().size(), 5u);
  EXPECT_EQ(cp_.reports().size(), 2u);
  EXPECT_EQ(agent_->stats().heartbeat_interval, absl::Seconds(5));
  EXPECT_EQ(agent_->stats().health_interval, absl::Seconds(20));
  EXPECT_EQ(cp_.open_streams(), 1);
}

TEST_F(AgentTest, RegistrationIsRetriedWithGrowingJitteredBackoff) {
  cp_.SetDown(true);
  Start();
  std::vector<absl::Time> attempts;
  int calls = cp_.calls();
  attempts.push_back(clock_.Now());
  for (int i = 0; i < 600 && attempts.size() < 7; ++i) {
    Advance(absl::Milliseconds(100));
    if (cp_.calls() > calls) {
      calls = cp_.calls();
      attempts.push_back(clock_.Now());
    }
  }
  ASSERT_EQ(attempts.size(), 7u);
  // 1s, 2s, 4s, 8s, 16s (+-20%), then capped at 30s.
  for (size_t i = 1; i < attempts.size(); ++i) {
    double gap = absl::ToDoubleSeconds(attempts[i] - attempts[i - 1]);
    double base = std::min(30.0, static_cast<double>(1 << (i - 1)));
    EXPECT_GE(gap, base * 0.8 - 0.1) << i;
    EXPECT_LE(gap, std::min(30.0, base * 1.2) + 0.1) << i;
  }
  EXPECT_EQ(cp_.registrations(), 0);
  EXPECT_FALSE(agent_->stats().registered);
  cp_.SetDown(false);
  Advance(absl::Seconds(31));
  EXPECT_EQ(cp_.registrations(), 1);
  EXPECT_TRUE(agent_->stats().registered);
  EXPECT_EQ(agent_->stats().register_failures, 7);
}

TEST_F(AgentTest, NewEventsAreReportedAtOnce) {
  Start();
  size_t reports = cp_.reports().size();
  gpus_.AddEccErrors(4, 0, 1);
  Advance(absl::Seconds(
      10));  // the next GPU poll, far before the 60 s health interval
  ASSERT_EQ(cp_.reports().size(), reports + 1);
  auto events = cp_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event_type(), HEALTH_EVENT_TYPE_ECC_DBE);
  EXPECT_EQ(events[0].gpu_index(), 4);
  EXPECT_EQ(FindCheck(cp_.reports().back(), "health_events")->message(),
            "collected 1 health event(s) for policy evaluation");

  // The kernel log is polled every 250 ms.
  AppendKmsg(
      "3,2,5000000,-;NVRM: Xid (PCI:0000:9a:00): 79, pid=4242, name=python3, "
      "GPU has fallen off "
      "the bus.");
  Advance(absl::Milliseconds(250));
  events = cp_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].event_type(), HEALTH_EVENT_TYPE_XID);
  EXPECT_EQ(events[1].gpu_index(),
            4);  // bus 0x9a is the fifth GPU of an HGX board
  EXPECT_EQ(events[1].gpu_uuid(), gpus_.Device(4)->uuid);
  EXPECT_EQ(Metric(events[1], "xid_code"), "79");
  EXPECT_EQ(Metric(events[1], "pid"), "4242");
  EXPECT_EQ(Metric(events[1], "process_name"), "python3");
  EXPECT_EQ(Metric(events[1], "kernel_time"), "5.000000");
  EXPECT_EQ(Metric(events[1], "source"), "kmsg");
}

TEST_F(AgentTest, XidsFromTheCurrentBootAreReportedAtStart) {
  AppendKmsg("4,2,300,-;NVRM: Xid (PCI:0000:18:00): 48, pid=1, name=x, DBE");
  Start();
  auto events = cp_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Metric(events[0], "xid_code"), "48");
  EXPECT_EQ(events[0].gpu_index(), 0);
}

TEST_F(AgentTest, AnXidSeenByNvmlAndTheKernelLogIsReportedOnce) {
  Start();
  gpus_.InjectXid(3, 79);
  AppendKmsg(
      "3,2,5000000,-;NVRM: Xid (PCI:0000:5d:00): 79, pid=1, name=x, GPU has "
      "fallen off");
  Advance(absl::Seconds(10));
  auto events = cp_.events();
  int xids = 0;
  for (const auto& e : events)
    xids += e.event_type() == HEALTH_EVENT_TYPE_XID ? 1 : 0;
  EXPECT_EQ(xids, 1);
  EXPECT_EQ(agent_->stats().duplicate_xids, 1u);
}

TEST_F(AgentTest, EventsRaisedWhileDisconnectedArriveInOrderAfterwards) {
  AgentOptions o = Options();
  o.config.event_queue_size = 4;
  Start(o);
  cp_.SetDown(true);
  for (int i = 0; i < 6; ++i) {
    HealthEvent e;
    e.set_event_type(HEALTH_EVENT_TYPE_POWER);
    e.set_gpu_index(-1);
    e.set_message(absl::StrCat("event ", i));
    agent_->RaiseEvent(e);
    Advance(absl::Seconds(1));
  }
  EXPECT_FALSE(agent_->stats().connected);
  EXPECT_EQ(agent_->stats().events_queued, 4u);
  EXPECT_EQ(agent_->stats().events_dropped, 2u);
  EXPECT_TRUE(cp_.events().empty());
  Advance(absl::Minutes(2));  // a control plane that stays down
  cp_.SetDown(false);
  // A probe finds it within the capped backoff (15 s + jitter).
  Advance(absl::Seconds(19));
  EXPECT_TRUE(agent_->stats().connected);
  auto events = cp_.events();
  ASSERT_EQ(events.size(), 4u);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(events[i].message(), absl::StrCat("event ", i));
  std::optional<HealthCheckResult> h =
      FindCheck(cp_.reports().back(), "health_events");
  EXPECT_NE(h->message().find("2 event(s) dropped"), std::string::npos)
      << h->message();
  EXPECT_EQ(h->details().at("dropped_events"), "2");
  // The command stream is back too.
  Advance(absl::Seconds(16));
  EXPECT_EQ(cp_.open_streams(), 1);
}

TEST_F(AgentTest, AControlPlaneThatLostTheNodeGetsItBack) {
  Start();
  cp_.ForgetNodes();
  Advance(absl::Seconds(30));  // the next heartbeat: NOT_FOUND
  ASSERT_EQ(cp_.registrations(), 2);
  EXPECT_EQ(cp_.register_requests()[1].gpus_size(), 8);
  EXPECT_TRUE(agent_->stats().registered);
  size_t heartbeats = cp_.heartbeats().size();
  Advance(absl::Seconds(30));
  EXPECT_EQ(cp_.heartbeats().size(), heartbeats + 1);  // one chain, not two
}

TEST_F(AgentTest, CommandsArriveOnTheStreamRunHooksAndAreAcknowledged) {
  AgentOptions o = Options();
  o.config.hooks.cordon = "scheduler-cordon";
  runner_.SetResult("scheduler-cordon", {0, false, "node cordoned\n"});
  Start(o);
  cp_.Issue(Command("c1", NODE_COMMAND_TYPE_CORDON));
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_EQ(runner_.calls()[0].env.at("NAVARCH_COMMAND_ID"), "c1");
  ASSERT_EQ(cp_.acks().size(), 1u);
  EXPECT_EQ(cp_.acks()[0].command_id(), "c1");
  EXPECT_EQ(cp_.acks()[0].outcome(), COMMAND_OUTCOME_SUCCEEDED);
  EXPECT_EQ(cp_.acks()[0].message(), "cordon hook succeeded: node cordoned");
  // The stream may deliver a command again (after a reconnection); it runs
  // once.
  cp_.Issue(Command("c1", NODE_COMMAND_TYPE_CORDON));
  EXPECT_EQ(runner_.calls().size(), 1u);
  // A dropped stream is reopened after a backoff.
  cp_.EndStreams(absl::UnavailableError("connection reset"));
  EXPECT_EQ(cp_.open_streams(), 0);
  Advance(absl::Seconds(1));
  EXPECT_EQ(cp_.open_streams(), 1);
  EXPECT_EQ(cp_.streams_opened(), 2);
}

TEST_F(AgentTest, UpstreamControlPlaneIsPolledAndNotAcknowledged) {
  cp_.SetUpstream(true);
  Start();
  EXPECT_TRUE(agent_->stats().polling_commands);
  EXPECT_EQ(cp_.streams_opened(), 0);
  EXPECT_EQ(cp_.polls(), 1);
  cp_.Issue(Command("c1", NODE_COMMAND_TYPE_DRAIN));
  EXPECT_EQ(agent_->stats().commands_executed, 0u);
  Advance(absl::Seconds(10));
  EXPECT_EQ(cp_.polls(), 2);
  EXPECT_EQ(agent_->stats().commands_executed, 1u);
  EXPECT_TRUE(cp_.acks().empty());
}

TEST_F(AgentTest, StreamUnimplementedFallsBackToPolling) {
  cp_.SetStreamUnimplemented(true);
  Start();
  EXPECT_TRUE(agent_->stats().polling_commands);
  cp_.Issue(Command("c1", NODE_COMMAND_TYPE_UNCORDON));
  Advance(absl::Seconds(10));
  ASSERT_EQ(cp_.acks().size(), 1u);  // acks still supported
  EXPECT_EQ(cp_.acks()[0].outcome(), COMMAND_OUTCOME_SUCCEEDED);
}

TEST_F(AgentTest, DiagnosticVerdictIsReportedAsACheckOnce) {
  Start();
  gpus_.SetPcieLink(2, 5, 4);
  cp_.Issue(Command("d1", NODE_COMMAND_TYPE_RUN_DIAGNOSTIC));
  std::optional<HealthCheckResult> diag =
      FindCheck(cp_.reports().back(), "diagnostic");
  ASSERT_TRUE(diag.has_value());
  EXPECT_EQ(diag->status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(diag->message(), "NVML sweep failed: GPU 2: PCIe link x4 of x16");
  EXPECT_EQ(diag->details().at("command_id"), "d1");
  ASSERT_EQ(cp_.acks().size(), 1u);
  EXPECT_EQ(cp_.acks()[0].outcome(), COMMAND_OUTCOME_FAILED);
  Advance(absl::Seconds(60));
  EXPECT_FALSE(FindCheck(cp_.reports().back(), "diagnostic").has_value());
}

TEST_F(AgentTest, TerminateAcknowledgesThenRunsTheShutdownCommandThenStops) {
  AgentOptions o = Options();
  o.config.shutdown_command = "systemctl poweroff";
  Start(o);
  size_t acks_at_shutdown = 99;
  runner_.SetObserver([&](const FakeProcessRunner::Call& c) {
    if (c.command == "systemctl poweroff") acks_at_shutdown = cp_.acks().size();
  });
  cp_.Issue(Command("t1", NODE_COMMAND_TYPE_TERMINATE, {{"force", "true"}}));
  EXPECT_EQ(acks_at_shutdown, 1u);
  EXPECT_EQ(terminations_, 1);
  ASSERT_EQ(cp_.acks().size(), 1u);
  EXPECT_EQ(cp_.acks()[0].outcome(), COMMAND_OUTCOME_SUCCEEDED);
  // Further commands are not taken.
  cp_.Issue(Command("c2", NODE_COMMAND_TYPE_CORDON));
  EXPECT_EQ(cp_.acks().size(), 1u);
}

TEST_F(AgentTest, GpuFaultsReachTheControlPlane) {
  Start();
  gpus_.LoseGpu(6);
  gpus_.SetTemperature(1, 93);
  Advance(absl::Seconds(10));
  auto events = cp_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_type(), HEALTH_EVENT_TYPE_THERMAL);
  EXPECT_EQ(Metric(events[0], "temperature"), "93");
  EXPECT_EQ(events[1].event_type(), HEALTH_EVENT_TYPE_XID);
  EXPECT_EQ(Metric(events[1], "xid_code"), "79");
  EXPECT_EQ(events[1].gpu_index(), 6);
  std::optional<HealthCheckResult> gpu = FindCheck(cp_.reports().back(), "gpu");
  EXPECT_EQ(gpu->status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(cp_.heartbeats().back().metrics().gpu_metrics_size(), 8);
  Advance(absl::Seconds(20));
  EXPECT_EQ(cp_.heartbeats().back().metrics().gpu_metrics_size(), 7);
}

TEST_F(AgentTest, NvmlFailureFailsTheGpuCheck) {
  Start();
  gpus_.SetNvmlFailure(true);
  Advance(absl::Seconds(60));
  std::optional<HealthCheckResult> gpu = FindCheck(cp_.reports().back(), "gpu");
  EXPECT_EQ(gpu->status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_NE(gpu->message().find("does not answer"), std::string::npos);
}

TEST_F(AgentTest, RejectedEventsAreDroppedNotRetriedForever) {
  Start();
  cp_.FailReports(
      absl::InvalidArgumentError("event message is not valid UTF-8"), 1);
  HealthEvent e;
  e.set_event_type(HEALTH_EVENT_TYPE_POWER);
  agent_->RaiseEvent(e);
  EXPECT_EQ(agent_->stats().events_queued, 0u);
  EXPECT_TRUE(agent_->stats().connected);
}

TEST_F(AgentTest, GpusThatFailAtStartAreReportedAndRegisteredOnceFound) {
  gpus_.SetInitFailure(
      absl::FailedPreconditionError("NVIDIA driver not loaded"));
  Start();
  ASSERT_EQ(cp_.registrations(), 1);
  EXPECT_EQ(cp_.register_requests()[0].gpus_size(), 0);
  std::optional<HealthCheckResult> boot =
      FindCheck(cp_.reports().back(), "boot");
  EXPECT_EQ(boot->status(), HEALTH_STATUS_UNHEALTHY);
  gpus_.SetInitFailure(absl::OkStatus());
  Advance(absl::Seconds(10));
  ASSERT_EQ(cp_.registrations(), 2);
  EXPECT_EQ(cp_.register_requests()[1].gpus_size(), 8);
}

TEST_F(AgentTest, StopLeavesNothingBehind) {
  Start();
  EXPECT_GT(clock_.PendingTimers(), 0u);
  agent_->Stop();
  EXPECT_EQ(clock_.PendingTimers(), 0u);
  EXPECT_EQ(cp_.open_streams(), 0);
  int calls = cp_.calls();
  Advance(absl::Minutes(5));
  EXPECT_EQ(cp_.calls(), calls);
  agent_->Stop();  // idempotent
}

// The real threads instead of inline executors: the same agent, concurrently.
TEST(AgentThreadsTest, RunsOnItsOwnThreads) {
  RealClock clock;
  FakeControlPlane cp;
  FakeGpuBackend gpus({.gpu_count = 2});
  FakeProcessRunner runner;
  AgentOptions o;
  o.identity.set_node_id("threaded");
  o.kmsg_path = "";
  o.xid_thread = true;
  absl::Notification terminated;
  o.on_terminate = [&] { terminated.Notify(); };
  Agent agent(o, clock, cp, gpus, runner, NullLogger());
  agent.Start();
  gpus.InjectXid(1, 31);
  cp.Issue(Command("t", NODE_COMMAND_TYPE_TERMINATE));
  ASSERT_TRUE(terminated.WaitForNotificationWithTimeout(absl::Seconds(10)));
  agent.Stop();
  EXPECT_EQ(cp.registrations(), 1);
  EXPECT_EQ(cp.acks().size(), 1u);
}

}  // namespace
}  // namespace navarch::agent
