// The node agent as operators run it, against the real control plane:
// build/bin/node-agent --gpu-backend fake --fake-gpus 8 --kmsg FILE, and
// build/bin/control-plane on a fixed port with its SQLite data dir.
// Registration, heartbeats, an XID from the kernel log reaching the control
// plane within a second, and the agent finding a SIGKILLed and restarted
// control plane by itself.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "testing/process.h"

namespace navarch {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::Process;
using testing::TempDir;

constexpr char kNode[] = "e2e-gpu-node";

// A port free right now: bind to port 0, read it, close. The control plane
// must come back on the same port after a restart, so it cannot pick its own.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class NodeAgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    address_ = "127.0.0.1:" + std::to_string(port_);
    config_ = dir_.path() + "/navarch.yaml";
    // Short agent intervals so the test sees heartbeats and reports quickly.
    testing::WriteFile(config_, "server:\n  address: \"" + address_ + "\"\n" +
                                    "  http_address: \"127.0.0.1:0\"\n" +
                                    "  data_dir: " + dir_.path() + "/data\n" +
                                    "  heartbeat_interval: 1s\n" +
                                    "  health_check_interval: 2s\n");
    kmsg_ = dir_.path() + "/kmsg";
    testing::WriteFile(kmsg_, "6,1,1000,-;Linux version 6.1.0-navarch-e2e\n");
    stub_ = ControlPlaneService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  void StartControlPlane() {
    std::string ready = dir_.path() + "/ready.json";
    std::remove(ready.c_str());
    cp_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config_, "--ready-file", ready},
        dir_.path() + "/cp.log");
    std::string content =
        testing::WaitForFile(ready, *cp_, std::chrono::seconds(30));
    ASSERT_FALSE(content.empty()) << testing::ReadFile(dir_.path() + "/cp.log");
    ASSERT_EQ(testing::JsonString(content, "grpc_address"), address_);
  }

  void StartAgent() {
    agent_ = std::make_unique<Process>(
        testing::BinDir() + "/node-agent",
        std::vector<std::string>{"--server", "http://" + address_, "--node-id",
                                 kNode, "--provider", "fake", "--pool", "e2e",
                                 "--gpu-backend", "fake", "--fake-gpus", "8",
                                 "--kmsg", kmsg_, "--log-format", "text"},
        AgentLog());
  }

  std::string AgentLog() { return dir_.path() + "/agent.log"; }

  // Polls GetNode until `pred` holds; returns the last answer.
  template <typename Pred>
  bool WaitForNode(Pred pred, milliseconds timeout, NodeInfo* out = nullptr,
                   milliseconds every = milliseconds(50)) {
    auto deadline = steady_clock::now() + timeout;
    while (steady_clock::now() < deadline) {
      GetNodeRequest req;
      req.set_node_id(kNode);
      GetNodeResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
      if (stub_->GetNode(&ctx, req, &resp).ok() && pred(resp.node())) {
        if (out != nullptr) *out = resp.node();
        return true;
      }
      std::this_thread::sleep_for(every);
    }
    return false;
  }

  std::vector<Event> Events() {
    ListEventsRequest req;
    req.set_node_id(kNode);
    req.set_page_size(1000);
    ListEventsResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    stub_->ListEvents(&ctx, req, &resp);
    return {resp.events().begin(), resp.events().end()};
  }

  std::string Logs() {
    return "--- agent log ---\n" + testing::ReadFile(AgentLog()) +
           "--- control plane log ---\n" +
           testing::ReadFile(dir_.path() + "/cp.log");
  }

  TempDir dir_;
  int port_ = 0;
  std::string address_, config_, kmsg_;
  std::unique_ptr<Process> cp_, agent_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(NodeAgentE2eTest, FakeGpusXidAndControlPlaneRestart) {
  StartControlPlane();
  StartAgent();

  // Registers with 8 GPUs and heartbeats with their metrics.
  NodeInfo node;
  ASSERT_TRUE(WaitForNode(
      [](const NodeInfo& n) {
        return n.gpus_size() == 8 && n.last_heartbeat().seconds() > 0 &&
               n.last_metrics().gpu_metrics_size() == 8;
      },
      milliseconds(15000), &node))
      << Logs();
  EXPECT_EQ(node.gpus(0).name(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(node.gpus(0).pci_bus_id(), "00000000:18:00.0");
  EXPECT_EQ(node.metadata().labels().at("pool"), "e2e");
  EXPECT_EQ(node.status(), NODE_STATUS_ACTIVE);
  EXPECT_GT(node.last_metrics().gpu_metrics(0).temperature(), 0);
  int64_t first_heartbeat = node.last_heartbeat().seconds();
  ASSERT_TRUE(WaitForNode(
      [&](const NodeInfo& n) {
        return n.last_heartbeat().seconds() > first_heartbeat;
      },
      milliseconds(5000)))
      << "no second heartbeat\n"
      << Logs();

  // One XID 79 in the kernel log reaches the control plane within a second.
  auto written = steady_clock::now();
  {
    std::ofstream out(kmsg_, std::ios::app);
    out << "3,2,5000000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=4242, "
           "name=python3, GPU has "
           "fallen off the bus.\n";
  }
  ASSERT_TRUE(WaitForNode(
      [](const NodeInfo& n) { return n.status() == NODE_STATUS_UNHEALTHY; },
      milliseconds(5000), nullptr, milliseconds(10)))
      << Logs();
  auto took =
      std::chrono::duration_cast<milliseconds>(steady_clock::now() - written);
  std::cout << "XID 79 reached the control plane in " << took.count()
            << " ms\n";
  EXPECT_LE(took.count(), 1000) << Logs();
  // The event log is read from the store, which may commit a moment after
  // the node's status changed in memory.
  bool xid_event = false;
  for (int i = 0; i < 100 && !xid_event; ++i) {
    for (const Event& e : Events()) {
      auto it = e.details().find("metric.xid_code");
      if (e.kind() == "health.event" && it != e.details().end() &&
          it->second == "79") {
        xid_event = true;
        EXPECT_EQ(e.details().at("gpu_index"), "0");
        EXPECT_EQ(e.details().at("metric.process_name"), "python3");
      }
    }
    if (!xid_event) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(xid_event) << Logs();

  // Kill -9 the control plane, restart it on the same port and data: the
  // agent comes back by itself, heartbeats and command stream alike.
  cp_->Signal(SIGKILL);
  cp_->Wait(milliseconds(5000));
  std::this_thread::sleep_for(
      milliseconds(1500));  // the agent notices it is gone
  auto restarted = std::chrono::system_clock::now();
  StartControlPlane();
  int64_t restart_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                restarted.time_since_epoch())
                                .count();
  ASSERT_TRUE(WaitForNode(
      [&](const NodeInfo& n) {
        return n.last_heartbeat().seconds() > restart_seconds;
      },
      milliseconds(15000)))
      << "no heartbeat after the restart\n"
      << Logs();
  // A command issued now is carried out and acknowledged: the stream is back.
  IssueCommandRequest issue;
  issue.set_node_id(kNode);
  issue.set_command_type(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
  IssueCommandResponse issued;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->IssueCommand(&ctx, issue, &issued).ok());
  }
  bool acked = false;
  for (int i = 0; i < 300 && !acked; ++i) {
    for (const Event& e : Events()) {
      auto it = e.details().find("command_id");
      if ((e.kind() == "command.succeeded" || e.kind() == "command.failed") &&
          it != e.details().end() && it->second == issued.command_id()) {
        acked = true;
      }
    }
    if (!acked) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(acked) << Logs();

  // SIGTERM stops the agent cleanly.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(milliseconds(10000)), 0) << Logs();
}

TEST_F(NodeAgentE2eTest, AutoBackendWithoutNvidiaDriverFailsClearly) {
  if (access("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", F_OK) == 0) {
    GTEST_SKIP() << "this machine has NVIDIA's driver";
  }
  Process agent(testing::BinDir() + "/node-agent",
                {"--server", "127.0.0.1:1", "--gpu-backend", "auto"},
                AgentLog());
  EXPECT_EQ(agent.Wait(milliseconds(10000)), 1);
  EXPECT_NE(testing::ReadFile(AgentLog()).find("libnvidia-ml.so.1"),
            std::string::npos)
      << testing::ReadFile(AgentLog());
}

}  // namespace
}  // namespace navarch
