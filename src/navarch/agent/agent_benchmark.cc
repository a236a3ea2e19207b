// What the agent costs per unit of work, with 8 fake GPUs. At default
// intervals a minute of agent life is 2 heartbeats, 1 health report, 6 GPU
// polls and 240 kernel-log polls; BM_AgentMinute runs exactly that on a fake
// clock (requests are serialised as gRPC would, then dropped), so
//   CPU % of one core = time per iteration / 60 s * 100.
// The real process adds gRPC's own work and thread wake-ups; docs/agent.md
// describes measuring it with /proc/<pid>/stat.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "navarch/agent/agent.h"
#include "navarch/agent/events/kmsg.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/monitor.h"
#include "navarch/agent/testing/fake_process_runner.h"

namespace navarch::agent {
namespace {

// Answers like a real control plane (with the default intervals) and only
// pays for serialising each request, as a gRPC client would.
class NullControlPlane final : public ControlPlaneClient {
 public:
  absl::StatusOr<RegisterNodeResponse> RegisterNode(
      const RegisterNodeRequest& req) override {
    Serialize(req);
    RegisterNodeResponse r;
    r.set_success(true);
    r.mutable_config()->set_heartbeat_interval_seconds(30);
    r.mutable_config()->set_health_check_interval_seconds(60);
    r.mutable_config()->set_commands_ack_supported(true);
    return r;
  }
  absl::StatusOr<HeartbeatResponse> SendHeartbeat(
      const HeartbeatRequest& req) override {
    Serialize(req);
    return HeartbeatResponse();
  }
  absl::StatusOr<ReportHealthResponse> ReportHealth(
      const ReportHealthRequest& req) override {
    Serialize(req);
    return ReportHealthResponse();
  }
  absl::StatusOr<GetNodeCommandsResponse> GetNodeCommands(
      const GetNodeCommandsRequest& req) override {
    Serialize(req);
    return GetNodeCommandsResponse();
  }
  absl::StatusOr<AckCommandResponse> AckCommand(
      const AckCommandRequest& req) override {
    Serialize(req);
    return AckCommandResponse();
  }
  std::unique_ptr<CommandStream> WatchCommands(
      const WatchCommandsRequest&, std::function<void(const NodeCommand&)>,
      std::function<void(absl::Status)>) override {
    return std::make_unique<CommandStream>();
  }

  size_t bytes = 0;

 private:
  void Serialize(const google::protobuf::Message& m) {
    bytes += m.SerializeAsString().size();
  }
};

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          absl::StrCat(name, "-", getpid()))
      .string();
}

// One minute of agent life at default intervals.
void BM_AgentMinute(benchmark::State& state) {
  std::string kmsg = TempPath("bench-kmsg");
  std::ofstream(kmsg) << "6,1,1,-;Linux version 6.1.0\n";
  FakeClock clock;
  NullControlPlane cp;
  FakeGpuBackend gpus({.gpu_count = 8});
  testing::FakeProcessRunner runner;
  InlineExecutor control, gpu, commands, xid;
  AgentOptions o;
  o.identity.set_node_id("bench");
  o.kmsg_path = kmsg;
  Agent agent(o, clock, cp, gpus, runner, NullLogger(),
              {&control, &gpu, &commands, &xid});
  agent.Start();
  clock.Advance(absl::ZeroDuration());
  for (auto _ : state) clock.Advance(absl::Minutes(1));
  AgentStats s = agent.stats();
  state.counters["heartbeats_per_min"] =
      static_cast<double>(s.heartbeats_sent) /
      static_cast<double>(state.iterations() + 1);
  state.counters["bytes_per_min"] = static_cast<double>(cp.bytes) /
                                    static_cast<double>(state.iterations() + 1);
  agent.Stop();
  std::filesystem::remove(kmsg);
}
BENCHMARK(BM_AgentMinute)->Unit(benchmark::kMicrosecond);

void BM_GpuPoll8(benchmark::State& state) {
  FakeClock clock;
  FakeGpuBackend gpus({.gpu_count = 8});
  GpuMonitor monitor(gpus, clock);
  (void)monitor.Start();
  for (auto _ : state) benchmark::DoNotOptimize(monitor.Poll());
}
BENCHMARK(BM_GpuPoll8)->Unit(benchmark::kMicrosecond);

void BM_KmsgIdlePoll(benchmark::State& state) {
  std::string kmsg = TempPath("bench-kmsg-idle");
  std::ofstream(kmsg) << "6,1,1,-;Linux version 6.1.0\n";
  FakeClock clock;
  KmsgOptions o;
  o.path = kmsg;
  KmsgFollower f(o, clock, [](const KmsgRecord&) {});
  (void)f.Start();
  f.PollOnce();
  for (auto _ : state) f.PollOnce();
  f.Stop();
  std::filesystem::remove(kmsg);
}
BENCHMARK(BM_KmsgIdlePoll)->Unit(benchmark::kMicrosecond);

void BM_ParseXidRecord(benchmark::State& state) {
  const std::string record =
      "3,2,5000000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=4242, name=python3, "
      "GPU has fallen "
      "off the bus.";
  for (auto _ : state) {
    KmsgRecord r = ParseKmsgRecord(record);
    benchmark::DoNotOptimize(ParseXidLine(r.message));
  }
}
BENCHMARK(BM_ParseXidRecord);

}  // namespace
}  // namespace navarch::agent

BENCHMARK_MAIN();
