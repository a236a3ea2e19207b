// From a bought VM to a registered node with no human step, by cloud user
// data, on each cloud: the real control plane, with auth.node_token_key and
// a pool whose user_data carries {{.BootstrapToken}}, buys an instance from
// the cloud's fake; the test plays the VM (PlayVm): it reads the user data
// the instance was launched with, starts the real node-agent with what it
// says (--node-id auto), and the node becomes ACTIVE under the instance's
// id. How the agent learns that id is the cloud's:
//   EC2     instance metadata (FakeEc2's IMDSv2);
//   GCE     the metadata server (FakeGce's, through GCE_METADATA_HOST);
//   Lambda  no metadata service, and the id exists only once the launch has
//           returned: the agent registers with an empty node id and its
//           bootstrap token, and the control plane assigns the id of the
//           instance that token was minted for.
// The agent keeps the node token it got in exchange (and, on Lambda, the id
// it was given), and a restarted agent whose bootstrap token is gone goes on
// with them. The bootstrap token registers nothing else, and no token is in
// the control plane's log. Shared agent tokens are refused (no agent has
// one). Every address is loopback.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "navarch/provider/gcp/testing/fake_gce.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Eventually;
using testing::FreePort;

using Json = nlohmann::json;
using testing::Process;
using testing::TempDir;

constexpr char kOpsToken[] = "ops-bootstrap-e2e-token-31c9";
constexpr char kNodeKey[] =
    "b00757a9e2e0c0ffee1234567890abcdef1234567890abcdef1234567890abcd";
constexpr char kLambdaKey[] = "lambda-bootstrap-e2e-key-7d21";

// What every pool's instances boot with: the package's defaults file, then
// the agent's unit.
constexpr char kUserData[] = R"(    user_data: |
      #!/bin/sh
      cat > /etc/default/navarch-node-agent <<EOF
      NAVARCH_SERVER={{.ControlPlane}}
      NAVARCH_AUTH_TOKEN={{.BootstrapToken}}
      NAVARCH_AGENT_ARGS="--node-id {{.NodeID}} --pool {{.Pool}} --provider {{.Provider}}"
      EOF
      systemctl restart navarch-node-agent
)";

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

// A loopback address where nothing answers (connections refused at once):
// a cloud's metadata service that this VM does not have.
std::string Nowhere() { return "127.0.0.1:" + std::to_string(FreePort()); }

class BootstrapE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v :
         {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_SHARED_CREDENTIALS_FILE",
          "AWS_EC2_METADATA_DISABLED", "NAVARCH_AUTH_TOKEN",
          "NAVARCH_NODE_TOKEN_FILE"}) {
      unsetenv(v);
    }
    // The control plane asks nothing of instance metadata; an agent asks
    // the services its cloud has, and no other: by default none answers.
    Metadata("http://" + Nowhere(), Nowhere());
    const std::string d = dir_.path();
    testing::WriteFile(d + "/ops.token", std::string(kOpsToken) + "\n");
    testing::WriteFile(d + "/node.key", std::string(kNodeKey) + "\n");
    grpc_ = "127.0.0.1:" + std::to_string(FreePort());
    http_address_ = "127.0.0.1:" + std::to_string(FreePort());
  }
  void TearDown() override {
    if (agent_ != nullptr) agent_->Signal(SIGKILL);
    if (cp_ != nullptr) cp_->Signal(SIGKILL);
    unsetenv("NAVARCH_AUTH_TOKEN");
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    unsetenv("GCE_METADATA_HOST");
  }

  // Where the VM's agent finds EC2's and GCE's metadata services.
  static void Metadata(const std::string& ec2_url, const std::string& gce) {
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ec2_url.c_str(), 1);
    setenv("GCE_METADATA_HOST", gce.c_str(), 1);
  }

  // Starts the control plane with `providers` (YAML under `providers:`) and
  // one pool, train, of one instance bought from `provider`.
  void StartControlPlane(const std::string& providers,
                         const std::string& provider,
                         const std::string& pool_extra = "") {
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
{PROVIDERS}pools:
  train:
    provider: {PROVIDER}
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
{POOL}{USER_DATA})";
    const std::string config =
        absl::StrReplaceAll(kConfig, {{"{PROVIDERS}", providers},
                                      {"{PROVIDER}", provider},
                                      {"{POOL}", pool_extra},
                                      {"{USER_DATA}", kUserData},
                                      {"{GRPC}", grpc_},
                                      {"{HTTP}", http_address_},
                                      {"{D}", dir_.path()}});
    testing::WriteFile(dir_.path() + "/navarch.yaml", config);
    log_ = dir_.path() + "/cp.log";
    cp_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", dir_.path() + "/navarch.yaml"},
        log_);
    http_ = std::make_unique<httplib::Client>("http://" + http_address_);
    http_->set_read_timeout(5, 0);
    http_->set_bearer_token_auth(kOpsToken);
  }

  // The user data of a pool `train` bought from provider `provider`, as the
  // control plane filled it in, checked: its bootstrap token (returned) was
  // minted for the instance's navarch-token label `intent`.
  std::map<std::string, std::string> CheckedUserData(
      const std::string& user_data, const std::string& provider,
      const std::string& intent) {
    const std::map<std::string, std::string> env = Assignments(user_data);
    EXPECT_EQ(env.count("NAVARCH_AUTH_TOKEN"), 1u) << user_data;
    if (env.count("NAVARCH_AUTH_TOKEN") == 0) return env;
    const std::string& boot = env.at("NAVARCH_AUTH_TOKEN");
    EXPECT_TRUE(absl::StartsWith(boot, "navarch-boot.")) << boot;
    EXPECT_NE(boot.find(intent), std::string::npos) << boot;
    EXPECT_EQ(env.at("NAVARCH_SERVER"), "http://" + grpc_);
    EXPECT_EQ(env.at("NAVARCH_AGENT_ARGS"),
              "--node-id auto --pool train --provider " + provider);
    return env;
  }

  // Plays the VM: starts the agent as the VM's unit would, from the user
  // data's settings `env` (see Assignments); `token`, when not empty,
  // replaces its NAVARCH_AUTH_TOKEN.
  void PlayVm(const std::map<std::string, std::string>& env,
              const std::string& log, const std::string& token = "") {
    setenv("NAVARCH_AUTH_TOKEN",
           (token.empty() ? env.at("NAVARCH_AUTH_TOKEN") : token).c_str(), 1);
    std::vector<std::string> args = {"--server",
                                     env.at("NAVARCH_SERVER"),
                                     "--node-token-file",
                                     dir_.path() + "/node-token",
                                     "--gpu-backend",
                                     "fake",
                                     "--kmsg",
                                     "",
                                     "--log-format",
                                     "text",
                                     "--metadata-timeout",
                                     "1s"};
    for (absl::string_view a :
         absl::StrSplit(env.at("NAVARCH_AGENT_ARGS"), ' ', absl::SkipEmpty())) {
      args.emplace_back(a);
    }
    agent_ =
        std::make_unique<Process>(testing::BinDir() + "/node-agent", args, log);
  }

  // The VM boots from `env`: its node becomes ACTIVE as `id`, and the agent
  // keeps the node token it was given (returned).
  std::string BootsToActiveNode(const std::map<std::string, std::string>& env,
                                const std::string& id) {
    const std::string agent_log = dir_.path() + "/agent1.log";
    PlayVm(env, agent_log);
    EXPECT_TRUE(
        Eventually([&] { return NodeStatus(id) == "NODE_STATUS_ACTIVE"; }, 30))
        << testing::ReadFile(agent_log) << "\n---\n"
        << Logs();
    const std::string kept = std::string(
        absl::StripAsciiWhitespace(ReadFile(dir_.path() + "/node-token")));
    EXPECT_TRUE(absl::StartsWith(kept, "navarch-node." + id + ".")) << kept;
    return kept;
  }

  // Restarted with a bootstrap token that no longer works: the agent goes
  // on with what it kept, and its heartbeats are taken. Then neither token
  // is in the control plane's log.
  void RestartsWithWhatItKept(const std::map<std::string, std::string>& env,
                              const std::string& id, const std::string& kept) {
    agent_->Signal(SIGTERM);
    agent_->Wait(std::chrono::seconds(20));
    const std::string log = dir_.path() + "/agent2.log";
    PlayVm(env, log, "navarch-boot.1.expired.AAAA");
    EXPECT_TRUE(Eventually(
        [&] {
          return ReadFile(log).find("using the node token kept") !=
                 std::string::npos;
        },
        20))
        << ReadFile(log);
    EXPECT_NE(ReadFile(log).find("node_id=" + id), std::string::npos)
        << ReadFile(log);
    EXPECT_EQ(ReadFile(log).find("nauthenticated"), std::string::npos)
        << ReadFile(log);
    EXPECT_EQ(NodeStatus(id), "NODE_STATUS_ACTIVE");
    const std::string cp_log = ReadFile(log_);
    EXPECT_EQ(cp_log.find(env.at("NAVARCH_AUTH_TOKEN")), std::string::npos);
    EXPECT_EQ(cp_log.find(kept), std::string::npos);
  }

  static std::string ReadFile(const std::string& path) {
    return testing::ReadFile(path);
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

  // The instances the control plane has recorded.
  Json Instances() {
    auto r = http_->Get("/api/v1/instances");
    if (!r || r->status != 200) return Json::array();
    const Json all = Json::parse(r->body, nullptr, false);
    return all.is_array() ? all : Json::array();
  }

  // What to show when something is not as expected.
  std::string Logs() {
    auto events = http_->Get("/api/v1/events?page_size=1000");
    return "--- events ---\n" + (events ? events->body : std::string()) +
           "\n--- control plane log ---\n" + ReadFile(log_);
  }

  TempDir dir_;
  std::string log_, grpc_, http_address_;
  std::unique_ptr<Process> cp_, agent_;
  std::unique_ptr<httplib::Client> http_;
};

// EC2: the agent finds its id in instance metadata. A leaked user data
// script cannot register another VM with its token.
TEST_F(BootstrapE2eTest, Ec2UserDataAloneMakesTheInstanceAnActiveNode) {
  FakeEc2 ec2;
  ASSERT_TRUE(ec2.Start().ok());
  testing::WriteFile(dir_.path() + "/aws-credentials",
                     "[navarch]\naws_access_key_id = AKIDFAKE\n"
                     "aws_secret_access_key = fake-secret-key-123\n");
  StartControlPlane(
      absl::StrReplaceAll(R"(  ec2:
    type: aws
    region: us-east-1
    endpoint: {EC2}
    image_id: ami-0b007
    subnet_ids: {us-east-1a: subnet-a}
    security_group_ids: [sg-1]
    profile: navarch
    credentials_file: {D}/aws-credentials
)",
                          {{"{EC2}", ec2.url()}, {"{D}", dir_.path()}}),
      "ec2");
  ASSERT_TRUE(Eventually([&] { return ec2.instances().size() == 1; }, 20))
      << Logs();
  const FakeEc2::Instance vm = ec2.instances()[0];
  const std::map<std::string, std::string> env =
      CheckedUserData(vm.user_data, "ec2", vm.tags.at("navarch-token"));
  ASSERT_FALSE(HasFailure());
  Metadata(ec2.url(), Nowhere());

  // Another VM (a leaked script) cannot register under another id with it.
  ec2.ImdsSpeaksFor(vm.id);
  const std::string impostor_log = dir_.path() + "/impostor.log";
  {
    std::map<std::string, std::string> other = env;
    other["NAVARCH_AGENT_ARGS"] = "--node-id i-0impostor --pool train";
    PlayVm(other, impostor_log);
    ASSERT_TRUE(Eventually(
        [&] {
          return ReadFile(impostor_log)
                     .find("no instance i-0impostor is known") !=
                 std::string::npos;
        },
        20))
        << ReadFile(impostor_log);
    agent_->Signal(SIGKILL);
    agent_->Wait(std::chrono::seconds(10));
  }
  EXPECT_EQ(NodeStatus("i-0impostor"), "");

  // The VM itself: its id from instance metadata, registered, ACTIVE.
  const std::string kept = BootsToActiveNode(env, vm.id);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(ReadFile(dir_.path() + "/agent1.log")
                .find("from=\"ec2 instance metadata at "),
            std::string::npos)
      << ReadFile(dir_.path() + "/agent1.log");
  RestartsWithWhatItKept(env, vm.id, kept);
}

// GCE: the agent finds its name on the metadata server (GCE_METADATA_HOST);
// the user data is the instance's startup-script.
TEST_F(BootstrapE2eTest, GceUserDataAloneMakesTheInstanceAnActiveNode) {
  testing::FakeGceOptions fo;
  fo.sa_key_pem = testing::GenerateRsaKeyPem();
  testing::FakeGce gce(fo);
  testing::WriteFile(dir_.path() + "/gcp-key.json",
                     gce.ServiceAccountKeyJson());
  StartControlPlane(
      absl::StrReplaceAll(R"(  gcp:
    type: gcp
    project: test-project
    zone: us-central1-a
    endpoint: {GCE}
    credentials_file: {D}/gcp-key.json
    image: projects/test-project/global/images/navarch
)",
                          {{"{GCE}", gce.endpoint()}, {"{D}", dir_.path()}}),
      "gcp");
  ASSERT_TRUE(Eventually([&] { return gce.instances().size() == 1; }, 20))
      << Logs();
  const auto [name, vm] = *gce.instances().begin();
  std::string user_data;
  for (const Json& item : vm["metadata"]["items"]) {
    if (item.value("key", "") == "startup-script") {
      user_data = item.value("value", "");
    }
  }
  const std::map<std::string, std::string> env = CheckedUserData(
      user_data, "gcp", vm["labels"].value("navarch-token", "?"));
  ASSERT_FALSE(HasFailure());
  gce.MetadataSpeaksFor(name);
  Metadata("http://" + Nowhere(), gce.metadata_host());

  const std::string kept = BootsToActiveNode(env, name);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(ReadFile(dir_.path() + "/agent1.log")
                .find("from=\"gce metadata server at " + gce.metadata_host()),
            std::string::npos)
      << ReadFile(dir_.path() + "/agent1.log");
  RestartsWithWhatItKept(env, name, kept);
}

// Lambda: no metadata service, and the instance id exists only once the
// launch has returned. The agent registers with an empty node id and its
// bootstrap token; the control plane registers it as the instance the token
// was minted for, and the agent keeps that id beside its node token.
TEST_F(BootstrapE2eTest, LambdaUserDataAloneMakesTheInstanceAnActiveNode) {
  FakeLambda lambda(RealClock::Default(), kLambdaKey);
  lambda.AddType({"gpu_8x_h100_sxm5",
                  "8x H100 (80 GB SXM5)",
                  "H100 (80 GB SXM5)",
                  2392,
                  208,
                  1800,
                  24780,
                  8,
                  {"us-east-1"}});
  lambda.AddSshKey("ops");
  testing::WriteFile(dir_.path() + "/lambda-key",
                     std::string(kLambdaKey) + "\n");
  StartControlPlane(absl::StrReplaceAll(R"(  lam:
    type: lambda
    api_key_file: {D}/lambda-key
    endpoint: {LAMBDA}
    ssh_key_name: ops
)",
                                        {{"{LAMBDA}", lambda.endpoint()},
                                         {"{D}", dir_.path()}}),
                    "lam", "    region: us-east-1\n");
  ASSERT_TRUE(Eventually([&] { return lambda.launches() == 1; }, 20)) << Logs();
  const Json launch = Json::parse(lambda.launch_bodies()[0]);
  std::string intent;
  for (const Json& tag : launch.value("tags", Json::array())) {
    if (tag.value("key", "") == "navarch-token")
      intent = tag.value("value", "");
  }
  const std::map<std::string, std::string> env =
      CheckedUserData(launch.value("user_data", ""), "lam", intent);
  ASSERT_FALSE(HasFailure());
  // The id the control plane recorded when the launch returned.
  std::string id;
  ASSERT_TRUE(Eventually(
      [&] {
        const Json all = Instances();
        if (all.size() != 1) return false;
        id = all[0].value("instance_id", "");
        return !id.empty();
      },
      20))
      << Logs();

  const std::string kept = BootsToActiveNode(env, id);
  ASSERT_FALSE(HasFailure());
  EXPECT_NE(ReadFile(dir_.path() + "/agent1.log")
                .find("from=\"the control plane (assigned by RegisterNode)\""),
            std::string::npos)
      << ReadFile(dir_.path() + "/agent1.log");
  EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(dir_.path() + "/node-id")), id);
  RestartsWithWhatItKept(env, id, kept);
}

}  // namespace
}  // namespace navarch
