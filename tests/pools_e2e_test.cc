// The quick start, end to end: a control plane whose pool is made of real
// node-agent processes (the local provider). Two agents come up ACTIVE; an
// XID 79 written to one's kernel log gets it replaced; a kill -9 of an agent
// gets it replaced; ScalePool works within limits; a kill -9 of the control
// plane and a restart neither lose nor duplicate an instance.
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "navarch/net/testing/test_http_server.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::FreePort;

using testing::Process;
using testing::TempDir;

class PoolsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.path() + "/navarch.yaml";
    testing::WriteFile(config_,
                       "server:\n"
                       "  address: \"127.0.0.1:" +
                           std::to_string(FreePort()) +
                           "\"\n"
                           "  http_address: \"127.0.0.1:0\"\n"
                           "  data_dir: " +
                           dir_.path() +
                           "/data\n"
                           "  heartbeat_interval: 1s\n"
                           "  heartbeat_timeout: 10s\n"
                           "  autoscale_interval: 1s\n"
                           "providers:\n"
                           "  local:\n"
                           "    type: local\n"
                           "    gpu_count: 2\n"
                           "    agent_path: " +
                           testing::BinDir() +
                           "/node-agent\n"
                           "pools:\n"
                           "  dev:\n"
                           "    provider: local\n"
                           "    instance_type: local-2x\n"
                           "    min_nodes: 2\n"
                           "    max_nodes: 3\n"
                           "    cooldown: 0s\n"
                           "    health:\n"
                           "      unhealthy_after: 1\n"
                           "      drain_timeout: 2s\n");
  }

  void StartControlPlane(int n) {
    const std::string ready = dir_.path() + "/ready" + std::to_string(n);
    log_ = dir_.path() + "/cp" + std::to_string(n) + ".log";
    server_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config_, "--ready-file", ready},
        log_);
    const std::string content =
        testing::WaitForFile(ready, *server_, std::chrono::seconds(30));
    ASSERT_FALSE(content.empty()) << testing::ReadFile(log_);
    address_ = testing::JsonString(content, "grpc_address");
    stub_ = ControlPlaneService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  std::vector<NodeInfo> Nodes() {
    grpc::ClientContext ctx;
    ListNodesResponse resp;
    if (!stub_->ListNodes(&ctx, ListNodesRequest(), &resp).ok()) return {};
    return {resp.nodes().begin(), resp.nodes().end()};
  }
  int Count(NodeStatus status) {
    int n = 0;
    for (const NodeInfo& node : Nodes()) n += node.status() == status;
    return n;
  }
  NodeStatus StatusOf(const std::string& id) {
    for (const NodeInfo& node : Nodes()) {
      if (node.node_id() == id) return node.status();
    }
    return NODE_STATUS_UNKNOWN;
  }
  // Real processes take real time: poll.
  bool Eventually(const std::function<bool()>& pred, int seconds = 45) {
    for (int i = 0; i < seconds * 10; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }
  std::string InstanceDir(const std::string& id) {
    return dir_.path() + "/data/local/" + id;
  }
  int InstanceFolders() {
    int n = 0;
    for (const auto& e :
         std::filesystem::directory_iterator(dir_.path() + "/data/local")) {
      n += e.is_directory();
    }
    return n;
  }
  grpc::Status Scale(int n) {
    grpc::ClientContext ctx;
    ScalePoolRequest req;
    req.set_name("dev");
    req.set_target_nodes(n);
    ScalePoolResponse resp;
    return stub_->ScalePool(&ctx, req, &resp);
  }

  TempDir dir_;
  std::string config_;
  std::string log_;
  std::string address_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(PoolsE2eTest, QuickStartLifecycle) {
  StartControlPlane(1);
  ASSERT_TRUE(Eventually([&] { return Count(NODE_STATUS_ACTIVE) == 2; }))
      << testing::ReadFile(log_);

  // An XID 79 in the kernel log of local-1: replaced.
  {
    std::ofstream kmsg(InstanceDir("local-1") + "/kmsg", std::ios::app);
    kmsg << "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the "
            "bus.\n";
  }
  EXPECT_TRUE(Eventually([&] {
    return StatusOf("local-1") == NODE_STATUS_TERMINATED &&
           Count(NODE_STATUS_ACTIVE) == 2;
  })) << testing::ReadFile(log_);

  // kill -9 of the agent of local-2: replaced.
  const int pid =
      std::stoi(testing::ReadFile(InstanceDir("local-2") + "/agent.pid"));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_TRUE(Eventually([&] {
    return StatusOf("local-2") == NODE_STATUS_TERMINATED &&
           Count(NODE_STATUS_ACTIVE) == 2;
  })) << testing::ReadFile(log_);

  // Manual scaling within limits.
  EXPECT_EQ(Scale(4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Scale(3).ok());
  EXPECT_TRUE(Eventually([&] { return Count(NODE_STATUS_ACTIVE) == 3; }))
      << testing::ReadFile(log_);

  // The same through the CLI.
  {
    std::string out = dir_.path() + "/pools.json";
    std::string err = dir_.path() + "/pools.err";
    Process list("/bin/sh",
                 {"-c", testing::BinDir() + "/navarch -s " + address_ +
                            " pools list -o json >" + out + " 2>" + err},
                 dir_.path() + "/sh.log");
    ASSERT_EQ(list.Wait(std::chrono::seconds(30)), 0) << testing::ReadFile(err);
    std::string json = testing::ReadFile(out);
    EXPECT_NE(json.find("\"name\": \"dev\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"target_nodes\": 3"), std::string::npos) << json;
    Process scale("/bin/sh",
                  {"-c", testing::BinDir() + "/navarch -s " + address_ +
                             " pools scale dev 9 >" + out + " 2>" + err},
                  dir_.path() + "/sh.log");
    EXPECT_EQ(scale.Wait(std::chrono::seconds(30)), 1);  // max_nodes is 3
    EXPECT_NE(testing::ReadFile(err).find("Error: "), std::string::npos);
    Process reset("/bin/sh",
                  {"-c", testing::BinDir() + "/navarch -s " + address_ +
                             " pools reset-breaker dev >" + out + " 2>" + err},
                  dir_.path() + "/sh.log");
    EXPECT_EQ(reset.Wait(std::chrono::seconds(30)), 0)
        << testing::ReadFile(err);
    EXPECT_NE(testing::ReadFile(out).find("was not open"), std::string::npos)
        << testing::ReadFile(out);
  }

  // kill -9 of the control plane, then a restart: the same instances.
  const int folders = InstanceFolders();
  server_->Signal(SIGKILL);
  server_->Wait(std::chrono::seconds(10));
  StartControlPlane(2);
  EXPECT_TRUE(Eventually([&] { return Count(NODE_STATUS_ACTIVE) == 3; }))
      << testing::ReadFile(log_);
  // A few evaluations later, still no new instance.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(InstanceFolders(), folders);
  EXPECT_EQ(Count(NODE_STATUS_ACTIVE), 3);

  // A clean stop takes the agents down with it (keep_instances: false).
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(std::chrono::seconds(30)), 0);
}

// A workload system behind a webhook, and a control plane with tokens: the
// local provider's agents authenticate with the agent token; a fatal XID
// wakes the pool manager at once (the autoscale interval is a minute) and the
// replacement's cordon and drain reach the webhook, whose drain status says
// the node is drained.
TEST_F(PoolsE2eTest, WebhookNotifierTokensAndImmediateReplacement) {
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::string>> posts;  // event, node
  std::vector<std::string> status_queries;
  testing::TestHttpServer webhook;
  httplib::Server& hook = webhook.server();
  hook.Post("/events", [&](const httplib::Request& req, httplib::Response&) {
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    absl::MutexLock lock(&mu);
    posts.emplace_back(j.value("event", "?"), j.value("node_id", "?"));
  });
  hook.Get("/drained",
           [&](const httplib::Request& req, httplib::Response& res) {
             absl::MutexLock lock(&mu);
             status_queries.push_back(req.get_param_value("node_id"));
             res.set_content(R"({"drained": true, "message": "no jobs"})",
                             "application/json");
           });
  webhook.Start();
  const std::string url = webhook.Url("");

  testing::WriteFile(dir_.path() + "/agent.token", "agent-secret-1\n");
  testing::WriteFile(dir_.path() + "/ops.token", "ops-secret-1\n");
  std::string yaml = testing::ReadFile(config_);
  yaml.replace(yaml.find("  autoscale_interval: 1s"),
               std::string("  autoscale_interval: 1s").size(),
               "  autoscale_interval: 60s\n"
               "  notifier:\n"
               "    type: webhook\n"
               "    webhook:\n"
               "      cordon_url: " +
                   url +
                   "/events\n"
                   "      drain_url: " +
                   url +
                   "/events\n"
                   "      uncordon_url: " +
                   url +
                   "/events\n"
                   "      drain_status_url: " +
                   url +
                   "/drained\n"
                   "      timeout: 5s");
  yaml.replace(yaml.find("    min_nodes: 2"),
               std::string("    min_nodes: 2").size(), "    min_nodes: 1");
  yaml +=
      "auth:\n  tokens:\n"
      "    - {name: agents, token_file: " +
      dir_.path() +
      "/agent.token, role: agent}\n"
      "    - {name: ops, token_file: " +
      dir_.path() + "/ops.token, role: operator}\n";
  testing::WriteFile(config_, yaml);

  StartControlPlane(1);
  auto nodes = [&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer ops-secret-1");
    ListNodesResponse resp;
    std::map<std::string, NodeStatus> out;
    if (!stub_->ListNodes(&ctx, ListNodesRequest(), &resp).ok()) return out;
    for (const NodeInfo& n : resp.nodes()) out[n.node_id()] = n.status();
    return out;
  };
  // The agent registered: it was given the agent token.
  ASSERT_TRUE(Eventually([&] {
    return nodes()["local-1"] == NODE_STATUS_ACTIVE;
  })) << testing::ReadFile(log_)
      << testing::ReadFile(InstanceDir("local-1") + "/agent.log");
  // Never on its command line.
  const int pid =
      std::stoi(testing::ReadFile(InstanceDir("local-1") + "/agent.pid"));
  EXPECT_EQ(testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline")
                .find("agent-secret-1"),
            std::string::npos);

  const auto xid_at = std::chrono::steady_clock::now();
  {
    std::ofstream kmsg(InstanceDir("local-1") + "/kmsg", std::ios::app);
    kmsg << "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the "
            "bus.\n";
  }
  // Replaced well before the next autoscale tick (60 s away).
  ASSERT_TRUE(Eventually(
      [&] { return nodes()["local-1"] == NODE_STATUS_TERMINATED; }, 30))
      << testing::ReadFile(log_);
  EXPECT_LT(std::chrono::steady_clock::now() - xid_at,
            std::chrono::seconds(20));
  EXPECT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return posts.size() >= 2;
  }));
  {
    absl::MutexLock lock(&mu);
    ASSERT_GE(posts.size(), 2u);
    EXPECT_EQ(posts[0],
              std::make_pair(std::string("cordon"), std::string("local-1")));
    EXPECT_EQ(posts[1],
              std::make_pair(std::string("drain"), std::string("local-1")));
    EXPECT_FALSE(status_queries.empty());
  }
  // The replacement comes up with the token too.
  EXPECT_TRUE(Eventually([&] {
    return nodes()["local-2"] == NODE_STATUS_ACTIVE;
  })) << testing::ReadFile(log_);

  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(std::chrono::seconds(30)), 0);
}

}  // namespace
}  // namespace navarch
