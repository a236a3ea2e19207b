// The node agent as operators run it, against the real control plane:
// build/bin/node-agent --gpu-backend fake --fake-gpus 8 --kmsg FILE, and
// build/bin/control-plane on a fixed port with its SQLite data dir.
// Registration, heartbeats, an XID from the kernel log reaching the control
// plane within a second, the agent finding a SIGKILLed and restarted
// control plane by itself, and --node-id auto taking the id from the fake
// EC2 and Compute Engine metadata services (every metadata address the
// agents see is on loopback).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "navarch/controlplane/test_util.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "navarch/provider/gcp/testing/fake_gce.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::FreePort;

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using testing::Process;
using testing::TempDir;

constexpr char kNode[] = "e2e-gpu-node";

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
    // The agents inherit this environment: any metadata request they make
    // goes to loopback, never to 169.254.169.254 or metadata.google.internal.
    const std::string refused = "127.0.0.1:" + std::to_string(FreePort());
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ("http://" + refused).c_str(),
           1);
    setenv("GCE_METADATA_HOST", refused.c_str(), 1);
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
      req.set_node_id(node_);
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
  std::string node_ = kNode;  // the node WaitForNode reads
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

// --node-id auto on an EC2 instance: the agent asks the instance metadata
// service (FakeEc2's IMDSv2, reached through AWS_EC2_METADATA_SERVICE_ENDPOINT
// as on a real VM through 169.254.169.254) and registers under the
// instance's id, with its zone, region and type.
TEST_F(NodeAgentE2eTest, AutoNodeIdFromInstanceMetadata) {
  FakeEc2 ec2;
  ASSERT_TRUE(ec2.Start().ok());
  FakeEc2::Instance vm;
  vm.id = "i-0e2e00000000000a1";
  vm.instance_type = "p5.48xlarge";
  vm.zone = "us-east-1a";
  vm.state = "running";
  ec2.AddInstance(vm);
  ec2.ImdsSpeaksFor(vm.id);
  setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ec2.url().c_str(), 1);
  StartControlPlane();
  agent_ = std::make_unique<Process>(
      testing::BinDir() + "/node-agent",
      std::vector<std::string>{"--server", "http://" + address_, "--node-id",
                               "auto", "--provider", "aws", "--pool", "e2e",
                               "--gpu-backend", "fake", "--kmsg", "",
                               "--log-format", "text"},
      AgentLog());
  node_ = vm.id;
  NodeInfo node;
  ASSERT_TRUE(WaitForNode(
      [](const NodeInfo& n) { return n.status() == NODE_STATUS_ACTIVE; },
      milliseconds(20000), &node))
      << Logs();
  EXPECT_EQ(node.zone(), "us-east-1a");
  EXPECT_EQ(node.region(), "us-east-1");
  EXPECT_EQ(node.instance_type(), "p5.48xlarge");
  EXPECT_NE(testing::ReadFile(AgentLog()).find("ec2 instance metadata at"),
            std::string::npos)
      << Logs();
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(milliseconds(10000)), 0) << Logs();
}

// --node-id auto on a Compute Engine VM: EC2's IMDS is not there (refused),
// the metadata server (the fake's, through GCE_METADATA_HOST) names the VM.
TEST_F(NodeAgentE2eTest, AutoNodeIdFromTheGceMetadataServer) {
  testing::FakeGceOptions o;
  o.sa_key_pem = testing::GenerateRsaKeyPem();
  testing::FakeGce gce(o);
  gce.AddInstance("europe-west4-a", "navarch-train-7c1d");
  gce.MetadataSpeaksFor("navarch-train-7c1d");
  setenv("GCE_METADATA_HOST", gce.metadata_host().c_str(), 1);
  StartControlPlane();
  agent_ = std::make_unique<Process>(
      testing::BinDir() + "/node-agent",
      std::vector<std::string>{"--server", "http://" + address_, "--node-id",
                               "auto", "--pool", "e2e", "--gpu-backend", "fake",
                               "--kmsg", "", "--log-format", "text"},
      AgentLog());
  node_ = "navarch-train-7c1d";
  NodeInfo node;
  ASSERT_TRUE(WaitForNode(
      [](const NodeInfo& n) { return n.status() == NODE_STATUS_ACTIVE; },
      milliseconds(20000), &node))
      << Logs();
  EXPECT_EQ(node.zone(), "europe-west4-a");
  EXPECT_EQ(node.region(), "europe-west4");
  EXPECT_EQ(node.instance_type(), "a3-highgpu-8g");
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(milliseconds(10000)), 0) << Logs();
}

// No cloud answers: the agent exits 1 at once, saying what it asked.
TEST_F(NodeAgentE2eTest, AutoNodeIdWithoutACloudFailsClearly) {
  Process agent(testing::BinDir() + "/node-agent",
                {"--server", "127.0.0.1:1", "--node-id", "auto",
                 "--node-id-source", "ec2", "--gpu-backend", "fake"},
                AgentLog());
  EXPECT_EQ(agent.Wait(milliseconds(10000)), 1);
  const std::string log = testing::ReadFile(AgentLog());
  EXPECT_NE(log.find("cannot find this node's id (--node-id auto)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("connection refused"), std::string::npos) << log;
}

// mTLS: the agent presents a certificate naming its node and no token; the
// control plane (TLS, client CA, tokens on) accepts it as that node's agent.
// A certificate naming another node may not register this one.
TEST_F(NodeAgentE2eTest, AgentAuthenticatesWithItsCertificate) {
  const std::string d = dir_.path();
  testing::TestCert ca = testing::MakeCa("navarch-e2e-ca");
  testing::TestCert server =
      testing::IssueCert(ca, "control-plane", {"localhost"}, {"127.0.0.1"},
                         /*server=*/true);
  testing::TestCert node = testing::IssueCert(ca, kNode, {}, {}, false);
  testing::TestCert other = testing::IssueCert(ca, "other-node", {}, {}, false);
  testing::TestCert ops = testing::IssueCert(ca, "ops", {}, {}, false);
  for (auto [name, c] :
       {std::pair{"ca", &ca}, std::pair{"server", &server},
        std::pair{"node", &node}, std::pair{"other", &other}}) {
    testing::WriteTestFile(d + "/" + name + ".crt", c->cert_pem);
    testing::WriteTestFile(d + "/" + name + ".key", c->key_pem);
  }
  testing::WriteTestFile(d + "/ops.token", "ops-secret\n");
  std::string yaml = testing::ReadFile(config_);
  yaml += "  tls:\n    cert_file: " + d + "/server.crt\n    key_file: " + d +
          "/server.key\n    client_ca_file: " + d +
          "/ca.crt\nauth:\n  tokens:\n    - {name: ops, token_file: " + d +
          "/ops.token, role: operator}\n";
  testing::WriteFile(config_, yaml);
  StartControlPlane();

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca.cert_pem;
  ssl.pem_cert_chain = ops.cert_pem;
  ssl.pem_private_key = ops.key_pem;
  auto operator_stub = ControlPlaneService::NewStub(
      grpc::CreateChannel(address_, grpc::SslCredentials(ssl)));
  auto status_of = [&]() {
    GetNodeRequest req;
    req.set_node_id(kNode);
    GetNodeResponse resp;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer ops-secret");
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    grpc::Status st = operator_stub->GetNode(&ctx, req, &resp);
    return st.ok() ? resp.node().status() : NODE_STATUS_UNKNOWN;
  };

  // First with another node's certificate: refused, the node never appears.
  agent_ = std::make_unique<Process>(
      testing::BinDir() + "/node-agent",
      std::vector<std::string>{
          "--server", address_, "--node-id", kNode, "--gpu-backend", "fake",
          "--fake-gpus", "2", "--kmsg", "", "--tls-ca-file", d + "/ca.crt",
          "--tls-cert-file", d + "/other.crt", "--tls-key-file",
          d + "/other.key", "--log-format", "text"},
      AgentLog());
  // Wait for the refusal itself rather than for a while.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    const std::string log = testing::ReadFile(AgentLog());
    refused = log.find("registration failed") != std::string::npos &&
              log.find("PERMISSION_DENIED") != std::string::npos;
    if (!refused) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(refused) << Logs();
  EXPECT_EQ(status_of(), NODE_STATUS_UNKNOWN) << Logs();
  agent_->Signal(SIGTERM);
  agent_->Wait(std::chrono::seconds(10));

  agent_ = std::make_unique<Process>(
      testing::BinDir() + "/node-agent",
      std::vector<std::string>{
          "--server", address_, "--node-id", kNode, "--gpu-backend", "fake",
          "--fake-gpus", "2", "--kmsg", "", "--tls-ca-file", d + "/ca.crt",
          "--tls-cert-file", d + "/node.crt", "--tls-key-file", d + "/node.key",
          "--log-format", "text"},
      AgentLog());
  bool active = false;
  for (int i = 0; i < 200 && !active; ++i) {
    active = status_of() == NODE_STATUS_ACTIVE;
    if (!active) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(active) << Logs();
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(std::chrono::seconds(15)), 0);
}

TEST(NodeAgentFlagsTest, TlsFilesNeedATlsAddressAndBothHalves) {
  TempDir dir;
  const std::string log = dir.path() + "/agent.log";
  Process plain(testing::BinDir() + "/node-agent",
                {"--server", "http://127.0.0.1:1", "--gpu-backend", "fake",
                 "--tls-ca-file", "/nonexistent/ca.crt"},
                log);
  EXPECT_EQ(plain.Wait(std::chrono::seconds(10)), 2);
  EXPECT_NE(testing::ReadFile(log).find("http:// (plaintext)"),
            std::string::npos)
      << testing::ReadFile(log);
  const std::string log2 = dir.path() + "/agent2.log";
  Process half(testing::BinDir() + "/node-agent",
               {"--server", "127.0.0.1:1", "--gpu-backend", "fake",
                "--tls-cert-file", "/nonexistent/c.crt"},
               log2);
  EXPECT_EQ(half.Wait(std::chrono::seconds(10)), 2);
  EXPECT_NE(testing::ReadFile(log2).find("both --tls-cert-file and "
                                         "--tls-key-file"),
            std::string::npos)
      << testing::ReadFile(log2);
}

}  // namespace
}  // namespace navarch
