// The control-plane binary as operators run it: signals, exit codes, and the
// promise that nothing acknowledged is lost by kill -9.
#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Process;
using testing::TempDir;

class ControlPlaneProcessTest : public ::testing::Test {
 protected:
  std::string WriteConfig(const std::string& body) {
    std::string path = dir_.path() + "/navarch.yaml";
    testing::WriteFile(path, body);
    return path;
  }

  std::string DefaultConfigFile() {
    return WriteConfig("server:\n  address: \"127.0.0.1:0\"\n  data_dir: " +
                       dir_.path() + "/data\n");
  }

  // Starts the binary and connects; returns the gRPC address.
  std::string Start(const std::string& config) {
    std::string ready = dir_.path() + "/ready.json";
    std::remove(ready.c_str());
    process_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config, "--ready-file", ready},
        Log());
    std::string content =
        testing::WaitForFile(ready, *process_, std::chrono::seconds(30));
    EXPECT_FALSE(content.empty()) << testing::ReadFile(Log());
    std::string address = testing::JsonString(content, "grpc_address");
    stub_ = ControlPlaneService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    return address;
  }

  std::string Log() { return dir_.path() + "/cp.log"; }

  TempDir dir_;
  std::unique_ptr<Process> process_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(ControlPlaneProcessTest, NothingAcknowledgedIsLostByKillDashNine) {
  std::string config = DefaultConfigFile();
  Start(config);
  // Writers hammer the server from several threads; each remembers exactly
  // what the server acknowledged. Then the process dies mid-stream.
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::string>> registered(kThreads);
  std::vector<std::map<std::string, std::string>> commands(
      kThreads);  // id -> node
  std::vector<std::vector<std::string>> cordoned(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        std::string id = "node-" + std::to_string(t) + "-" + std::to_string(i);
        RegisterNodeRequest reg;
        reg.set_node_id(id);
        reg.add_gpus()->set_index(0);
        RegisterNodeResponse rr;
        grpc::ClientContext c1;
        if (!stub_->RegisterNode(&c1, reg, &rr).ok()) break;
        registered[t].push_back(id);
        IssueCommandRequest issue;
        issue.set_node_id(id);
        issue.set_command_type(i % 2 ? NODE_COMMAND_TYPE_CORDON
                                     : NODE_COMMAND_TYPE_RUN_DIAGNOSTIC);
        IssueCommandResponse ir;
        grpc::ClientContext c2;
        if (!stub_->IssueCommand(&c2, issue, &ir).ok()) break;
        commands[t][ir.command_id()] = id;
        if (i % 2) cordoned[t].push_back(id);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  process_->Signal(SIGKILL);
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(process_->Wait(std::chrono::seconds(10)), 128 + SIGKILL);

  size_t total = 0;
  for (const auto& r : registered) total += r.size();
  ASSERT_GT(total, 10u)
      << "the server acknowledged too little to prove anything";

  Start(config);
  for (int t = 0; t < kThreads; ++t) {
    for (const auto& id : registered[t]) {
      grpc::ClientContext ctx;
      GetNodeRequest g;
      g.set_node_id(id);
      GetNodeResponse resp;
      ASSERT_TRUE(stub_->GetNode(&ctx, g, &resp).ok()) << id << " lost";
    }
    for (const auto& id : cordoned[t]) {
      grpc::ClientContext ctx;
      GetNodeRequest g;
      g.set_node_id(id);
      GetNodeResponse resp;
      ASSERT_TRUE(stub_->GetNode(&ctx, g, &resp).ok());
      EXPECT_EQ(resp.node().status(), NODE_STATUS_CORDONED) << id;
    }
    std::map<std::string, std::vector<std::string>> by_node;
    for (const auto& [cmd, node] : commands[t]) by_node[node].push_back(cmd);
    for (const auto& [node, cmds] : by_node) {
      grpc::ClientContext ctx;
      GetNodeCommandsRequest req;
      req.set_node_id(node);
      GetNodeCommandsResponse resp;
      ASSERT_TRUE(stub_->GetNodeCommands(&ctx, req, &resp).ok());
      ASSERT_EQ(resp.commands_size(), static_cast<int>(cmds.size())) << node;
      EXPECT_EQ(resp.commands(0).command_id(), cmds[0]);
    }
  }
  process_->Signal(SIGTERM);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
}

TEST_F(ControlPlaneProcessTest, SigtermStopsCleanlyAndKeepsHeartbeats) {
  std::string config = DefaultConfigFile();
  Start(config);
  RegisterNodeRequest reg;
  reg.set_node_id("n1");
  RegisterNodeResponse rr;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->RegisterNode(&c1, reg, &rr).ok());
  HeartbeatRequest hb;
  hb.set_node_id("n1");
  hb.mutable_metrics()->set_memory_usage_percent(33);
  HeartbeatResponse hr;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->SendHeartbeat(&c2, hb, &hr).ok());
  process_->Signal(SIGTERM);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
  EXPECT_NE(testing::ReadFile(Log()).find("control plane stopped"),
            std::string::npos);

  Start(config);
  grpc::ClientContext c3;
  GetNodeRequest g;
  g.set_node_id("n1");
  GetNodeResponse resp;
  ASSERT_TRUE(stub_->GetNode(&c3, g, &resp).ok());
  EXPECT_GT(resp.node().last_heartbeat().seconds(), 0);
  EXPECT_EQ(resp.node().last_metrics().memory_usage_percent(), 33);
  process_->Signal(SIGINT);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
}

TEST_F(ControlPlaneProcessTest, BadConfigExitsTwoNamingFileLineAndKey) {
  std::string config = WriteConfig(
      "server:\n  address: \":0\"\n  heartbeat_interval: 30\npools:\n  "
      "training:\n"
      "    provider: nowhere\n    instance_type: h100-8x\n    min_nodes: 5\n   "
      " max_nodes: 2\n"
      "    instance_typo: x\n");
  Process p(testing::BinDir() + "/control-plane", {"--config", config}, Log());
  EXPECT_EQ(p.Wait(std::chrono::seconds(30)), 2);
  std::string out = testing::ReadFile(Log());
  EXPECT_NE(out.find("navarch.yaml:3:"), std::string::npos) << out;
  EXPECT_NE(out.find("instance_typo"), std::string::npos) << out;
  EXPECT_NE(out.find("nowhere"), std::string::npos) << out;
}

TEST_F(ControlPlaneProcessTest, ATakenPortExitsOneAtOnce) {
  std::string address = Start(DefaultConfigFile());
  TempDir other;
  std::string config = other.path() + "/navarch.yaml";
  testing::WriteFile(config, "server:\n  address: \"" + address +
                                 "\"\n  data_dir: " + other.path() + "/data\n");
  Process p(testing::BinDir() + "/control-plane", {"--config", config},
            other.path() + "/log");
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 1);
  EXPECT_NE(testing::ReadFile(other.path() + "/log").find("already in use"),
            std::string::npos);
}

TEST_F(ControlPlaneProcessTest, ABrokenPolicyRuleStopsStartUpNamingTheRule) {
  std::string policy = dir_.path() + "/policy.yaml";
  testing::WriteFile(
      policy,
      "rules:\n  - name: fatal\n    condition: event.metrics.xid_code in [79\n"
      "    result: unhealthy\n");
  std::string config = WriteConfig(
      "server:\n  address: \"127.0.0.1:0\"\n  data_dir: " + dir_.path() +
      "/data\n  health_policy: " + policy + "\n");
  Process p(testing::BinDir() + "/control-plane", {"--config", config}, Log());
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 1);
  std::string out = testing::ReadFile(Log());
  EXPECT_NE(out.find("policy.yaml:3:16: rule \"fatal\": condition: 1:"),
            std::string::npos)
      << out;
}

TEST_F(ControlPlaneProcessTest, SighupReloadsThePolicy) {
  std::string policy = dir_.path() + "/policy.yaml";
  testing::WriteFile(
      policy,
      "rules:\n  - {name: lenient, condition: 'true', result: healthy}\n");
  std::string config = WriteConfig(
      "server:\n  address: \"127.0.0.1:0\"\n  data_dir: " + dir_.path() +
      "/data\n  health_policy: " + policy + "\n");
  Start(config);
  auto report = [&](const std::string& node) {
    RegisterNodeRequest reg;
    reg.set_node_id(node);
    RegisterNodeResponse rr;
    grpc::ClientContext c1;
    EXPECT_TRUE(stub_->RegisterNode(&c1, reg, &rr).ok());
    ReportHealthRequest req;
    req.set_node_id(node);
    auto* e = req.add_events();
    e->set_event_type(HEALTH_EVENT_TYPE_XID);
    (*e->mutable_metrics())["xid_code"] = "79";
    ReportHealthResponse resp;
    grpc::ClientContext c2;
    EXPECT_TRUE(stub_->ReportHealth(&c2, req, &resp).ok());
    return resp.node_status();
  };
  EXPECT_EQ(report("n1"), NODE_STATUS_ACTIVE);
  // An invalid policy is rejected and the old one stays.
  testing::WriteFile(policy, "rules: [\n");
  process_->Signal(SIGHUP);
  std::string log;
  for (int i = 0;
       i < 200 && log.find("health policy rejected") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    log = testing::ReadFile(Log());
  }
  ASSERT_NE(log.find("health policy rejected"), std::string::npos) << log;
  EXPECT_EQ(report("n2"), NODE_STATUS_ACTIVE);
  // A valid one replaces it.
  testing::WriteFile(
      policy,
      "rules:\n  - {name: strict, condition: 'true', result: unhealthy}\n");
  process_->Signal(SIGHUP);
  for (int i = 0;
       i < 200 && log.find("health policy reloaded") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    log = testing::ReadFile(Log());
  }
  ASSERT_NE(log.find("health policy reloaded"), std::string::npos) << log;
  EXPECT_EQ(report("n3"), NODE_STATUS_UNHEALTHY);
  process_->Signal(SIGTERM);
  EXPECT_EQ(process_->Wait(std::chrono::seconds(30)), 0);
}

TEST_F(ControlPlaneProcessTest, UnknownFlagIsAUsageError) {
  Process p(testing::BinDir() + "/control-plane", {"--no-such-flag"}, Log());
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 2);
}

}  // namespace
}  // namespace navarch
