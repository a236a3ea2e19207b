// Node tokens with the real binaries: a control plane with a node token key
// that refuses shared agent tokens, and a pool of real node-agent processes
// (the local provider), each given its own node's token. The operator's
// `control-plane --mint-node-token` prints the same token, and a node's
// token cannot speak for another node.
#include <signal.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Process;
using testing::TempDir;

class NodeTokenE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(dir_.path() + "/node.key",
                       "0123456789abcdef0123456789abcdef0123456789abcdef\n");
    testing::WriteFile(dir_.path() + "/ops.token", "ops-secret-1\n");
    testing::WriteFile(dir_.path() + "/agent.token", "agent-secret-1\n");
    config_ = dir_.path() + "/navarch.yaml";
    const std::string& d = dir_.path();
    testing::WriteFile(config_,
                       "server:\n"
                       "  address: \"127.0.0.1:0\"\n"
                       "  http_address: \"127.0.0.1:0\"\n"
                       "  data_dir: " +
                           d +
                           "/data\n"
                           "  heartbeat_interval: 1s\n"
                           "  autoscale_interval: 1s\n"
                           "auth:\n"
                           "  tokens:\n"
                           "    - {name: ops, token_file: " +
                           d +
                           "/ops.token, role: operator}\n"
                           "    - {name: agents, token_file: " +
                           d +
                           "/agent.token, role: agent}\n"
                           "  node_token_key: {key_file: " +
                           d +
                           "/node.key}\n"
                           "  allow_shared_agent_tokens: false\n"
                           "providers:\n"
                           "  local:\n"
                           "    type: local\n"
                           "    gpu_count: 1\n"
                           "    agent_path: " +
                           testing::BinDir() +
                           "/node-agent\n"
                           "pools:\n"
                           "  dev:\n"
                           "    provider: local\n"
                           "    instance_type: local-1x\n"
                           "    min_nodes: 2\n"
                           "    max_nodes: 2\n");
  }

  // `control-plane --config F --mint-node-token ID`: its exit code and output.
  std::pair<int, std::string> Mint(const std::string& node_id) {
    const std::string out = dir_.path() + "/mint-" + node_id;
    Process p(testing::BinDir() + "/control-plane",
              {"--config", config_, "--mint-node-token", node_id}, out);
    const int code = p.Wait(std::chrono::seconds(30));
    return {code, testing::ReadFile(out)};
  }

  grpc::Status Report(const std::string& token, const std::string& node_id) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ReportHealthRequest req;
    req.set_node_id(node_id);
    HealthCheckResult* r = req.add_results();
    r->set_check_name("boot");
    r->set_status(HEALTH_STATUS_HEALTHY);
    ReportHealthResponse resp;
    return stub_->ReportHealth(&ctx, req, &resp);
  }

  std::map<std::string, NodeStatus> Nodes() {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer ops-secret-1");
    ListNodesResponse resp;
    std::map<std::string, NodeStatus> out;
    if (!stub_->ListNodes(&ctx, ListNodesRequest(), &resp).ok()) return out;
    for (const NodeInfo& n : resp.nodes()) out[n.node_id()] = n.status();
    return out;
  }

  // Real processes take real time: poll.
  static bool Eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 450; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }

  TempDir dir_;
  std::string config_;
  std::unique_ptr<ControlPlaneService::Stub> stub_;
};

TEST_F(NodeTokenE2eTest, LocalAgentsUseTheirOwnNodeTokens) {
  const std::string ready = dir_.path() + "/ready";
  const std::string log = dir_.path() + "/cp.log";
  Process server(testing::BinDir() + "/control-plane",
                 {"--config", config_, "--ready-file", ready}, log);
  const std::string content =
      testing::WaitForFile(ready, server, std::chrono::seconds(30));
  ASSERT_FALSE(content.empty()) << testing::ReadFile(log);
  stub_ = ControlPlaneService::NewStub(
      grpc::CreateChannel(testing::JsonString(content, "grpc_address"),
                          grpc::InsecureChannelCredentials()));

  // Shared agent tokens are refused, so the agents registered with the node
  // tokens the provider gave them.
  ASSERT_TRUE(Eventually([&] {
    auto nodes = Nodes();
    return nodes["local-1"] == NODE_STATUS_ACTIVE &&
           nodes["local-2"] == NODE_STATUS_ACTIVE;
  })) << testing::ReadFile(log)
      << testing::ReadFile(dir_.path() + "/data/local/local-1/agent.log");

  auto [code, minted] = Mint("local-1");
  ASSERT_EQ(code, 0) << minted;
  ASSERT_EQ(minted.rfind("navarch-node.local-1.", 0), 0u) << minted;
  const std::string token = minted.substr(0, minted.find('\n'));
  // It is what the agent was given: in its environment, not its arguments.
  const std::string pid =
      testing::ReadFile(dir_.path() + "/data/local/local-1/agent.pid");
  const std::string proc = "/proc/" + std::to_string(std::stoi(pid));
  EXPECT_NE(testing::ReadFile(proc + "/environ").find(token),
            std::string::npos);
  EXPECT_EQ(testing::ReadFile(proc + "/cmdline").find(token),
            std::string::npos);

  EXPECT_TRUE(Report(token, "local-1").ok());
  grpc::Status other = Report(token, "local-2");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(other.error_message(),
            "the node token of local-1 may not act for node local-2");
  EXPECT_EQ(Report("agent-secret-1", "local-2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Report(token + "x", "local-1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0);
}

TEST_F(NodeTokenE2eTest, MintingNamesWhatIsWrong) {
  auto [bad_id, out] = Mint("gpu 1");
  EXPECT_EQ(bad_id, 2);
  EXPECT_NE(out.find("node id \"gpu 1\" contains the character ' '"),
            std::string::npos)
      << out;
  testing::WriteFile(dir_.path() + "/node.key", "short\n");
  auto [short_key, out2] = Mint("gpu-1");
  EXPECT_EQ(short_key, 2);
  EXPECT_NE(out2.find("shorter than 32 characters"), std::string::npos) << out2;
  EXPECT_EQ(out2.find("short\n"), std::string::npos) << out2;
}

}  // namespace
}  // namespace navarch
