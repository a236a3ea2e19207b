// The navarch binary as operators run it, against a real control plane:
// every command, both output formats, exit codes, and upstream's jq recipes
// on our JSON.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "testing/process.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Process;
using testing::TempDir;

struct Result {
  int code;
  std::string out;
  std::string err;
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

// One control plane for the whole suite (starting one per test would cost
// more than the tests); tests that change a node use a node of their own.
class CliE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string address = StartControlPlane(dir_->path(), &server_);
    ASSERT_FALSE(address.empty())
        << testing::ReadFile(dir_->path() + "/cp.log");
    address_ = new std::string(address);
    stub_ =
        ControlPlaneService::NewStub(
            grpc::CreateChannel(*address_, grpc::InsecureChannelCredentials()))
            .release();

    Register("gpu-1", "gcp", "us-central1", "us-central1-a", "a3-highgpu-8g", 8,
             {{"team", "ml"}, {"pool", "training"}});
    Register("gpu-2", "gcp", "us-central1", "us-central1-b", "a3-highgpu-8g", 8,
             {{"team", "ml"}, {"pool", "training"}});
    Register("aws-1", "aws", "us-east-1", "us-east-1a", "p5.48xlarge", 2,
             {{"team", "infra"}});
    Heartbeat("gpu-1");
    Heartbeat("gpu-2");
    ReportHealthy("gpu-1");
  }

  // Starts a control plane with its data in `dir`; its gRPC address, or ""
  // when it did not come up (its log is dir/cp.log).
  static std::string StartControlPlane(const std::string& dir,
                                       Process** server) {
    std::string config = dir + "/navarch.yaml";
    testing::WriteFile(config,
                       "server:\n  address: \"127.0.0.1:0\"\n"
                       "  data_dir: " +
                           dir + "/data\n");
    std::string ready = dir + "/ready.json";
    *server = new Process(testing::BinDir() + "/control-plane",
                          {"--config", config, "--ready-file", ready},
                          dir + "/cp.log");
    std::string content =
        testing::WaitForFile(ready, **server, std::chrono::seconds(30));
    if (content.empty()) return "";
    return testing::JsonString(content, "grpc_address");
  }

  static void TearDownTestSuite() {
    delete stub_;
    server_->Signal(SIGTERM);
    server_->Wait(std::chrono::seconds(30));
    delete server_;
    delete address_;
    delete dir_;
  }

  static void Register(const std::string& id, const std::string& provider,
                       const std::string& region, const std::string& zone,
                       const std::string& type, int gpus,
                       std::map<std::string, std::string> labels,
                       ControlPlaneService::Stub* stub = nullptr) {
    if (stub == nullptr) stub = stub_;
    RegisterNodeRequest req;
    req.set_node_id(id);
    req.set_provider(provider);
    req.set_region(region);
    req.set_zone(zone);
    req.set_instance_type(type);
    for (int i = 0; i < gpus; ++i) {
      GPUInfo* g = req.add_gpus();
      g->set_index(i);
      g->set_uuid("GPU-" + id + "-" + std::to_string(i));
      g->set_name("NVIDIA H100 80GB HBM3");
      g->set_pci_bus_id("0000:00:0" + std::to_string(4 + i) + ".0");
      g->set_memory_total(85899345920);
    }
    req.mutable_metadata()->set_hostname(id + ".internal");
    for (const auto& [k, v] : labels) {
      (*req.mutable_metadata()->mutable_labels())[k] = v;
    }
    RegisterNodeResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->RegisterNode(&ctx, req, &resp).ok()) << id;
  }

  static void Heartbeat(const std::string& id) {
    HeartbeatRequest req;
    req.set_node_id(id);
    req.mutable_metrics()->set_cpu_usage_percent(12.5);
    req.mutable_metrics()->set_memory_usage_percent(40);
    HeartbeatResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->SendHeartbeat(&ctx, req, &resp).ok()) << id;
  }

  static void ReportHealthy(const std::string& id) {
    ReportHealthRequest req;
    req.set_node_id(id);
    HealthCheckResult* r = req.add_results();
    r->set_check_name("nvml");
    r->set_status(HEALTH_STATUS_HEALTHY);
    ReportHealthResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ReportHealth(&ctx, req, &resp).ok()) << id;
  }

  // Runs the real binary through the shell, so stdout and stderr land in
  // separate files; `env` prefixes the command ("NAVARCH_SERVER=... ").
  Result Shell(const std::string& command) {
    int n = ++runs_;
    std::string out = dir_->path() + "/out" + std::to_string(n);
    std::string err = dir_->path() + "/err" + std::to_string(n);
    Process p("/bin/sh", {"-c", command + " >" + out + " 2>" + err},
              dir_->path() + "/sh.log");
    int code = p.Wait(std::chrono::seconds(30));
    return {code, testing::ReadFile(out), testing::ReadFile(err)};
  }

  std::string Command(const std::vector<std::string>& args,
                      bool with_server = true) {
    // Never the contexts of whoever runs the tests.
    std::string cmd = "exec env -u NAVARCH_SERVER -u NAVARCH_AUTH_TOKEN " +
                      Quote("NAVARCH_CONFIG=" + dir_->path() + "/none.yaml") +
                      " " + Quote(testing::BinDir() + "/navarch");
    if (with_server) cmd += " -s " + Quote(*address_);
    for (const auto& a : args) cmd += " " + Quote(a);
    return cmd;
  }

  Result Navarch(const std::vector<std::string>& args,
                 bool with_server = true) {
    return Shell(Command(args, with_server));
  }

  nlohmann::json Json(const std::vector<std::string>& args) {
    Result r = Navarch(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  std::vector<std::string> Ids(std::vector<std::string> args) {
    args.insert(args.begin(), {"list", "-o", "json"});
    std::vector<std::string> ids;
    for (const auto& n : Json(args)) ids.push_back(n["node_id"]);
    return ids;
  }

  static TempDir* dir_;
  static Process* server_;
  static std::string* address_;
  static ControlPlaneService::Stub* stub_;
  static int runs_;
};

TempDir* CliE2eTest::dir_ = nullptr;
Process* CliE2eTest::server_ = nullptr;
std::string* CliE2eTest::address_ = nullptr;
ControlPlaneService::Stub* CliE2eTest::stub_ = nullptr;
int CliE2eTest::runs_ = 0;

using V = std::vector<std::string>;

TEST_F(CliE2eTest, ListTable) {
  Result r = Navarch({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> lines;
  for (size_t start = 0, end;
       (end = r.out.find('\n', start)) != std::string::npos; start = end + 1) {
    lines.push_back(r.out.substr(start, end - start));
  }
  ASSERT_GE(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0].rfind("NODE ID   PROVIDER   REGION", 0), 0u) << r.out;
  // Columns line up: every row has STATUS where the header has it.
  size_t status_col = lines[0].find("STATUS");
  size_t heartbeat_col = lines[0].find("LAST HEARTBEAT");
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_NE(lines[i][status_col], ' ') << lines[i];
    EXPECT_EQ(lines[i][status_col - 1], ' ') << lines[i];
    EXPECT_NE(lines[i][heartbeat_col], ' ') << lines[i];
  }
  EXPECT_THAT(r.out, HasSubstr("aws-1"));
  EXPECT_THAT(lines[1], HasSubstr("Never"));  // aws-1 never sent one
  EXPECT_THAT(r.out, HasSubstr("s ago"));
  EXPECT_THAT(r.out, HasSubstr("Healthy"));
  EXPECT_THAT(r.out, Not(HasSubstr("\033[")));  // not a terminal
}

TEST_F(CliE2eTest, ListJson) {
  nlohmann::json j = Json({"list", "-o", "json"});
  ASSERT_TRUE(j.is_array());
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& n : j) by_id[n["node_id"]] = n;
  ASSERT_TRUE(by_id.count("gpu-1"));
  const auto& n = by_id["gpu-1"];
  EXPECT_EQ(n["provider"], "gcp");
  EXPECT_EQ(n["region"], "us-central1");
  EXPECT_EQ(n["zone"], "us-central1-a");
  EXPECT_EQ(n["instance_type"], "a3-highgpu-8g");
  EXPECT_EQ(n["health_status"], "HEALTH_STATUS_HEALTHY");
  EXPECT_TRUE(n["last_heartbeat"].is_string());
  EXPECT_EQ(n["gpus"].size(), 8u);
  EXPECT_EQ(n["gpus"][0]["index"], 0);
  EXPECT_EQ(n["metadata"]["labels"]["team"], "ml");
  EXPECT_EQ(n["pool"], "training");
  EXPECT_EQ(by_id["aws-1"]["health_status"], "HEALTH_STATUS_UNKNOWN");

  Result empty = Navarch({"list", "-o", "json", "--provider", "azure"});
  EXPECT_EQ(empty.code, 0);
  EXPECT_EQ(empty.out, "[]\n");
  EXPECT_EQ(Navarch({"list", "--provider", "azure"}).out, "No nodes found\n");
}

TEST_F(CliE2eTest, ListFilters) {
  EXPECT_EQ(Ids({"--provider", "aws"}), V({"aws-1"}));
  EXPECT_EQ(Ids({"--region", "us-central1", "--zone", "us-central1-a"}),
            V({"gpu-1"}));
  EXPECT_EQ(Ids({"--pool", "training", "--label", "team=ml"}),
            V({"gpu-1", "gpu-2"}));
  EXPECT_EQ(Ids({"--label", "team=infra"}), V({"aws-1"}));
  EXPECT_EQ(Ids({"--health", "healthy"}), V({"gpu-1"}));
  EXPECT_EQ(Ids({"--status", "draining", "--provider", "aws"}), V());
  EXPECT_EQ(Ids({"--status", "NODE_STATUS_ACTIVE", "--provider", "aws"}),
            V({"aws-1"}));
}

TEST_F(CliE2eTest, Get) {
  Result r = Navarch({"get", "gpu-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node ID:           gpu-1\n"));
  EXPECT_THAT(r.out, HasSubstr("Pool:              training\n"));
  EXPECT_THAT(r.out, HasSubstr("Status:            Active\n"));
  EXPECT_THAT(r.out, HasSubstr("Health:            Healthy\n"));
  EXPECT_THAT(r.out, HasSubstr("  GPU 7:\n"));
  EXPECT_THAT(r.out, HasSubstr("    Memory:     80 GiB\n"));
  EXPECT_THAT(r.out, HasSubstr("  Hostname: gpu-1.internal\n"));
  EXPECT_THAT(r.out, HasSubstr("  team=ml\n"));
  EXPECT_THAT(r.out, HasSubstr("  CPU:    12.5%\n"));
  nlohmann::json j = Json({"get", "gpu-1", "-o", "json"});
  EXPECT_EQ(j["node_id"], "gpu-1");
  EXPECT_EQ(j["status"], "NODE_STATUS_ACTIVE");
}

TEST_F(CliE2eTest, CordonUncordonDrainWithReason) {
  Register("ops-1", "gcp", "us-central1", "us-central1-c", "a3-highgpu-8g", 1,
           {});
  Heartbeat("ops-1");
  Result r = Navarch({"cordon", "ops-1", "--reason", "fan swap"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node ops-1 cordoned\nCommand ID: "));
  EXPECT_EQ(r.err, "");
  nlohmann::json n = Json({"get", "ops-1", "-o", "json"});
  EXPECT_EQ(n["status"], "NODE_STATUS_CORDONED");
  EXPECT_THAT(n["status_reason"].get<std::string>(), HasSubstr("fan swap"));

  r = Navarch({"uncordon", "ops-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node ops-1 uncordoned\n"));
  EXPECT_EQ(Json({"get", "ops-1", "-o", "json"})["status"],
            "NODE_STATUS_ACTIVE");

  nlohmann::json drained =
      Json({"drain", "ops-1", "--reason", "xid 79", "-o", "json"});
  EXPECT_EQ(drained["node_id"], "ops-1");
  EXPECT_EQ(drained["command_type"], "NODE_COMMAND_TYPE_DRAIN");
  EXPECT_EQ(drained["parameters"]["reason"], "xid 79");
  EXPECT_FALSE(drained["command_id"].get<std::string>().empty());
  n = Json({"get", "ops-1", "-o", "json"});
  EXPECT_EQ(n["status"], "NODE_STATUS_DRAINING");
  EXPECT_THAT(n["status_reason"].get<std::string>(), HasSubstr("xid 79"));

  // Uncordon takes a draining node back to active; a second one is the
  // server's refusal, printed verbatim, once.
  ASSERT_EQ(Navarch({"uncordon", "ops-1"}).code, 0);
  r = Navarch({"uncordon", "ops-1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "Error: node ops-1 is not cordoned (current status: "
            "NODE_STATUS_ACTIVE)\n");

  // The reasons are in the event log.
  nlohmann::json events = Json(
      {"events", "--node", "ops-1", "--kind", "command.issued", "-o", "json"});
  ASSERT_EQ(events.size(), 4u);
  EXPECT_THAT(events[0]["message"].get<std::string>(), HasSubstr("fan swap"));
  EXPECT_THAT(events[2]["message"].get<std::string>(), HasSubstr("xid 79"));
}

TEST_F(CliE2eTest, ActingOnASilentNodeWarns) {
  Result r = Navarch({"cordon", "aws-1"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err,
            "Warning: node aws-1 has never sent a heartbeat (may be "
            "offline)\n");
  EXPECT_EQ(Navarch({"uncordon", "aws-1"}).code, 0);
}

TEST_F(CliE2eTest, TerminateQueuesACommandForTheAgent) {
  Register("doomed-1", "gcp", "us-central1", "us-central1-c", "a3-highgpu-8g",
           1, {});
  Heartbeat("doomed-1");
  Result r = Navarch({"terminate", "doomed-1", "--reason", "retire"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node doomed-1 terminate command queued\n"));
  GetNodeCommandsRequest req;
  req.set_node_id("doomed-1");
  GetNodeCommandsResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetNodeCommands(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.commands_size(), 1);
  EXPECT_EQ(resp.commands(0).type(), NODE_COMMAND_TYPE_TERMINATE);
  EXPECT_EQ(resp.commands(0).parameters().at("reason"), "retire");
}

TEST_F(CliE2eTest, Events) {
  nlohmann::json all = Json({"events", "--node", "gpu-1", "-o", "json"});
  ASSERT_TRUE(all.is_array());
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0]["kind"], "node.registered");
  EXPECT_EQ(all[0]["node_id"], "gpu-1");
  EXPECT_TRUE(all[0]["time"].is_string());

  Result table =
      Navarch({"events", "--kind", "node.registered", "--since", "1h"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("TIME   ", 0), 0u) << table.out;
  EXPECT_THAT(table.out, HasSubstr("node.registered"));
  EXPECT_THAT(table.out, HasSubstr("aws-1"));

  Result limited = Navarch({"events", "--limit", "1", "-o", "json"});
  ASSERT_EQ(limited.code, 0);
  EXPECT_EQ(nlohmann::json::parse(limited.out).size(), 1u);
  EXPECT_THAT(limited.err, HasSubstr("more match"));

  EXPECT_EQ(Json({"events", "--since", "2999-01-01T00:00:00Z", "-o", "json"}),
            nlohmann::json::array());
}

TEST_F(CliE2eTest, ExplainShowsTheDecisionsNewestLast) {
  Register("explain-1", "gcp", "europe-west4", "europe-west4-b",
           "a3-highgpu-8g", 8, {});
  ReportHealthRequest req;
  req.set_node_id("explain-1");
  HealthEvent* e = req.add_events();
  e->set_event_type(HEALTH_EVENT_TYPE_XID);
  e->set_gpu_index(2);
  (*e->mutable_metrics())["xid_code"] = "79";
  e->set_message("GPU has fallen off the bus.");
  ReportHealthResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->ReportHealth(&ctx, req, &resp).ok());

  Result table = Navarch({"explain", "explain-1"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("Node explain-1 is unhealthy"));
  EXPECT_THAT(table.out, HasSubstr("unhealthy by rule fatal-xid"));
  size_t registered = table.out.find("node.registered");
  size_t changed = table.out.find("node.status_changed");
  ASSERT_NE(registered, std::string::npos);
  ASSERT_NE(changed, std::string::npos);
  EXPECT_LT(registered, changed);  // newest last

  nlohmann::json j = Json({"explain", "explain-1", "-o", "json"});
  EXPECT_EQ(j["node"]["status"], "NODE_STATUS_UNHEALTHY");
  ASSERT_TRUE(j["decisions"].is_array());
  EXPECT_EQ(j["decisions"].back()["kind"], "node.status_changed");

  Result missing = Navarch({"explain", "no-such-node"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("node no-such-node not found"));
}

TEST_F(CliE2eTest, PolicyToolsWorkWithoutAServer) {
  std::string events = dir_->path() + "/events.jsonl";
  testing::WriteFile(
      events,
      "{\"event_type\": \"xid\", \"metrics\": {\"xid_code\": 13}}\n"
      "{\"event_type\": \"xid\", \"metrics\": {\"xid_code\": \"79\"}}\n"
      "\n"
      "{\"event_type\": \"thermal\", \"metrics\": {\"temperature\": 88}}\n");
  Result test =
      Navarch({"policy", "test", "--events", events}, /*with_server=*/false);
  ASSERT_EQ(test.code, 0) << test.err;
  EXPECT_EQ(
      test.out,
      "{\"event\":0,\"result\":\"healthy\",\"rule\":\"application-xid\"}\n"
      "{\"event\":1,\"result\":\"unhealthy\",\"rule\":\"fatal-xid\"}\n"
      "{\"event\":2,\"result\":\"degraded\",\"rule\":\"thermal-warning\"}\n");

  std::string strict = dir_->path() + "/strict.yaml";
  testing::WriteFile(
      strict,
      "rules:\n  - {name: all, condition: 'true', result: unhealthy}\n");
  Result custom =
      Navarch({"policy", "test", strict, "--events", events}, false);
  ASSERT_EQ(custom.code, 0) << custom.err;
  EXPECT_THAT(
      custom.out,
      HasSubstr("{\"event\":0,\"result\":\"unhealthy\",\"rule\":\"all\"}"));

  Result check = Navarch({"policy", "check", strict}, false);
  EXPECT_EQ(check.code, 0) << check.err;
  EXPECT_THAT(check.out, HasSubstr("ok (1 rules)"));
  std::string broken = dir_->path() + "/broken.yaml";
  testing::WriteFile(
      broken, "rules:\n  - {name: bad, condition: '1 +', result: healthy}\n");
  Result bad = Navarch({"policy", "check", broken}, false);
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("rule \"bad\""));

  std::string event = dir_->path() + "/xid79.json";
  testing::WriteFile(
      event, "{\"event_type\": \"xid\", \"metrics\": {\"xid_code\": 79}}");
  Result eval = Navarch({"policy", "eval", "event.metrics.xid_code in [48, 79]",
                         "--event", event},
                        false);
  EXPECT_EQ(eval.code, 0) << eval.err;
  EXPECT_EQ(eval.out, "true\n");
  Result empty = Navarch({"policy", "eval", "size(event)"}, false);
  EXPECT_EQ(empty.out, "0\n");
  Result err = Navarch({"policy", "eval", "1 / 0"}, false);
  EXPECT_NE(err.code, 0);
  EXPECT_THAT(err.err, HasSubstr("division by zero"));

  Result def = Navarch({"policy", "default"}, false);
  EXPECT_EQ(def.code, 0);
  EXPECT_THAT(def.out, HasSubstr("name: fatal-xid"));
}

TEST_F(CliE2eTest, InstancesListIsEmpty) {
  Result r = Navarch({"instances", "list", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[]\n");
  EXPECT_EQ(Navarch({"instances", "list"}).out, "No instances found\n");
  r = Navarch({"instances", "get", "i-404"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: instance i-404 not found\n");
}

TEST_F(CliE2eTest, PoolsNeedAControlPlaneWithPools) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"pools", "list"},
           {"pools", "get", "training"},
           {"pools", "scale", "training", "3"}}) {
    Result r = Navarch(args);
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err,
                HasSubstr("Error: this control plane does not serve pools ("));
  }
}

TEST_F(CliE2eTest, ProvidersOfAControlPlaneWithoutAny) {
  Result r = Navarch({"providers", "list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "No providers configured\n");
  r = Navarch({"providers", "list", "-o", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[]\n");
  r = Navarch({"providers", "types", "lambda"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error: provider lambda not found (configured: none)\n");
  EXPECT_EQ(Navarch({"providers", "types"}).code, 2);  // PROVIDER is required
}

TEST_F(CliE2eTest, ClusterStatusOfOneControlPlane) {
  Result r = Navarch({"cluster", "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("One control plane (no replicas)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("leader"), std::string::npos) << r.out;
  r = Navarch({"cluster", "status", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.value("replicated", true)) << r.out;
  ASSERT_EQ(j["replicas"].size(), 1u) << r.out;
  EXPECT_EQ(j.value("leader", ""), j["replicas"][0].value("replica_id", "-"));
  // Its addresses as bound (the test asked for port 0).
  EXPECT_NE(j["replicas"][0].value("grpc_address", ""), "") << r.out;
  EXPECT_EQ(j["replicas"][0].value("grpc_address", "").find(":0"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(j["replicas"][0].value("leader", false)) << r.out;
}

TEST_F(CliE2eTest, MissingNodeExitsOneWithTheServersMessage) {
  Result r = Navarch({"get", "gpu-7"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error: node gpu-7 not found\n");
}

TEST_F(CliE2eTest, BadFlagsExitTwo) {
  Result r = Navarch({"list", "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--bogus"));
  r = Navarch({"list", "-o", "yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("unsupported output format: yaml"));
  EXPECT_EQ(Navarch({"cordon"}).code, 2);
}

TEST_F(CliE2eTest, UnreachableServer) {
  Result r = Navarch({"-s", "127.0.0.1:1", "list"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("Error: cannot reach the control plane at "
                               "127.0.0.1:1"));
}

TEST_F(CliE2eTest, ServerFromTheEnvironmentInUpstreamsUrlForm) {
  Result r = Shell("NAVARCH_SERVER=" + Quote("http://" + *address_) + " " +
                   Quote(testing::BinDir() + "/navarch") + " version");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(reachable)"));
  // The real control plane names its version.
  EXPECT_THAT(r.out, HasSubstr(std::string("server version:  ") +
                               NAVARCH_VERSION + "\n"));
}

// Tokens and roles against a control plane that requires them (its own
// server, beside the suite's open one).
TEST_F(CliE2eTest, TokensAndRoles) {
  TempDir dir;
  setenv("NAVARCH_E2E_OPS_TOKEN", "ops-secret", 1);
  setenv("NAVARCH_E2E_VIEW_TOKEN", "view-secret", 1);
  std::string config = dir.path() + "/navarch.yaml";
  testing::WriteFile(
      config, "server:\n  address: \"127.0.0.1:0\"\n  data_dir: " + dir.path() +
                  "/data\nauth:\n  tokens:\n"
                  "    - {name: ops, token_env: NAVARCH_E2E_OPS_TOKEN, role: "
                  "operator}\n"
                  "    - {name: grafana, token_env: NAVARCH_E2E_VIEW_TOKEN, "
                  "role: viewer}\n");
  std::string ready = dir.path() + "/ready.json";
  Process server(testing::BinDir() + "/control-plane",
                 {"--config", config, "--ready-file", ready},
                 dir.path() + "/cp.log");
  std::string content =
      testing::WaitForFile(ready, server, std::chrono::seconds(30));
  ASSERT_FALSE(content.empty()) << testing::ReadFile(dir.path() + "/cp.log");
  std::string address = testing::JsonString(content, "grpc_address");
  {
    auto stub = ControlPlaneService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    RegisterNodeRequest req;
    req.set_node_id("secure-1");
    RegisterNodeResponse resp;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer ops-secret");
    ASSERT_TRUE(stub->RegisterNode(&ctx, req, &resp).ok());
    HeartbeatRequest hb;
    hb.set_node_id("secure-1");
    HeartbeatResponse hr;
    grpc::ClientContext ctx2;
    ctx2.AddMetadata("authorization", "Bearer ops-secret");
    ASSERT_TRUE(stub->SendHeartbeat(&ctx2, hb, &hr).ok());
  }
  std::string navarch =
      Quote(testing::BinDir() + "/navarch") + " -s " + Quote(address) + " ";
  auto run = [&](const std::string& env, const std::string& args) {
    return Shell("exec env -u NAVARCH_AUTH_TOKEN -u NAVARCH_TOKEN " + env +
                 " " + navarch + args);
  };

  Result r = run("", "list");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: authentication failed: the control plane requires a "
            "token (set --token or NAVARCH_AUTH_TOKEN)\n");
  r = run("", "list --token wrong");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: authentication failed: the control plane rejected the "
            "token (set --token or NAVARCH_AUTH_TOKEN)\n");
  r = run("NAVARCH_AUTH_TOKEN=view-secret", "list -o json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"secure-1\""));
  r = run("NAVARCH_AUTH_TOKEN=view-secret", "cordon secure-1");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "Error: permission denied: viewer:grafana may not call "
            "IssueCommand (needs operator)\n");
  r = run("", "--token ops-secret cordon secure-1 --reason audit");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Node secure-1 cordoned"));
  EXPECT_EQ(run("NAVARCH_AUTH_TOKEN=view-secret", "version").code, 0);
  r = run("", "version");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("authentication failed"));

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0);
}

// Upstream's cli.md recipes, run by jq on our output where jq is installed
// (scripts/install-deps), and the same questions answered with nlohmann.
// Two regions, each its own control plane, and a third that is down: the
// CLI's contexts reach each one, and --all-contexts merges the two that
// answer.
TEST_F(CliE2eTest, ContextsAcrossTwoRegions) {
  TempDir eu_dir;
  Process* raw = nullptr;
  std::string eu = StartControlPlane(eu_dir.path(), &raw);
  std::unique_ptr<Process> eu_server(raw);
  ASSERT_FALSE(eu.empty()) << testing::ReadFile(eu_dir.path() + "/cp.log");
  auto eu_stub = ControlPlaneService::NewStub(
      grpc::CreateChannel(eu, grpc::InsecureChannelCredentials()));
  Register("eu-1", "gcp", "europe-west4", "europe-west4-a", "a3-highgpu-8g", 8,
           {}, eu_stub.get());
  std::string config = dir_->path() + "/contexts.yaml";
  testing::WriteFile(config,
                     "current-context: eu\ncontexts:\n"
                     "  - name: us\n    server: " +
                         *address_ + "\n  - name: eu\n    server: " + eu +
                         "\n  - name: down\n    server: "
                         "127.0.0.1:1\n");

  Result current = Navarch({"--config-file", config, "list"}, false);
  ASSERT_EQ(current.code, 0) << current.err;
  EXPECT_THAT(current.out, HasSubstr("eu-1"));
  EXPECT_THAT(current.out, Not(HasSubstr("gpu-1")));
  Result us =
      Navarch({"--config-file", config, "--context", "us", "list"}, false);
  ASSERT_EQ(us.code, 0) << us.err;
  EXPECT_THAT(us.out, HasSubstr("gpu-1"));
  EXPECT_THAT(us.out, Not(HasSubstr("eu-1")));

  Result all =
      Navarch({"--config-file", config, "list", "--all-contexts"}, false);
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(all.out.rfind("CONTEXT   NODE ID", 0), 0u) << all.out;
  EXPECT_THAT(all.out, HasSubstr("\nus        gpu-1 "));
  EXPECT_THAT(all.out, HasSubstr("\neu        eu-1 "));
  EXPECT_EQ(all.err.rfind("context down: unavailable: cannot reach the "
                          "control plane at 127.0.0.1:1: ",
                          0),
            0u)
      << all.err;
  EXPECT_EQ(std::count(all.err.begin(), all.err.end(), '\n'), 1) << all.err;

  Result json = Navarch(
      {"--config-file", config, "list", "--all-contexts", "-o", "json"}, false);
  ASSERT_EQ(json.code, 0) << json.err;
  std::map<std::string, std::string> context_of;
  for (const auto& n : nlohmann::json::parse(json.out)) {
    context_of[n["node_id"]] = n["context"];
  }
  EXPECT_EQ(context_of["eu-1"], "eu");
  EXPECT_EQ(context_of["gpu-1"], "us");
  eu_server->Signal(SIGTERM);
  EXPECT_EQ(eu_server->Wait(std::chrono::seconds(30)), 0);
}

TEST_F(CliE2eTest, UpstreamJqRecipes) {
  nlohmann::json nodes = Json({"list", "-o", "json"});
  int not_healthy = 0, big = 0, gcp_active = 0;
  std::map<std::string, int> per_region;
  for (const auto& n : nodes) {
    if (n["health_status"] != "HEALTH_STATUS_HEALTHY") ++not_healthy;
    if (n["gpus"].size() > 4) ++big;
    if (n["provider"] == "gcp" && n["status"] == "NODE_STATUS_ACTIVE")
      ++gcp_active;
    ++per_region[n["region"]];
  }
  EXPECT_GE(not_healthy, 2);
  EXPECT_GE(big, 2);
  EXPECT_GE(gcp_active, 1);
  EXPECT_EQ(per_region["us-east-1"], 1);

  if (access("/usr/bin/jq", X_OK) != 0) {
    GTEST_SKIP() << "jq is not installed; checked with nlohmann only";
  }
  auto jq = [&](std::vector<std::string> args, const std::string& filter) {
    args.insert(args.begin(), {"list", "-o", "json"});
    Result r = Shell(Command(args) + " | jq -c " + Quote(filter));
    EXPECT_EQ(r.code, 0) << filter << "\n" << r.err;
    return r.out;
  };
  EXPECT_EQ(jq({"--region", "us-east-1"}, ".[].node_id"), "\"aws-1\"\n");
  EXPECT_THAT(jq({},
                 ".[] | select(.health_status != \"HEALTH_STATUS_HEALTHY\") | "
                 ".node_id"),
              HasSubstr("\"aws-1\""));
  EXPECT_THAT(jq({},
                 "group_by(.region) | map({region: .[0].region, count: "
                 "length})"),
              HasSubstr("{\"region\":\"us-east-1\",\"count\":1}"));
  EXPECT_THAT(jq({},
                 "group_by(.status) | map({status: .[0].status, count: "
                 "length})"),
              HasSubstr("\"status\":\"NODE_STATUS_ACTIVE\""));
  EXPECT_THAT(jq({}, ".[] | select((.gpus | length) > 4) | .node_id"),
              HasSubstr("\"gpu-1\""));
  EXPECT_THAT(jq({},
                 ".[] | select(.provider == \"gcp\" and .status == "
                 "\"NODE_STATUS_ACTIVE\") | .node_id"),
              HasSubstr("\"gpu-1\""));
  EXPECT_EQ(jq({"--zone", "us-central1-a"},
               ".[] | select(.zone == \"us-central1-a\") | .node_id"),
            "\"gpu-1\"\n");
  // Upstream compares the timestamp string with a number, which jq never
  // finds true; with RFC 3339 strings the working form parses them first.
  EXPECT_EQ(jq({},
               "[.[] | select(.last_heartbeat != null) | "
               "select((.last_heartbeat | sub(\"\\\\.[0-9]+\"; \"\") | "
               "fromdateiso8601) < (now - 300))] | length"),
            "0\n");
}

// A fleet of many pages against a real control plane (the memory store, so
// registering is quick): `navarch list` follows the pages to the end. The
// 100,000-node run is in docs/performance.md.
TEST(CliPagingE2eTest, ListPrintsEveryNodeOfAFleetOfManyPages) {
  TempDir dir;
  const std::string config = dir.path() + "/navarch.yaml";
  testing::WriteFile(config,
                     "server:\n  address: \"127.0.0.1:0\"\n"
                     "  http_address: \"127.0.0.1:0\"\n"
                     "storage:\n  backend: memory\n");
  const std::string ready = dir.path() + "/ready.json";
  Process server(testing::BinDir() + "/control-plane",
                 {"--config", config, "--ready-file", ready},
                 dir.path() + "/cp.log");
  const std::string content =
      testing::WaitForFile(ready, server, std::chrono::seconds(30));
  ASSERT_FALSE(content.empty()) << testing::ReadFile(dir.path() + "/cp.log");
  const std::string address = testing::JsonString(content, "grpc_address");
  auto stub = ControlPlaneService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  constexpr int kNodes = 2500;
  std::vector<std::thread> registrars;
  std::atomic<int> failed{0};
  for (int t = 0; t < 10; ++t) {
    registrars.emplace_back([&, t] {
      for (int i = t; i < kNodes; i += 10) {
        RegisterNodeRequest req;
        req.set_node_id("node-" + std::to_string(100000 + i));
        req.add_gpus()->set_index(0);
        RegisterNodeResponse resp;
        grpc::ClientContext ctx;
        if (!stub->RegisterNode(&ctx, req, &resp).ok()) ++failed;
      }
    });
  }
  for (auto& t : registrars) t.join();
  ASSERT_EQ(failed, 0);
  auto run = [&](const std::string& args) {
    const std::string out = dir.path() + "/out";
    Process p("/bin/sh",
              {"-c", "exec env -u NAVARCH_SERVER -u NAVARCH_AUTH_TOKEN " +
                         Quote(testing::BinDir() + "/navarch") + " -s " +
                         Quote(address) + " " + args + " >" + out},
              dir.path() + "/sh.log");
    EXPECT_EQ(p.Wait(std::chrono::seconds(60)), 0);
    return testing::ReadFile(out);
  };
  nlohmann::json nodes =
      nlohmann::json::parse(run("list -o json --page-size 300"));
  ASSERT_EQ(nodes.size(), static_cast<size_t>(kNodes));
  EXPECT_EQ(nodes.front()["node_id"], "node-100000");
  EXPECT_EQ(nodes.back()["node_id"], "node-102499");
  const std::string table = run("list");  // the default page size
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), kNodes + 1);
  server.Signal(SIGTERM);
  server.Wait(std::chrono::seconds(30));
}

}  // namespace
}  // namespace navarch
