// The three clouds at once (issue 16): the real control-plane binary with one
// pool per cloud (lambda, gcp, aws) pointed at the in-process fakes on
// 127.0.0.1, and real node agents started by this test with each instance's
// id as node id. It checks that
//   - every pool fills, its agents register, its nodes become ACTIVE and
//     healthy and its instances RUNNING;
//   - a fatal XID on one node of each cloud gets that node replaced: a new
//     instance is bought at the same cloud and the old one is terminated at
//     the cloud (Lambda: terminating; GCE: deleted; EC2: shutting-down);
//   - capacity moves on: Lambda's first region (no capacity there) to the
//     next, GCE's first zone (ZONE_RESOURCE_POOL_EXHAUSTED) to the next, and
//     a pool whose first cloud answers insufficient-capacity fills from its
//     second; each time the event log has the error with its class, the
//     cloud's code and the region or zone;
//   - no secret (Lambda API keys, the GCP service-account key and the OAuth
//     tokens the fake hands out, the AWS secret key and session token, the
//     API tokens) appears in the control plane's log, its data folder,
//     /metrics or the API's answers, although Lambda, GCE and EC2 each echo
//     one back in an error here.
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "navarch/base/clock.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "navarch/provider/gcp/testing/fake_gce.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::FreePort;

using Json = nlohmann::json;
using std::chrono::steady_clock;
using testing::Process;
using testing::TempDir;

constexpr char kLambdaKey[] = "secret_e2e-lambda-key_7c1d93ab0e";
constexpr char kLambdaFullKey[] = "secret_e2e-lambda-full-key_41f8c2";
constexpr char kAwsKeyId[] = "ASIAE2ECLOUDS0000001";
constexpr char kAwsSecret[] = "e2eAwsSecretKey/9f8E7d6C5b4A3z2Y1x";
constexpr char kAwsSession[] = "FwoGZXIvYXdzEe2eSessionToken/7Hq2Lw9Rt";
constexpr char kOpsToken[] = "ops-e2e-token-5b0c2f9e1a";
constexpr char kAgentToken[] = "agent-e2e-token-c3d7a8e64f";
// The first access token the fake GCE hands out (its tokens are numbered).
constexpr char kFirstGcpToken[] = "ya29.fake-1-sa";
constexpr char kXid79[] =
    "3,2,5000000,-;NVRM: Xid (PCI:0000:18:00): 79, pid=4242, "
    "name=python3, GPU has fallen off the bus.\n";

bool Until(steady_clock::time_point deadline,
           const std::function<bool()>& pred) {
  while (steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

// Everything under `dir`, concatenated: the database, its WAL, anything.
std::string EverythingUnder(const std::string& dir) {
  std::string all;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file()) all += testing::ReadFile(e.path().string());
  }
  return all;
}

// What the test knows of one cloud pool.
struct CloudPool {
  std::string pool;      // lam, gcp, ec2
  std::string provider;  // its provider in the config
};
const CloudPool kPools[] = {{"lam", "lambda"}, {"gcp", "gcp"}, {"ec2", "aws"}};

class CloudsE2eTest : public ::testing::Test {
 protected:
  CloudsE2eTest()
      : lambda_(RealClock::Default(), kLambdaKey),
        lambda_full_(RealClock::Default(), kLambdaFullKey),
        gce_(GceOptions()) {}

  static testing::FakeGceOptions GceOptions() {
    testing::FakeGceOptions o;
    o.sa_key_pem = testing::GenerateRsaKeyPem();
    return o;
  }

  void SetUp() override;
  void TearDown() override {
    if (cp_ != nullptr) cp_->Signal(SIGKILL);
  }
  void SetUpFakes();
  void WriteFiles();
  std::string Config();
  void StartControlPlane();
  void StartAgent(const std::string& id, const CloudPool& p);
  // Starts an agent for each new instance of the cloud pools until each has
  // two; false at the deadline.
  bool FillPools(steady_clock::time_point deadline);
  bool AllActive(std::string* why);
  void CheckReplaced(const std::string& pool, const std::string& provider,
                     const std::string& old_id);
  // The status of node `id` of `pool` ("" when not listed).
  std::string NodeStatus(const std::string& pool, const std::string& id) {
    const Json nodes = Get("/api/v1/nodes?pool=" + pool);
    if (!nodes.is_array()) return "";
    for (const Json& n : nodes) {
      if (n.value("node_id", "") == id) return n.value("status", "");
    }
    return "";
  }
  void CheckFailovers();
  void CheckSecrets(const std::string& answers);

  Json Get(const std::string& path) {
    auto r = http_->Get(path);
    if (!r || r->status != 200) return Json();
    return Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }
  std::string GetBody(const std::string& path) {
    auto r = http_->Get(path);
    return r ? r->body : "";
  }
  // Live instances of `pool` (not TERMINATED or FAILED) by id.
  std::map<std::string, Json> Instances(const std::string& pool) {
    std::map<std::string, Json> out;
    const Json all = Get("/api/v1/instances?pool=" + pool);
    if (!all.is_array()) return out;
    for (const Json& i : all) {
      const std::string state = i.value("state", "");
      if (state == "INSTANCE_STATE_TERMINATED" ||
          state == "INSTANCE_STATE_FAILED") {
        continue;
      }
      out[i.value("instance_id", "")] = i;
    }
    return out;
  }
  Json Events(const std::string& query) {
    const Json e = Get("/api/v1/events?page_size=1000&" + query);
    return e.is_array() ? e : Json::array();
  }
  // What to show when something is not as expected.
  std::string Logs() {
    return "--- instances ---\n" + GetBody("/api/v1/instances") +
           "\n--- events ---\n" + GetBody("/api/v1/events?page_size=1000") +
           "\n--- control plane log ---\n" + testing::ReadFile(log_);
  }
  // The Lambda status of `id`, through the fake's API as a client sees it.
  std::string LambdaStatus(const std::string& id);

  FakeLambda lambda_;
  FakeLambda lambda_full_;  // the first cloud of the multi-cloud pool
  testing::FakeGce gce_;
  FakeEc2 ec2_;
  TempDir dir_;
  std::string config_, log_, grpc_, http_address_;
  std::unique_ptr<Process> cp_;
  std::unique_ptr<httplib::Client> http_;
  std::map<std::string, std::unique_ptr<Process>> agents_;  // by node id
  std::map<std::string, std::string> kmsg_;                 // by node id
};

void CloudsE2eTest::SetUp() {
  // Nothing may reach a real cloud or metadata server.
  for (const char* v :
       {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "GOOGLE_APPLICATION_CREDENTIALS",
        "LAMBDA_API_KEY", "NAVARCH_AUTH_TOKEN"}) {
    unsetenv(v);
  }
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  setenv("GCE_METADATA_HOST", gce_.metadata_host().c_str(), 1);
  SetUpFakes();
  WriteFiles();
}

void CloudsE2eTest::SetUpFakes() {
  const FakeLambda::Type h100{"gpu_8x_h100_sxm5",
                              "8x H100 (80 GB SXM5)",
                              "H100 (80 GB SXM5)",
                              2392,
                              208,
                              1800,
                              24780,
                              8,
                              {"us-east-1"}};
  // Lambda has H100s in us-east-1 only: the pool's first region, us-west-1,
  // is passed over without a launch.
  lambda_.AddType(h100);
  lambda_.AddSshKey("ops");
  // The multi-cloud pool's Lambda lists capacity but its launches fail, and
  // the failure echoes the key (a proxy or a verbose error could).
  lambda_full_.AddType(h100);
  lambda_full_.AddSshKey("ops");
  for (int i = 0; i < 5; ++i) {
    lambda_full_.ForceNext(
        "launch", {400, "", "instance-operations/launch/insufficient-capacity",
                   std::string("Not enough capacity to fulfill launch request "
                               "(authorized by Bearer ") +
                       kLambdaFullKey + ")",
                   ""});
  }
  // GCE's first zone is out of H100s; its error echoes an access token.
  gce_.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                       std::string("The zone does not have enough resources "
                                   "available (caller token ") +
                           kFirstGcpToken + ")"});
  // EC2 accepts the temporary credentials (with their session token) the
  // control plane reads from its credentials file.
  ASSERT_TRUE(ec2_.Start().ok());
  ec2_.SetRoleCredentials("navarch-e2e", kAwsKeyId, kAwsSecret, kAwsSession,
                          "2099-01-01T00:00:00Z");
  // The first terminate is refused with a message that echoes the secret
  // key and the session token; the next tick's succeeds.
  ec2_.FailNext("TerminateInstances", 403, "UnauthorizedOperation",
                std::string("You are not authorized to perform this "
                            "operation (key ") +
                    kAwsKeyId + ", secret " + kAwsSecret + ", session " +
                    kAwsSession + ")");
}

void CloudsE2eTest::WriteFiles() {
  const std::string d = dir_.path();
  testing::WriteFile(d + "/lambda-key", std::string(kLambdaKey) + "\n");
  testing::WriteFile(d + "/lambda-full-key",
                     std::string(kLambdaFullKey) + "\n");
  testing::WriteFile(d + "/gcp-key.json", gce_.ServiceAccountKeyJson());
  testing::WriteFile(d + "/aws-credentials",
                     std::string("[navarch]\naws_access_key_id = ") +
                         kAwsKeyId + "\naws_secret_access_key = " + kAwsSecret +
                         "\naws_session_token = " + kAwsSession + "\n");
  testing::WriteFile(d + "/ops.token", std::string(kOpsToken) + "\n");
  testing::WriteFile(d + "/agent.token", std::string(kAgentToken) + "\n");
  grpc_ = "127.0.0.1:" + std::to_string(FreePort());
  http_address_ = "127.0.0.1:" + std::to_string(FreePort());
  config_ = d + "/navarch.yaml";
  testing::WriteFile(config_, Config());
}

std::string CloudsE2eTest::Config() {
  // Short everything: a replacement takes seconds. Each pool of two keeps
  // its breaker closed with one node unhealthy (50% is not over 50%).
  constexpr char kConfig[] = R"(server:
  address: "{GRPC}"
  http_address: "{HTTP}"
  data_dir: {D}/data
  autoscale_interval: 1s
  heartbeat_interval: 1s
  health_check_interval: 2s
auth:
  tokens:
    - {name: ops, token_file: {D}/ops.token, role: operator}
    - {name: agents, token_file: {D}/agent.token, role: agent}
providers:
  lambda:
    type: lambda
    api_key_file: {D}/lambda-key
    endpoint: {LAMBDA}
    ssh_key_name: ops
  lambda-full:
    type: lambda
    api_key_file: {D}/lambda-full-key
    endpoint: {LAMBDA_FULL}
    ssh_key_name: ops
  gcp:
    type: gcp
    project: test-project
    zone: us-central1-a
    endpoint: {GCE}
    credentials_file: {D}/gcp-key.json
    image: projects/test-project/global/images/navarch
  aws:
    type: aws
    region: us-east-1
    endpoint: {EC2}
    image_id: ami-0e2e
    subnet_ids: {us-east-1a: subnet-a, us-east-1b: subnet-b}
    security_group_ids: [sg-1]
    profile: navarch
    credentials_file: {D}/aws-credentials
defaults:
  health: {unhealthy_after: 1, drain_timeout: 1s}
pools:
  lam:
    providers: [{name: lambda, regions: [us-west-1, us-east-1]}]
    instance_type: h100-8x
    min_nodes: 2
    max_nodes: 2
  gcp:
    provider: gcp
    instance_type: h100-8x
    zones: [us-central1-a, us-central1-b]
    min_nodes: 2
    max_nodes: 2
  ec2:
    provider: aws
    instance_type: h100-8x
    min_nodes: 2
    max_nodes: 2
  burst:
    providers:
      - {name: lambda-full, priority: 1, regions: [us-east-1]}
      - {name: aws, priority: 2, regions: [us-east-1]}
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 1
)";
  return absl::StrReplaceAll(kConfig,
                             {{"{GRPC}", grpc_},
                              {"{HTTP}", http_address_},
                              {"{D}", dir_.path()},
                              {"{LAMBDA}", lambda_.endpoint()},
                              {"{LAMBDA_FULL}", lambda_full_.endpoint()},
                              {"{GCE}", gce_.endpoint()},
                              {"{EC2}", ec2_.url()}});
}

void CloudsE2eTest::StartControlPlane() {
  log_ = dir_.path() + "/cp.log";
  cp_ = std::make_unique<Process>(
      testing::BinDir() + "/control-plane",
      std::vector<std::string>{"--config", config_, "--ready-file",
                               dir_.path() + "/ready"},
      log_);
  http_ = std::make_unique<httplib::Client>("http://" + http_address_);
  http_->set_read_timeout(5, 0);
  http_->set_bearer_token_auth(kOpsToken);
  // The API answers before the first pool tick is over.
  ASSERT_TRUE(Until(steady_clock::now() + std::chrono::seconds(20), [&] {
    return GetBody("/healthz").find("ok") != std::string::npos ||
           Get("/api/v1/pools").is_array();
  })) << Logs();
}

void CloudsE2eTest::StartAgent(const std::string& id, const CloudPool& p) {
  const std::string kmsg = dir_.path() + "/kmsg-" + id;
  testing::WriteFile(kmsg, "6,1,1000,-;Linux version 6.1.0-navarch-e2e\n");
  kmsg_[id] = kmsg;
  // The shared agent token, from the environment as operators give it (never
  // on the command line). The control plane started long before.
  setenv("NAVARCH_AUTH_TOKEN", kAgentToken, 1);
  agents_[id] = std::make_unique<Process>(
      testing::BinDir() + "/node-agent",
      std::vector<std::string>{"--server", "http://" + grpc_, "--node-id", id,
                               "--provider", p.provider, "--pool", p.pool,
                               "--gpu-backend", "fake", "--fake-gpus", "2",
                               "--kmsg", kmsg, "--log-format", "text"},
      dir_.path() + "/agent-" + id + ".log");
  unsetenv("NAVARCH_AUTH_TOKEN");
}

bool CloudsE2eTest::FillPools(steady_clock::time_point deadline) {
  return Until(deadline, [&] {
    lambda_.BootAll();  // Lambda's machines come up
    bool full = true;
    for (const CloudPool& p : kPools) {
      const std::map<std::string, Json> live = Instances(p.pool);
      for (const auto& [id, inst] : live) {
        if (!agents_.contains(id)) StartAgent(id, p);
      }
      full = full && live.size() == 2;
    }
    return full;
  });
}

bool CloudsE2eTest::AllActive(std::string* why) {
  *why = "";
  bool ok = true;
  for (const CloudPool& p : kPools) {
    const Json nodes = Get("/api/v1/nodes?pool=" + p.pool);
    int active = 0;
    if (nodes.is_array()) {
      for (const Json& n : nodes) {
        active += n.value("status", "") == "NODE_STATUS_ACTIVE" &&
                  n.value("health_status", "") == "HEALTH_STATUS_HEALTHY";
      }
    }
    int running = 0;
    for (const auto& [id, i] : Instances(p.pool)) {
      running += i.value("state", "") == "INSTANCE_STATE_RUNNING";
    }
    const Json pool = Get("/api/v1/pools/" + p.pool);
    const int healthy = pool.is_object() ? pool.value("healthy_nodes", 0) : 0;
    *why += p.pool + ": " + std::to_string(active) + " active, " +
            std::to_string(running) + " running, " + std::to_string(healthy) +
            " healthy; ";
    ok = ok && active == 2 && running == 2 && healthy == 2;
  }
  return ok;
}

std::string CloudsE2eTest::LambdaStatus(const std::string& id) {
  const std::string base = lambda_.endpoint();  // http://127.0.0.1:P/api/v1
  const size_t path = base.find("/api/");
  httplib::Client c(base.substr(0, path));
  c.set_bearer_token_auth(kLambdaKey);
  auto r = c.Get(base.substr(path) + "/instances/" + id);
  if (!r || r->status != 200) return "";
  const Json j = Json::parse(r->body, nullptr, false);
  return j.is_object() ? j["data"].value("status", "") : "";
}

// The XID'd node of `pool` is TERMINATED with its instance, a replacement
// was bought at the same cloud, and the cloud has let the old one go.
void CloudsE2eTest::CheckReplaced(const std::string& pool,
                                  const std::string& provider,
                                  const std::string& old_id) {
  const Json replaced =
      Events("pool=" + pool + "&kind=pool.replacement_provisioned");
  ASSERT_EQ(replaced.size(), 1u) << replaced.dump(1);
  const std::string fresh =
      replaced[0]["details"].value("replacement", std::string());
  ASSERT_FALSE(fresh.empty()) << replaced.dump(1);
  const Json inst = Get("/api/v1/instances/" + fresh);
  EXPECT_EQ(inst.value("provider", ""), provider) << inst.dump(1);
  const Json old = Get("/api/v1/instances/" + old_id);
  EXPECT_EQ(old.value("state", ""), "INSTANCE_STATE_TERMINATED") << old.dump(1);
  EXPECT_TRUE(old.contains("terminated_at")) << old.dump(1);  // it went
  if (pool == "lam") {
    EXPECT_EQ(LambdaStatus(old_id), "terminating");
    EXPECT_EQ(lambda_.launches(), 3);  // two, then the replacement
    EXPECT_EQ(LambdaStatus(fresh), "booting");
  } else if (pool == "gcp") {
    const std::map<std::string, Json> vms = gce_.instances();
    EXPECT_FALSE(vms.contains(old_id));  // deleted
    EXPECT_TRUE(vms.contains(fresh));
    EXPECT_EQ(vms.size(), 2u);
  } else {
    int in_pool = 0;
    for (const FakeEc2::Instance& i : ec2_.instances()) {
      if (i.tags.at("pool") != pool) continue;
      ++in_pool;
      if (i.id == old_id) {
        EXPECT_TRUE(i.state == "shutting-down" || i.state == "terminated")
            << i.state;
      }
    }
    EXPECT_EQ(in_pool, 3);
    // The first terminate was refused (its message echoed the secrets).
    EXPECT_FALSE(Events("pool=ec2&kind=pool.terminate_failed")
                     .dump()
                     .find("UnauthorizedOperation") == std::string::npos);
  }
}

TEST_F(CloudsE2eTest, ThreeCloudsFillReplaceFailOverAndKeepTheirSecrets) {
  const auto start = steady_clock::now();
  StartControlPlane();
  if (HasFatalFailure()) return;
  // Lambda launches at most one per 12 s: its second comes 12 s in.
  ASSERT_TRUE(FillPools(start + std::chrono::seconds(45))) << Logs();
  std::string why;
  ASSERT_TRUE(Until(steady_clock::now() + std::chrono::seconds(30),
                    [&] { return AllActive(&why); }))
      << why << "\n"
      << Logs();
  std::cout
      << "three pools full and healthy after "
      << std::chrono::duration<double>(steady_clock::now() - start).count()
      << " s\n";

  // A fatal XID on one node of each cloud.
  std::map<std::string, std::string> victims;  // pool -> node id
  for (const CloudPool& p : kPools) {
    victims[p.pool] = Instances(p.pool).begin()->first;
    std::ofstream(kmsg_.at(victims[p.pool]), std::ios::app) << kXid79;
  }
  ASSERT_TRUE(Until(steady_clock::now() + std::chrono::seconds(45), [&] {
    for (const auto& [pool, id] : victims) {
      if (NodeStatus(pool, id) != "NODE_STATUS_TERMINATED") return false;
      if (Instances(pool).size() != 2) return false;
    }
    return true;
  })) << Logs();
  for (const CloudPool& p : kPools) {
    SCOPED_TRACE(p.pool);
    CheckReplaced(p.pool, p.provider, victims[p.pool]);
  }
  std::cout
      << "replaced after "
      << std::chrono::duration<double>(steady_clock::now() - start).count()
      << " s\n";
  CheckFailovers();

  // What the API, /metrics and the log show; then the data folder.
  std::string answers;
  for (const char* path : {"/api/v1/events?page_size=1000", "/api/v1/instances",
                           "/api/v1/pools", "/api/v1/nodes", "/metrics"}) {
    const std::string body = GetBody(path);
    EXPECT_FALSE(body.empty()) << path;
    answers += body;
  }
  cp_->Signal(SIGTERM);
  EXPECT_EQ(cp_->Wait(std::chrono::seconds(30)), 0) << Logs();
  cp_.reset();
  CheckSecrets(answers);
}

// Each capacity error moved the pool on, and the event says why: the
// class, the cloud's code, the region (and zone).
void CloudsE2eTest::CheckFailovers() {
  auto find = [&](const std::string& pool, const std::string& code) {
    for (const Json& e : Events("pool=" + pool)) {
      if (e.value("message", "").find(code) != std::string::npos &&
          e.value("kind", "") != "pool.provision_requested") {
        return e;
      }
    }
    return Json();
  };
  // Lambda: no capacity in us-west-1 (seen in GET /instance-types, so no
  // launch was spent), the pool's instances are in us-east-1.
  const Json lam = find("lam", "insufficient-capacity");
  EXPECT_NE(lam.dump().find("us-west-1"), std::string::npos) << lam.dump(1);
  EXPECT_EQ(lam["details"].value("error_class", ""), "capacity") << lam.dump(1);
  for (const auto& [id, i] : Instances("lam")) {
    EXPECT_EQ(i.value("region", ""), "us-east-1") << i.dump(1);
  }
  // GCE: us-central1-a was exhausted, the pool went to us-central1-b.
  const Json gcp = find("gcp", "ZONE_RESOURCE_POOL_EXHAUSTED");
  EXPECT_NE(gcp.dump().find("us-central1-a"), std::string::npos) << gcp.dump(1);
  EXPECT_EQ(gcp["details"].value("error_class", ""), "capacity") << gcp.dump(1);
  EXPECT_EQ(gce_.insert_calls(), 4);  // one refused, two, one replacement
  // The multi-cloud pool: Lambda refused (its code, us-east-1), EC2 sold.
  const Json burst = find("burst",
                          "instance-operations/launch/"
                          "insufficient-capacity");
  EXPECT_NE(burst.dump().find("us-east-1"), std::string::npos) << burst.dump(1);
  EXPECT_NE(burst.dump().find("lambda-full"), std::string::npos)
      << burst.dump(1);
  EXPECT_EQ(burst["details"].value("error_class", ""), "capacity")
      << burst.dump(1);
  // The operator sees the same through the CLI.
  const std::string out = dir_.path() + "/navarch-events.txt";
  Process cli(testing::BinDir() + "/navarch",
              {"--server", grpc_, "--token", kOpsToken, "events", "--pool",
               "burst", "--kind", "pool.provision_failover"},
              out);
  EXPECT_EQ(cli.Wait(std::chrono::seconds(20)), 0) << testing::ReadFile(out);
  const std::string table = testing::ReadFile(out);
  for (const char* want :
       {"pool.provision_failover", "lambda-full us-east-1",
        "instance-operations/launch/insufficient-capacity"}) {
    EXPECT_NE(table.find(want), std::string::npos) << want << "\n" << table;
  }
  const std::map<std::string, Json> bought = Instances("burst");
  ASSERT_EQ(bought.size(), 1u);
  EXPECT_EQ(bought.begin()->second.value("provider", ""), "aws");
  EXPECT_EQ(lambda_full_.launches(), 0);
  EXPECT_GE(lambda_full_.calls("launch"), 1);
}

void CloudsE2eTest::CheckSecrets(const std::string& answers) {
  std::map<std::string, std::string> secrets = {
      {"lambda key", kLambdaKey},        {"lambda-full key", kLambdaFullKey},
      {"aws secret key", kAwsSecret},    {"aws session token", kAwsSession},
      {"ops token", kOpsToken},          {"agent token", kAgentToken},
      {"gcp private key", "PRIVATE KEY"}};
  // A line from the middle of the PEM, in case it was copied without its
  // header.
  const std::string& pem = gce_.options().sa_key_pem;
  const size_t mid = pem.find('\n', pem.size() / 2);
  secrets["gcp private key body"] = pem.substr(mid + 1, 40);
  const std::vector<std::string> tokens = gce_.issued_tokens();
  ASSERT_FALSE(tokens.empty());
  EXPECT_EQ(tokens[0], kFirstGcpToken);
  for (const std::string& t : tokens) secrets["gcp token " + t] = t;
  const std::string log = testing::ReadFile(log_);
  const std::string data = EverythingUnder(dir_.path() + "/data");
  ASSERT_FALSE(log.empty());
  ASSERT_FALSE(data.empty());
  // The echoes were recorded (redacted), so the checks below mean something.
  EXPECT_NE(answers.find("[redacted]"), std::string::npos);
  for (const auto& [what, secret] : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << what << " in the log";
    EXPECT_EQ(data.find(secret), std::string::npos)
        << what << " in the data folder";
    EXPECT_EQ(answers.find(secret), std::string::npos)
        << what << " in an API answer or /metrics";
  }
}

}  // namespace
}  // namespace navarch
