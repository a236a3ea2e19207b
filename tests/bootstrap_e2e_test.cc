// From a bought VM to a registered node with no human step, by cloud user
// data: the real control plane, with auth.node_token_key and an EC2 pool
// whose user_data carries {{.BootstrapToken}}, buys an instance from FakeEc2;
// the test plays the VM: it reads the user data the instance was launched
// with, starts the real node-agent with what it says (--node-id auto, which
// asks FakeEc2's instance metadata service), and the node becomes ACTIVE
// under the instance's id. The agent keeps the node token it got in
// exchange, and a restarted agent whose bootstrap token is gone goes on with
// it. The bootstrap token registers nothing else, and no token is in the
// control plane's log. Shared agent tokens are refused (no agent has one).
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Eventually;
using testing::FreePort;

using Json = nlohmann::json;
using std::chrono::steady_clock;
using testing::Process;
using testing::TempDir;

constexpr char kOpsToken[] = "ops-bootstrap-e2e-token-31c9";
constexpr char kNodeKey[] =
    "b00757a9e2e0c0ffee1234567890abcdef1234567890abcdef1234567890abcd";

// KEY=value lines of a shell script (quotes removed).
std::map<std::string, std::string> Assignments(const std::string& script) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(script, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos || !absl::StartsWith(line, "NAVARCH_")) {
      continue;
    }
    absl::string_view value = line.substr(eq + 1);
    absl::ConsumePrefix(&value, "\"");
    absl::ConsumeSuffix(&value, "\"");
    out[std::string(line.substr(0, eq))] = std::string(value);
  }
  return out;
}

class BootstrapE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ec2_.Start().ok());
    for (const char* v :
         {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_SHARED_CREDENTIALS_FILE",
          "NAVARCH_AUTH_TOKEN", "NAVARCH_NODE_TOKEN_FILE"}) {
      unsetenv(v);
    }
    // The control plane asks nothing of instance metadata; the agents ask
    // FakeEc2's, and nothing else (GCE's is a closed loopback port).
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ec2_.url().c_str(), 1);
    setenv("GCE_METADATA_HOST",
           ("127.0.0.1:" + std::to_string(FreePort())).c_str(), 1);
    const std::string d = dir_.path();
    testing::WriteFile(d + "/aws-credentials",
                       "[navarch]\naws_access_key_id = AKIDFAKE\n"
                       "aws_secret_access_key = fake-secret-key-123\n");
    testing::WriteFile(d + "/ops.token", std::string(kOpsToken) + "\n");
    testing::WriteFile(d + "/node.key", std::string(kNodeKey) + "\n");
    grpc_ = "127.0.0.1:" + std::to_string(FreePort());
    http_address_ = "127.0.0.1:" + std::to_string(FreePort());
    config_ = d + "/navarch.yaml";
    testing::WriteFile(config_, Config());
  }
  void TearDown() override {
    if (agent_ != nullptr) agent_->Signal(SIGKILL);
    if (cp_ != nullptr) cp_->Signal(SIGKILL);
    unsetenv("NAVARCH_AUTH_TOKEN");
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  }

  std::string Config() {
    constexpr char kConfig[] = R"(server:
  address: "{GRPC}"
  http_address: "{HTTP}"
  data_dir: {D}/data
  autoscale_interval: 1s
  heartbeat_interval: 1s
auth:
  tokens:
    - {name: ops, token_file: {D}/ops.token, role: operator}
  node_token_key: {key_file: {D}/node.key}
  allow_shared_agent_tokens: false
providers:
  ec2:
    type: aws
    region: us-east-1
    endpoint: {EC2}
    image_id: ami-0b007
    subnet_ids: {us-east-1a: subnet-a}
    security_group_ids: [sg-1]
    profile: navarch
    credentials_file: {D}/aws-credentials
pools:
  train:
    provider: ec2
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
    user_data: |
      #!/bin/sh
      cat > /etc/default/navarch-node-agent <<EOF
      NAVARCH_SERVER={{.ControlPlane}}
      NAVARCH_AUTH_TOKEN={{.BootstrapToken}}
      NAVARCH_AGENT_ARGS="--node-id {{.NodeID}} --pool {{.Pool}} --provider {{.Provider}}"
      EOF
      systemctl restart navarch-node-agent
)";
    return absl::StrReplaceAll(kConfig, {{"{GRPC}", grpc_},
                                         {"{HTTP}", http_address_},
                                         {"{D}", dir_.path()},
                                         {"{EC2}", ec2_.url()}});
  }

  void StartControlPlane() {
    log_ = dir_.path() + "/cp.log";
    cp_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config_}, log_);
    http_ = std::make_unique<httplib::Client>("http://" + http_address_);
    http_->set_read_timeout(5, 0);
    http_->set_bearer_token_auth(kOpsToken);
  }

  // The agent as the VM's unit would start it, from the user data's
  // settings; `token` goes in NAVARCH_AUTH_TOKEN.
  void StartAgent(const std::map<std::string, std::string>& env,
                  const std::string& token, const std::string& log) {
    setenv("NAVARCH_AUTH_TOKEN", token.c_str(), 1);
    std::vector<std::string> args = {"--server",
                                     env.at("NAVARCH_SERVER"),
                                     "--node-token-file",
                                     dir_.path() + "/node-token",
                                     "--gpu-backend",
                                     "fake",
                                     "--kmsg",
                                     "",
                                     "--log-format",
                                     "text"};
    for (absl::string_view a :
         absl::StrSplit(env.at("NAVARCH_AGENT_ARGS"), ' ', absl::SkipEmpty())) {
      args.emplace_back(a);
    }
    agent_ =
        std::make_unique<Process>(testing::BinDir() + "/node-agent", args, log);
  }

  // The node's status as the API shows it ("" when not listed).
  std::string NodeStatus(const std::string& id) {
    auto r = http_->Get("/api/v1/nodes");
    if (!r || r->status != 200) return "";
    const Json nodes = Json::parse(r->body, nullptr, false);
    if (!nodes.is_array()) return "";
    for (const Json& n : nodes) {
      if (n.value("node_id", "") == id) return n.value("status", "");
    }
    return "";
  }

  // What to show when something is not as expected.
  std::string Logs() {
    auto events = http_->Get("/api/v1/events?page_size=1000");
    return "--- events ---\n" + (events ? events->body : std::string()) +
           "\n--- control plane log ---\n" + testing::ReadFile(log_);
  }

  FakeEc2 ec2_;
  TempDir dir_;
  std::string config_, log_, grpc_, http_address_;
  std::unique_ptr<Process> cp_, agent_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(BootstrapE2eTest, UserDataAloneMakesTheInstanceAnActiveNode) {
  StartControlPlane();
  ASSERT_TRUE(Eventually([&] { return ec2_.instances().size() == 1; }, 20))
      << Logs();
  const FakeEc2::Instance vm = ec2_.instances()[0];
  // What the VM's boot script gets: our template, filled in.
  const std::map<std::string, std::string> env = Assignments(vm.user_data);
  ASSERT_EQ(env.count("NAVARCH_AUTH_TOKEN"), 1u) << vm.user_data;
  const std::string boot = env.at("NAVARCH_AUTH_TOKEN");
  EXPECT_TRUE(absl::StartsWith(boot, "navarch-boot.")) << boot;
  EXPECT_EQ(env.at("NAVARCH_SERVER"), "http://" + grpc_);
  EXPECT_EQ(env.at("NAVARCH_AGENT_ARGS"),
            "--node-id auto --pool train --provider ec2");
  EXPECT_NE(boot.find(vm.tags.at("navarch-token")), std::string::npos);

  // Another VM (a leaked script) cannot register under another id with it.
  ec2_.ImdsSpeaksFor(vm.id);
  const std::string impostor_log = dir_.path() + "/impostor.log";
  {
    std::map<std::string, std::string> other = env;
    other["NAVARCH_AGENT_ARGS"] = "--node-id i-0impostor --pool train";
    StartAgent(other, boot, impostor_log);
    ASSERT_TRUE(Eventually(
        [&] {
          return testing::ReadFile(impostor_log)
                     .find("no instance i-0impostor is known") !=
                 std::string::npos;
        },
        20))
        << testing::ReadFile(impostor_log);
    agent_->Signal(SIGKILL);
    agent_->Wait(std::chrono::seconds(10));
  }
  EXPECT_EQ(NodeStatus("i-0impostor"), "");

  // The VM itself: its id from instance metadata, registered, ACTIVE.
  const std::string agent_log = dir_.path() + "/agent1.log";
  StartAgent(env, boot, agent_log);
  ASSERT_TRUE(
      Eventually([&] { return NodeStatus(vm.id) == "NODE_STATUS_ACTIVE"; }, 30))
      << testing::ReadFile(agent_log) << "\n---\n"
      << testing::ReadFile(log_);
  const std::string kept = testing::ReadFile(dir_.path() + "/node-token");
  EXPECT_TRUE(absl::StartsWith(kept, "navarch-node." + vm.id + ".")) << kept;

  // Restarted with a bootstrap token that no longer works: it goes on with
  // the node token it kept, and its heartbeats are taken.
  agent_->Signal(SIGTERM);
  agent_->Wait(std::chrono::seconds(20));
  const std::string agent2_log = dir_.path() + "/agent2.log";
  StartAgent(env, "navarch-boot.1.expired.AAAA", agent2_log);
  ASSERT_TRUE(Eventually(
      [&] {
        return testing::ReadFile(agent2_log)
                   .find("using the node token kept") != std::string::npos;
      },
      20))
      << testing::ReadFile(agent2_log);
  EXPECT_EQ(testing::ReadFile(agent2_log).find("nauthenticated"),
            std::string::npos)
      << testing::ReadFile(agent2_log);
  EXPECT_EQ(NodeStatus(vm.id), "NODE_STATUS_ACTIVE");

  // Neither token is in the control plane's log.
  const std::string cp_log = testing::ReadFile(log_);
  EXPECT_EQ(cp_log.find(boot), std::string::npos);
  EXPECT_EQ(cp_log.find(std::string(absl::StripAsciiWhitespace(kept))),
            std::string::npos);
}

}  // namespace
}  // namespace navarch
