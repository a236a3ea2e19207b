// From a bought VM to a registered node by SSH bootstrap, for real, on each
// cloud: the control plane (the real binary) buys an instance from FakeLambda,
// FakeGce and FakeEc2, each of whose addresses is a real OpenSSH server on
// this machine (tests/testing/sshd.h); each pool's setup_commands, run over
// SSH with the host key checked (known_hosts on EC2, trust on first use on
// the others), start the real node-agent with the instance's id and a
// bootstrap token, and the node becomes ACTIVE. A pool whose command fails
// gets its instance failed and terminated at the cloud, with the step's
// output kept and shown by `navarch instances get`, and replaced. No token
// is stored in the instance's record or the control plane's log.
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "navarch/provider/gcp/testing/fake_gce.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "testing/process.h"
#include "testing/sshd.h"

namespace navarch {
namespace {

using Json = nlohmann::json;
using testing::Eventually;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

constexpr char kOpsToken[] = "ops-ssh-bootstrap-e2e-token-5be1";
constexpr char kLambdaKey[] = "secret_ssh-e2e-lambda-key_0b7e";
constexpr char kNodeKey[] =
    "55b007a9e2e0c0ffee1234567890abcdef1234567890abcdef1234567890abcd";

// Every instance "is" this machine, where the test's sshd listens.
FakeEc2Options Ec2Options() {
  FakeEc2Options o;
  o.private_ip = "127.0.0.1";
  return o;
}
testing::FakeGceOptions GceOptions() {
  testing::FakeGceOptions o;
  o.sa_key_pem = testing::GenerateRsaKeyPem();
  o.instance_ip = "127.0.0.1";
  return o;
}

// The pools that start an agent, one per cloud.
constexpr const char* kAgentPools[] = {"lam", "gcp", "ec2"};

class SshBootstrapE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ec2_.Start().ok());
    lambda_.AddType({"gpu_8x_h100_sxm5",
                     "8x H100 (80 GB SXM5)",
                     "H100 (80 GB SXM5)",
                     2392,
                     208,
                     1800,
                     24780,
                     8,
                     {"us-east-1"}});
    lambda_.AddSshKey("ops");
    lambda_.SetInstanceIp("127.0.0.1");
    for (const char* v :
         {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_SHARED_CREDENTIALS_FILE",
          "NAVARCH_AUTH_TOKEN", "NAVARCH_NODE_TOKEN_FILE",
          "GOOGLE_APPLICATION_CREDENTIALS", "LAMBDA_API_KEY"}) {
      unsetenv(v);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("GCE_METADATA_HOST", gce_.metadata_host().c_str(), 1);
    const std::string d = dir_.path();
    testing::WriteFile(d + "/lambda-key", std::string(kLambdaKey) + "\n");
    testing::WriteFile(d + "/gcp-key.json", gce_.ServiceAccountKeyJson());
    testing::WriteFile(d + "/aws-credentials",
                       "[navarch]\naws_access_key_id = AKIDFAKE\n"
                       "aws_secret_access_key = fake-secret-key-123\n");
    testing::WriteFile(d + "/ops.token", std::string(kOpsToken) + "\n");
    testing::WriteFile(d + "/node.key", std::string(kNodeKey) + "\n");
    testing::WriteFile(d + "/known_hosts", sshd_.KnownHostsLine() + "\n");
    grpc_ = "127.0.0.1:" + std::to_string(FreePort());
    http_address_ = "127.0.0.1:" + std::to_string(FreePort());
    config_ = d + "/navarch.yaml";
    testing::WriteFile(config_, Config());
  }
  void TearDown() override {
    if (cp_ != nullptr) cp_->Signal(SIGKILL);
    // The agents the setup commands started, by the pid files they wrote.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path(), ec)) {
      if (e.path().extension() != ".pid") continue;
      int pid = 0;
      if (absl::SimpleAtoi(
              absl::StripAsciiWhitespace(testing::ReadFile(e.path().string())),
              &pid) &&
          pid > 1) {
        kill(pid, SIGKILL);
      }
    }
    unsetenv("AWS_EC2_METADATA_DISABLED");
    unsetenv("GCE_METADATA_HOST");
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
  lambda:
    type: lambda
    api_key_file: {D}/lambda-key
    endpoint: {LAMBDA}
    ssh_key_name: ops
  gcp:
    type: gcp
    project: test-project
    zone: us-central1-a
    endpoint: {GCE}
    credentials_file: {D}/gcp-key.json
    image: projects/test-project/global/images/navarch
  ec2:
    type: aws
    region: us-east-1
    endpoint: {EC2}
    image_id: ami-0b007
    subnet_ids: {us-east-1a: subnet-a}
    security_group_ids: [sg-1]
    profile: navarch
    credentials_file: {D}/aws-credentials
defaults:
  ssh_user: {USER}
  ssh_private_key_path: {KEY}
  ssh_port: {PORT}
  ssh_timeout: 20s
  ssh_connect_timeout: 5s
  command_timeout: 10s
pools:
  lam:
    providers: [{name: lambda, regions: [us-east-1]}]
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
    setup_commands: &agent
      - echo setting up {{.NodeID}} of {{.Pool}}
      - nohup {BIN}/node-agent --server {{.ControlPlane}} --node-id {{.NodeID}} --pool {{.Pool}} --provider {{.Provider}} --auth-token {{.BootstrapToken}} --node-token-file {D}/{{.NodeID}}.token --gpu-backend fake --kmsg '' --log-format text >{D}/{{.NodeID}}.log 2>&1 </dev/null & echo $! >{D}/{{.NodeID}}.pid
  gcp:
    provider: gcp
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
    setup_commands: *agent
  ec2:
    provider: ec2
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
    setup_commands: *agent
    ssh_host_key_policy: known_hosts
    ssh_known_hosts_file: {D}/known_hosts
  broken:
    provider: ec2
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
    setup_commands:
      - echo about to fail; echo on stderr >&2; exit 3
      - echo never runs
)";
    return absl::StrReplaceAll(kConfig,
                               {{"{GRPC}", grpc_},
                                {"{HTTP}", http_address_},
                                {"{D}", dir_.path()},
                                {"{EC2}", ec2_.url()},
                                {"{LAMBDA}", lambda_.endpoint()},
                                {"{GCE}", gce_.endpoint()},
                                {"{USER}", sshd_.user()},
                                {"{KEY}", sshd_.client_key_path()},
                                {"{PORT}", std::to_string(sshd_.port())},
                                {"{BIN}", testing::BinDir()}});
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

  Json Instances(const std::string& pool) {
    auto r = http_->Get("/api/v1/instances?pool=" + pool);
    if (!r || r->status != 200) return Json::array();
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_array() ? j : Json::array();
  }
  std::string NodeStatus(const std::string& id) {
    auto r = http_->Get("/api/v1/nodes/" + id);
    if (!r || r->status != 200) return "";
    return Json::parse(r->body, nullptr, false).value("status", "");
  }
  std::string Logs() {
    auto events = http_->Get("/api/v1/events?page_size=1000");
    return "--- events ---\n" + (events ? events->body : std::string()) +
           "\n--- control plane log ---\n" + testing::ReadFile(log_) +
           "\n--- sshd ---\n" + sshd_.Log();
  }

  testing::Sshd sshd_;
  FakeEc2 ec2_{Ec2Options()};
  FakeLambda lambda_{RealClock::Default(), kLambdaKey};
  testing::FakeGce gce_{GceOptions()};
  TempDir dir_;
  std::string config_, log_, grpc_, http_address_;
  std::unique_ptr<Process> cp_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(SshBootstrapE2eTest, SetupCommandsTakeTheInstanceToAnActiveNode) {
  StartControlPlane();
  // Each cloud's pool: bootstrapped over SSH, its agent registers under the
  // instance's id.
  std::map<std::string, std::string> ids;  // pool -> instance id
  ASSERT_TRUE(Eventually(
      [&] {
        lambda_.BootAll();  // Lambda's machines come up
        for (const char* pool : kAgentPools) {
          for (const Json& i : Instances(pool)) {
            if (i.value("state", "") == "INSTANCE_STATE_RUNNING") {
              ids[pool] = i.value("instance_id", "");
            }
          }
        }
        for (const char* pool : kAgentPools) {
          if (!ids.contains(pool) ||
              NodeStatus(ids[pool]) != "NODE_STATUS_ACTIVE") {
            return false;
          }
        }
        return true;
      },
      90))
      << Logs();
  for (const char* pool : kAgentPools) {
    SCOPED_TRACE(pool);
    const std::string& id = ids[pool];
    const Json inst = Instances(pool)[0];
    const Json& b = inst.at("bootstrap");
    EXPECT_EQ(b.value("state", ""), "BOOTSTRAP_STATE_SUCCEEDED") << inst.dump();
    EXPECT_EQ(b.value("host", ""), "127.0.0.1:" + std::to_string(sshd_.port()));
    EXPECT_EQ(b.value("host_key_fingerprint", ""),
              sshd_.host_key_fingerprint());
    EXPECT_EQ(b.value("host_key_policy", ""),
              std::string(pool) == "ec2" ? "known_hosts" : "tofu");
    ASSERT_EQ(b.at("steps").size(), 2u);
    EXPECT_EQ(b.at("steps")[0].value("stdout_text", ""),
              "setting up " + id + " of " + pool + "\n");
    // The template is kept, not the token it was rendered with.
    EXPECT_NE(b.at("steps")[1].value("command", "").find("{{.BootstrapToken}}"),
              std::string::npos);
    EXPECT_EQ(inst.dump().find("navarch-boot."), std::string::npos);
  }

  // broken: failed, terminated at the cloud, replaced; the output is kept.
  std::string failed_id;
  ASSERT_TRUE(Eventually(
      [&] {
        for (const Json& i : Instances("broken")) {
          if (i.value("state", "") == "INSTANCE_STATE_FAILED" &&
              i.contains("terminated_at")) {
            failed_id = i.value("instance_id", "");
          }
        }
        return !failed_id.empty() && Instances("broken").size() >= 2;
      },
      60))
      << Logs();
  bool terminated_at_cloud = false;
  for (const auto& i : ec2_.instances()) {
    if (i.id == failed_id) terminated_at_cloud = i.state != "running";
  }
  EXPECT_TRUE(terminated_at_cloud);
  std::string out;
  ASSERT_EQ(testing::RunProgram(testing::BinDir() + "/navarch",
                                {"--server", grpc_, "--token", kOpsToken,
                                 "instances", "get", failed_id},
                                &out),
            0)
      << out;
  EXPECT_NE(out.find("Bootstrap: failed"), std::string::npos) << out;
  EXPECT_NE(out.find("exit 3"), std::string::npos) << out;
  EXPECT_NE(out.find("about to fail"), std::string::npos) << out;
  EXPECT_NE(out.find("on stderr"), std::string::npos) << out;
  EXPECT_EQ(out.find("never runs"), std::string::npos) << out;
  ASSERT_EQ(testing::RunProgram(
                testing::BinDir() + "/navarch",
                {"--server", grpc_, "--token", kOpsToken, "explain", failed_id},
                &out),
            0)
      << out;
  EXPECT_NE(out.find("instance.bootstrap_failed"), std::string::npos) << out;

  // No bootstrap token anywhere the control plane wrote.
  EXPECT_EQ(testing::ReadFile(log_).find("navarch-boot."), std::string::npos);
}

}  // namespace
}  // namespace navarch
