// The whole CLI in-process against a fake control plane: flags, exit codes,
// table and JSON output, the token on the wire, TLS, errors printed once.
#include "navarch/cli/app.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "navarch/api/time_util.h"
#include "navarch/base/clock.h"
#include "navarch/base/file.h"
#include "navarch/control_plane.grpc.pb.h"
#include "navarch/controlplane/test_util.h"
#include "nlohmann/json.hpp"

namespace navarch::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1767225600;  // FakeClock's default start

// Enough of the control plane for the CLI: nodes, commands, instances and an
// event log with pages; an optional required token; no pool RPCs (gRPC
// answers UNIMPLEMENTED for them, as the real server does today).
class FakeControlPlane final : public ControlPlaneService::Service {
 public:
  void AddNode(NodeInfo n) {
    absl::MutexLock l(&mu_);
    nodes_[n.node_id()] = std::move(n);
  }
  void AddInstance(InstanceInfo i) {
    absl::MutexLock l(&mu_);
    instances_.push_back(std::move(i));
  }
  void AddEvents(int n) {
    absl::MutexLock l(&mu_);
    for (int i = 0; i < n; ++i) {
      Event e;
      e.set_id(static_cast<int64_t>(events_.size()) + 1);
      *e.mutable_time() = ToTimestamp(absl::FromUnixSeconds(kNow - 600 + i));
      e.set_kind("node.registered");
      e.set_node_id(absl::StrCat("n", i));
      e.set_actor("node");
      e.set_message("registered");
      events_.push_back(e);
    }
  }
  // Once a pool is added, ListPools answers (before: UNIMPLEMENTED).
  void AddPool(PoolInfo p) {
    absl::MutexLock l(&mu_);
    pools_.push_back(std::move(p));
  }
  void RequireToken(std::string token) {
    absl::MutexLock l(&mu_);
    token_ = std::move(token);
  }
  void DenyCommands() {
    absl::MutexLock l(&mu_);
    deny_commands_ = true;
  }
  // GetNode of node "slow" waits until this is notified (deadline tests).
  absl::Notification release_slow;

  // Sent as the "navarch-version" response header of GetNode when set.
  std::string version_header;
  ListNodesRequest last_list;
  ListEventsRequest last_events;
  std::vector<IssueCommandRequest> commands;
  int event_calls = 0;
  int list_calls = 0;
  int instance_calls = 0;

  grpc::Status ListNodes(grpc::ServerContext* ctx, const ListNodesRequest* req,
                         ListNodesResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    last_list = *req;
    ++list_calls;
    // Pages as the real server does: by node id, the token the last id.
    auto it = req->page_token().empty() ? nodes_.begin()
                                        : nodes_.upper_bound(req->page_token());
    for (; it != nodes_.end(); ++it) {
      const NodeInfo& n = it->second;
      if (!req->provider().empty() && n.provider() != req->provider()) continue;
      if (!req->region().empty() && n.region() != req->region()) continue;
      if (req->status() != 0 && n.status() != req->status()) continue;
      if (req->page_size() > 0 && resp->nodes_size() == req->page_size()) {
        resp->set_next_page_token(
            resp->nodes(resp->nodes_size() - 1).node_id());
        break;
      }
      *resp->add_nodes() = n;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetNode(grpc::ServerContext* ctx, const GetNodeRequest* req,
                       GetNodeResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    // As the real control plane names itself to authenticated callers.
    if (!version_header.empty()) {
      ctx->AddInitialMetadata("navarch-version", version_header);
    }
    if (req->node_id() == "slow") {
      release_slow.WaitForNotificationWithTimeout(absl::Seconds(10));
    }
    if (req->node_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "node_id is required");
    }
    absl::MutexLock l(&mu_);
    auto it = nodes_.find(req->node_id());
    if (it == nodes_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("node ", req->node_id(), " not found"));
    }
    *resp->mutable_node() = it->second;
    return grpc::Status::OK;
  }

  grpc::Status IssueCommand(grpc::ServerContext* ctx,
                            const IssueCommandRequest* req,
                            IssueCommandResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    if (deny_commands_) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "viewer:grafana may not call IssueCommand (needs "
                          "operator)");
    }
    commands.push_back(*req);
    resp->set_command_id(absl::StrCat("cmd-", commands.size()));
    *resp->mutable_issued_at() = ToTimestamp(absl::FromUnixSeconds(kNow));
    return grpc::Status::OK;
  }

  grpc::Status ListInstances(grpc::ServerContext* ctx,
                             const ListInstancesRequest* req,
                             ListInstancesResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    ++instance_calls;
    // The token is the index of the next instance.
    size_t start = 0;
    if (!req->page_token().empty()) start = std::stoul(req->page_token());
    for (size_t k = start; k < instances_.size(); ++k) {
      const InstanceInfo& i = instances_[k];
      if (!req->pool_name().empty() && i.pool_name() != req->pool_name())
        continue;
      if (req->state() != 0 && i.state() != req->state()) continue;
      if (req->page_size() > 0 && resp->instances_size() == req->page_size()) {
        resp->set_next_page_token(absl::StrCat(k));
        break;
      }
      *resp->add_instances() = i;
    }
    return grpc::Status::OK;
  }

  grpc::Status GetInstance(grpc::ServerContext* ctx,
                           const GetInstanceRequest* req,
                           GetInstanceResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    for (const auto& i : instances_) {
      if (i.instance_id() == req->instance_id()) {
        *resp->mutable_instance() = i;
        return grpc::Status::OK;
      }
    }
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("instance ", req->instance_id(), " not found"));
  }

  grpc::Status ListEvents(grpc::ServerContext* ctx,
                          const ListEventsRequest* req,
                          ListEventsResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    ++event_calls;
    last_events = *req;
    int64_t after =
        req->page_token().empty() ? 0 : std::stoll(req->page_token());
    int size = req->page_size() == 0 ? 100 : req->page_size();
    for (const auto& e : events_) {
      if (e.id() <= after) continue;
      if (resp->events_size() == size) {
        resp->set_next_page_token(
            absl::StrCat(resp->events(resp->events_size() - 1).id()));
        break;
      }
      *resp->add_events() = e;
    }
    return grpc::Status::OK;
  }

  grpc::Status ListPools(grpc::ServerContext* ctx, const ListPoolsRequest*,
                         ListPoolsResponse* resp) override {
    if (auto s = Auth(ctx); !s.ok()) return s;
    absl::MutexLock l(&mu_);
    if (pools_.empty()) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no pools");
    }
    for (const PoolInfo& p : pools_) *resp->add_pools() = p;
    return grpc::Status::OK;
  }

 private:
  grpc::Status Auth(grpc::ServerContext* ctx) {
    absl::MutexLock l(&mu_);
    if (token_.empty()) return grpc::Status::OK;
    auto it = ctx->client_metadata().find("authorization");
    if (it == ctx->client_metadata().end() ||
        std::string(it->second.data(), it->second.size()) !=
            "Bearer " + token_) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
    }
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  std::map<std::string, NodeInfo> nodes_;
  std::vector<InstanceInfo> instances_;
  std::vector<Event> events_;
  std::vector<PoolInfo> pools_;
  std::string token_;
  bool deny_commands_ = false;
};

NodeInfo Node(const std::string& id, const std::string& provider,
              const std::string& zone, NodeStatus status, HealthStatus health,
              int gpus, int64_t heartbeat_ago_s) {
  NodeInfo n;
  n.set_node_id(id);
  n.set_provider(provider);
  // us-central1-a -> us-central1; us-east-1a -> us-east-1
  n.set_region(zone[zone.size() - 2] == '-' ? zone.substr(0, zone.size() - 2)
                                            : zone.substr(0, zone.size() - 1));
  n.set_zone(zone);
  n.set_instance_type(provider == "gcp" ? "a3-highgpu-8g" : "p5.48xlarge");
  n.set_status(status);
  n.set_health_status(health);
  n.set_pool(provider == "gcp" ? "training" : "inference");
  if (heartbeat_ago_s >= 0) {
    *n.mutable_last_heartbeat() =
        ToTimestamp(absl::FromUnixSeconds(kNow - heartbeat_ago_s));
  }
  for (int i = 0; i < gpus; ++i) {
    GPUInfo* g = n.add_gpus();
    g->set_index(i);
    g->set_uuid(absl::StrCat("GPU-", id, "-", i));
    g->set_name("NVIDIA H100 80GB HBM3");
    g->set_pci_bus_id(absl::StrCat("0000:00:0", 4 + i, ".0"));
    g->set_memory_total(85899345920);
  }
  (*n.mutable_metadata()->mutable_labels())["team"] =
      provider == "gcp" ? "ml" : "infra";
  return n;
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("NAVARCH_SERVER");
    unsetenv("NAVARCH_AUTH_TOKEN");
    unsetenv("NAVARCH_TOKEN");
    // Never the operator's own contexts: a file of the test's (none yet).
    std::string tmpl = ::testing::TempDir() + "/navarch_app_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    config_dir_ = tmpl;
    config_path_ = config_dir_ + "/config.yaml";
    setenv("NAVARCH_CONFIG", config_path_.c_str(), 1);
    fake_.AddNode(Node("gpu-2", "gcp", "us-central1-a", NODE_STATUS_ACTIVE,
                       HEALTH_STATUS_HEALTHY, 8, 30));
    fake_.AddNode(Node("gpu-1", "gcp", "us-central1-b", NODE_STATUS_CORDONED,
                       HEALTH_STATUS_DEGRADED, 2, 45));
    fake_.AddNode(Node("aws-1", "aws", "us-east-1a", NODE_STATUS_UNHEALTHY,
                       HEALTH_STATUS_UNHEALTHY, 1, -1));
    Start(grpc::InsecureServerCredentials());
  }

  void TearDown() override {
    if (!fake_.release_slow.HasBeenNotified()) fake_.release_slow.Notify();
    if (server_) server_->Shutdown();
    std::filesystem::remove_all(config_dir_);
  }

  void Start(std::shared_ptr<grpc::ServerCredentials> creds) {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", creds, &port);
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }

  // Runs navarch against the fake (unless args name a server themselves).
  Result Navarch(std::vector<std::string> args, bool with_server = true) {
    if (with_server) args.insert(args.begin(), {"-s", address_});
    std::ostringstream out, err;
    int code = cli::Run(args, out, err, clock_);
    return {code, out.str(), err.str()};
  }

  void WriteConfig(const std::string& yaml) {
    testing::WriteTestFile(config_path_, yaml);
  }

  FakeClock clock_;
  FakeControlPlane fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string config_dir_;
  std::string config_path_;
};

TEST_F(AppTest, ListPrintsAnAlignedTableSortedByNodeId) {
  Result r = Navarch({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "NODE ID   PROVIDER   REGION        ZONE            INSTANCE TYPE  "
            " STATUS      HEALTH      LAST HEARTBEAT   GPUs\n"
            "aws-1     aws        us-east-1     us-east-1a      p5.48xlarge    "
            " Unhealthy   Unhealthy   Never            1\n"
            "gpu-1     gcp        us-central1   us-central1-b   a3-highgpu-8g  "
            " Cordoned    Degraded    45s ago          2\n"
            "gpu-2     gcp        us-central1   us-central1-a   a3-highgpu-8g  "
            " Active      Healthy     30s ago          8\n");
}

TEST_F(AppTest, RelativeTimesFollowTheClock) {
  clock_.Advance(absl::Minutes(3));
  Result r = Navarch({"list", "--zone", "us-central1-a"});
  EXPECT_THAT(r.out, HasSubstr("3m ago"));
  clock_.Advance(absl::Hours(5));
  r = Navarch({"list", "--zone", "us-central1-a"});
  EXPECT_THAT(r.out, HasSubstr("5h ago"));
}

TEST_F(AppTest, ListJsonIsAnArrayWithUpstreamNames) {
  Result r = Navarch({"list", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["node_id"], "aws-1");
  EXPECT_EQ(j[2]["node_id"], "gpu-2");
  EXPECT_EQ(j[2]["status"], "NODE_STATUS_ACTIVE");
  EXPECT_EQ(j[2]["health_status"], "HEALTH_STATUS_HEALTHY");
  EXPECT_EQ(j[2]["last_heartbeat"], "2025-12-31T23:59:30Z");
  EXPECT_EQ(j[2]["gpus"].size(), 8u);
  EXPECT_EQ(j[2]["gpus"][0]["index"], 0);  // zero fields stay
  EXPECT_EQ(j[2]["metadata"]["labels"]["team"], "ml");
  EXPECT_EQ(j[2]["pool"], "training");
  // Upstream's recipes, done the nlohmann way.
  int unhealthy = 0;
  for (const auto& n : j) {
    if (n["health_status"] != "HEALTH_STATUS_HEALTHY") ++unhealthy;
  }
  EXPECT_EQ(unhealthy, 2);
}

TEST_F(AppTest, EmptyListIsEmptyJsonNotAMessage) {
  Result r = Navarch({"list", "-o", "json", "--provider", "azure"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "[]\n");
  r = Navarch({"list", "--provider", "azure"});
  EXPECT_EQ(r.out, "No nodes found\n");
}

TEST_F(AppTest, GlobalFlagsGoBeforeOrAfterTheCommand) {
  EXPECT_EQ(Navarch({"-o", "json", "list"}).out,
            Navarch({"list", "-o", "json"}).out);
  Result r = Navarch({"list", "--output=json", "-s", address_}, false);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out).is_array());
}

TEST_F(AppTest, FiltersGoToTheServerWhereTheRpcHasThem) {
  Result r = Navarch({"list", "--provider", "gcp", "--region", "us-central1",
                      "--status", "cordoned", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fake_.last_list.provider(), "gcp");
  EXPECT_EQ(fake_.last_list.region(), "us-central1");
  EXPECT_EQ(fake_.last_list.status(), NODE_STATUS_CORDONED);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["node_id"], "gpu-1");

  // Upstream's forms: full enum names, any case; "unknown" means all.
  Navarch({"list", "--status", "NODE_STATUS_ACTIVE"});
  EXPECT_EQ(fake_.last_list.status(), NODE_STATUS_ACTIVE);
  r = Navarch({"list", "--status", "unknown", "-o", "json"});
  EXPECT_EQ(fake_.last_list.status(), NODE_STATUS_UNKNOWN);
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 3u);
}

// At 100,000 nodes one answer would pass the message limit; the CLI asks
// for pages and follows them. Here: a few thousand nodes, small pages.
TEST_F(AppTest, ListFollowsPagesToTheEnd) {
  for (int i = 0; i < 3000; ++i) {
    fake_.AddNode(Node(absl::StrFormat("n-%05d", i), "gcp", "us-central1-a",
                       NODE_STATUS_ACTIVE, HEALTH_STATUS_HEALTHY, 1, 30));
  }
  Result r = Navarch({"list", "-o", "json", "--page-size", "100"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3003u);
  EXPECT_EQ(j[0]["node_id"], "aws-1");
  EXPECT_EQ(j[3002]["node_id"], "n-02999");
  EXPECT_EQ(fake_.list_calls, 31);
  EXPECT_EQ(fake_.last_list.page_size(), 100);
  // The table too, and filters apply across pages.
  r = Navarch({"list", "--page-size", "7", "--zone", "us-central1-a"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3002);
  EXPECT_EQ(Navarch({"list", "--page-size", "0"}).code, 2);
}

TEST_F(AppTest, InstancesListFollowsPages) {
  for (int k = 0; k < 25; ++k) {
    InstanceInfo i;
    i.set_instance_id(absl::StrFormat("i-%02d", k));
    i.set_state(INSTANCE_STATE_RUNNING);
    fake_.AddInstance(i);
  }
  Result r = Navarch({"instances", "list", "-o", "json", "--page-size", "10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 25u);
  EXPECT_EQ(fake_.instance_calls, 3);
}

TEST_F(AppTest, ClientSideFilters) {
  auto ids = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"list", "-o", "json"});
    Result r = Navarch(args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::string> out;
    for (const auto& n : nlohmann::json::parse(r.out))
      out.push_back(n["node_id"]);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids({"--zone", "us-central1-a"}), V({"gpu-2"}));
  EXPECT_EQ(ids({"--pool", "inference"}), V({"aws-1"}));
  EXPECT_EQ(ids({"--health", "degraded"}), V({"gpu-1"}));
  EXPECT_EQ(ids({"--health", "HEALTH_STATUS_UNHEALTHY"}), V({"aws-1"}));
  EXPECT_EQ(ids({"--label", "team=ml"}), V({"gpu-1", "gpu-2"}));
  EXPECT_EQ(ids({"--label", "team"}), V({"aws-1", "gpu-1", "gpu-2"}));
  EXPECT_EQ(ids({"--label", "team=ml", "--label", "team=infra"}), V());
  EXPECT_EQ(ids({"--label", "team=ml", "--zone", "us-central1-b"}),
            V({"gpu-1"}));
}

TEST_F(AppTest, GetShowsTheNodeInDetail) {
  NodeInfo n = Node("gpu-9", "gcp", "us-central1-a", NODE_STATUS_CORDONED,
                    HEALTH_STATUS_HEALTHY, 1, 12);
  n.set_status_reason("cordon requested by operator: maintenance");
  n.mutable_metadata()->set_hostname("gpu-9.internal");
  n.mutable_metadata()->set_internal_ip("10.0.0.9");
  *n.mutable_registered_at() = ToTimestamp(absl::FromUnixSeconds(kNow - 7200));
  NodeMetrics* m = n.mutable_last_metrics();
  m->set_cpu_usage_percent(12.5);
  m->set_memory_usage_percent(40);
  GPUMetrics* g = m->add_gpu_metrics();
  g->set_temperature(45);
  g->set_power_usage(300);
  g->set_utilization_percent(75);
  g->set_memory_used(42949672960);
  fake_.AddNode(n);
  Result r = Navarch({"get", "gpu-9"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Node ID:           gpu-9\n"
            "Pool:              training\n"
            "Provider:          gcp\n"
            "Region:            us-central1\n"
            "Zone:              us-central1-a\n"
            "Instance Type:     a3-highgpu-8g\n"
            "Status:            Cordoned\n"
            "Status Reason:     cordon requested by operator: maintenance\n"
            "Health:            Healthy\n"
            "Last Heartbeat:    12s ago (2025-12-31T23:59:48Z)\n"
            "Last Health Check: Never\n"
            "Registered:        2h ago (2025-12-31T22:00:00Z)\n"
            "\n"
            "GPUs:\n"
            "  GPU 0:\n"
            "    UUID:       GPU-gpu-9-0\n"
            "    Name:       NVIDIA H100 80GB HBM3\n"
            "    PCI Bus ID: 0000:00:04.0\n"
            "    Memory:     80 GiB\n"
            "\n"
            "Metadata:\n"
            "  Hostname:    gpu-9.internal\n"
            "  Internal IP: 10.0.0.9\n"
            "\n"
            "Labels:\n"
            "  team=ml\n"
            "\n"
            "Last Metrics:\n"
            "  CPU:    12.5%\n"
            "  Memory: 40%\n"
            "  GPU 0:  45°C, 300 W, 75% busy, 40 GiB used\n");

  r = Navarch({"get", "gpu-9", "-o", "json"});
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.is_object());
  EXPECT_EQ(j["node_id"], "gpu-9");
  EXPECT_EQ(j["status"], "NODE_STATUS_CORDONED");
  EXPECT_EQ(j["status_reason"], "cordon requested by operator: maintenance");
  EXPECT_EQ(j["last_metrics"]["gpu_metrics"][0]["temperature"], 45);
}

TEST_F(AppTest, AMissingNodeExitsOneWithTheServersMessageOnce) {
  Result r = Navarch({"get", "gpu-7"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error: node gpu-7 not found\n");
  r = Navarch({"cordon", "gpu-7", "-o", "json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error: node gpu-7 not found\n");
}

TEST_F(AppTest, CordonUncordonDrainTerminateSendTheCommandAndReason) {
  Result r = Navarch({"cordon", "gpu-2", "--reason", "swap fans"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Node gpu-2 cordoned\nCommand ID: cmd-1\n");
  EXPECT_EQ(r.err, "");  // heartbeat 30s ago: no warning
  ASSERT_EQ(fake_.commands.size(), 1u);
  EXPECT_EQ(fake_.commands[0].command_type(), NODE_COMMAND_TYPE_CORDON);
  EXPECT_EQ(fake_.commands[0].parameters().at("reason"), "swap fans");

  EXPECT_EQ(Navarch({"uncordon", "gpu-2"}).out,
            "Node gpu-2 uncordoned\nCommand ID: cmd-2\n");
  EXPECT_TRUE(fake_.commands[1].parameters().empty());
  EXPECT_EQ(Navarch({"drain", "gpu-2", "--reason=xid 79"}).out,
            "Node gpu-2 draining\nCommand ID: cmd-3\n");
  EXPECT_EQ(fake_.commands[2].command_type(), NODE_COMMAND_TYPE_DRAIN);
  EXPECT_EQ(fake_.commands[2].parameters().at("reason"), "xid 79");
  EXPECT_EQ(Navarch({"terminate", "gpu-2"}).out,
            "Node gpu-2 terminate command queued\nCommand ID: cmd-4\n");
  EXPECT_EQ(fake_.commands[3].command_type(), NODE_COMMAND_TYPE_TERMINATE);
}

TEST_F(AppTest, CommandJson) {
  Result r = Navarch({"drain", "gpu-2", "--reason", "r", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::parse(R"({
    "command_id": "cmd-1", "issued_at": "2026-01-01T00:00:00Z",
    "node_id": "gpu-2", "command_type": "NODE_COMMAND_TYPE_DRAIN",
    "parameters": {"reason": "r"}})"));
}

TEST_F(AppTest, ActingOnASilentNodeWarnsOnStderr) {
  Result r = Navarch({"cordon", "aws-1"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err,
            "Warning: node aws-1 has never sent a heartbeat (may be "
            "offline)\n");
  clock_.Advance(absl::Minutes(5));
  r = Navarch({"cordon", "gpu-2", "-o", "json"});
  EXPECT_EQ(r.err,
            "Warning: node gpu-2 last heartbeat was 5m ago (may be offline)\n");
  EXPECT_TRUE(nlohmann::json::parse(r.out).is_object());
}

TEST_F(AppTest, UsageErrorsExitTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"list", "-o", "yaml"}, "unsupported output format: yaml"},
      {{"list", "--status", "asleep"}, "unknown node status \"asleep\""},
      {{"list", "--health", "sick"}, "unknown health status \"sick\""},
      {{"list", "--label", "=x"}, "invalid label selector"},
      {{"list", "--no-such-flag"}, "--no-such-flag"},
      {{"get"}, "NODE is required"},
      {{"get", "a", "b"}, "b"},
      {{"frobnicate"}, "frobnicate"},
      {{"instances"}, "subcommand"},
      {{"instances", "list", "--state", "gone"}, "unknown instance state"},
      {{"events", "--since", "yesterday"}, "invalid time \"yesterday\""},
      {{"events", "--limit", "-1"}, "--limit"},
      {{"list", "--timeout", "0s"}, "invalid timeout"},
      {{"list", "--cert-file", "/tmp/c.pem"},
       "--cert-file and --key-file go together"},
      {{"pools", "scale", "training"}, "give the node count once"},
      {{"pools", "scale", "training", "3", "--nodes", "4"},
       "give the node count once"},
  };
  for (const auto& c : cases) {
    Result r = Navarch(c.args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(c.args, " ") << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.err.rfind("Error: ", 0), 0u) << r.err;
    EXPECT_THAT(r.err, HasSubstr("Run with --help for more information.\n"));
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  EXPECT_TRUE(fake_.commands.empty());
  Result bad_server = Navarch({"-s", "ftp://x", "list"}, false);
  EXPECT_EQ(bad_server.code, 2);
  EXPECT_THAT(bad_server.err, HasSubstr("unsupported scheme"));
}

TEST_F(AppTest, ATypoSuggestsTheNearestCommand) {
  Result r = Navarch({"lsit"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "Error: unknown command 'lsit'; did you mean 'list'?\n"
            "Run with --help for more information.\n");
  EXPECT_EQ(r.out, "");
  r = Navarch({"-o", "json", "pools", "lsit"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("did you mean 'pools list'?"));
  EXPECT_EQ(fake_.list_calls, 0);
}

TEST_F(AppTest, CompletionScriptsNeedNoServer) {
  Result r = Navarch({"-s", "127.0.0.1:1", "completion", "bash"}, false);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("complete -o bashdefault -o default -F _navarch "
                               "navarch\n"));
  // Every command and alias is in it, hidden or not in the help.
  for (const char* line :
       {"\"/list\") echo list ;;", "\"/pools\"|\"/pool\") echo pools ;;",
        "\"pools/get\"|\"pools/status\") echo get ;;",
        "\"events\") echo --node --pool --kind --since --until --limit "
        "--tail"}) {
    EXPECT_THAT(r.out, HasSubstr(line));
  }
  r = Navarch({"completion", "zsh"}, false);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("#compdef navarch\n", 0), 0u);
  EXPECT_THAT(r.out, HasSubstr("'list:list nodes'"));
  r = Navarch({"completion", "fish"}, false);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("fish"));
}

TEST_F(AppTest, HelpAndNoArgumentsExitZero) {
  Result none = Navarch({}, false);
  EXPECT_EQ(none.code, 0);
  EXPECT_THAT(none.out, HasSubstr("Subcommands:"));
  Result help = Navarch({"list", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--label"));
  EXPECT_THAT(help.out, HasSubstr("Usage: navarch list "));  // names itself
  Result version = Navarch({"--version"}, false);
  EXPECT_EQ(version.code, 0);
  EXPECT_THAT(version.out, HasSubstr(NAVARCH_VERSION));
}

TEST_F(AppTest, ServerComesFromTheEnvironmentAndTheFlagWins) {
  setenv("NAVARCH_SERVER", address_.c_str(), 1);
  Result r = Navarch({"list", "-o", "json"}, false);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 3u);
  setenv("NAVARCH_SERVER", "127.0.0.1:1", 1);
  EXPECT_EQ(Navarch({"list"}).code, 0);  // -s beats the environment
  // Upstream's URL form.
  EXPECT_EQ(Navarch({"-s", "http://" + address_, "list"}, false).code, 0);
}

TEST_F(AppTest, TheTokenTravelsAsBearerMetadata) {
  fake_.RequireToken("s3cret");
  Result none = Navarch({"list"});
  EXPECT_EQ(none.code, 1);
  EXPECT_EQ(none.err,
            "Error: authentication failed: the control plane requires a "
            "token (set --token or NAVARCH_AUTH_TOKEN)\n");
  Result wrong = Navarch({"list", "--token", "nope"});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_EQ(wrong.err,
            "Error: authentication failed: the control plane rejected the "
            "token (set --token or NAVARCH_AUTH_TOKEN)\n");
  EXPECT_EQ(Navarch({"list", "--token", "s3cret"}).code, 0);
  setenv("NAVARCH_AUTH_TOKEN", "s3cret", 1);
  EXPECT_EQ(Navarch({"list"}).code, 0);
  EXPECT_EQ(Navarch({"cordon", "gpu-2"}).code, 0);  // both calls carry it
  unsetenv("NAVARCH_AUTH_TOKEN");
  setenv("NAVARCH_TOKEN", "s3cret", 1);  // upstream docs' other name
  EXPECT_EQ(Navarch({"list"}).code, 0);
}

TEST_F(AppTest, PermissionDeniedSaysSo) {
  fake_.DenyCommands();
  Result r = Navarch({"cordon", "gpu-2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: permission denied: viewer:grafana may not call "
            "IssueCommand (needs operator)\n");
}

TEST_F(AppTest, UnreachableServer) {
  Result r = Navarch({"-s", "127.0.0.1:1", "list"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error: cannot reach the control plane at "
                               "127.0.0.1:1: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_EQ(r.out, "");
}

TEST_F(AppTest, SlowServerHitsTheTimeout) {
  fake_.AddNode(Node("slow", "gcp", "us-central1-a", NODE_STATUS_ACTIVE,
                     HEALTH_STATUS_HEALTHY, 0, 1));
  Result r = Navarch({"get", "slow", "--timeout", "200ms"});
  fake_.release_slow.Notify();
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, absl::StrCat("Error: the control plane at ", address_,
                                " did not answer within 200ms (see "
                                "--timeout)\n"));
}

TEST_F(AppTest, PoolsSayWhenTheServerHasNoPools) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"pools", "list"},
           {"pools", "get", "training"},
           {"pool", "status", "training"},
           {"pools", "scale", "training", "4"},
           {"pool", "scale", "training", "--nodes", "4"},
           {"pools", "reset-breaker", "training"}}) {
    Result r = Navarch(args);
    EXPECT_EQ(r.code, 1) << absl::StrJoin(args, " ");
    EXPECT_EQ(
        r.err,
        absl::StrCat(
            "Error: this control plane does not serve pools (", address_,
            " has no pool manager: no pools configured, or not a Navarch C++ "
            "control plane)\n"));
  }
}

TEST_F(AppTest, InstancesListAndGet) {
  Result empty = Navarch({"instances", "list", "-o", "json"});
  EXPECT_EQ(empty.code, 0);
  EXPECT_EQ(empty.out, "[]\n");
  EXPECT_EQ(Navarch({"instances", "list"}).out, "No instances found\n");
  InstanceInfo i;
  i.set_instance_id("i-1");
  i.set_provider("fake");
  i.set_pool_name("training");
  i.set_state(INSTANCE_STATE_RUNNING);
  i.set_node_id("gpu-2");
  *i.mutable_created_at() = ToTimestamp(absl::FromUnixSeconds(kNow - 90));
  fake_.AddInstance(i);
  Result r = Navarch({"instance", "list", "--state", "running"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "INSTANCE ID   POOL       PROVIDER   REGION   ZONE   INSTANCE "
            "TYPE   STATE     NODE ID   CREATED\n"
            "i-1           training   fake       " +
                std::string(32, ' ') + "Running   gpu-2     1m ago\n");
  EXPECT_EQ(
      Navarch({"instances", "list", "--state", "failed", "-o", "json"}).out,
      "[]\n");
  r = Navarch({"instances", "get", "i-1", "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["state"], "INSTANCE_STATE_RUNNING");
  r = Navarch({"instances", "get", "i-2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: instance i-2 not found\n");
}

TEST_F(AppTest, EventsFollowPagesUpToTheLimit) {
  fake_.AddEvents(2500);
  Result r = Navarch({"events", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 100u);  // default limit
  EXPECT_THAT(r.err, HasSubstr("more match"));

  fake_.event_calls = 0;
  r = Navarch({"events", "-o", "json", "--limit", "1500"});
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1500u);
  EXPECT_EQ(j[0]["id"], "1");  // int64 in protobuf JSON is a string
  EXPECT_EQ(j[1499]["id"], "1500");
  EXPECT_EQ(fake_.event_calls, 2);
  EXPECT_EQ(fake_.last_events.page_size(), 500);

  r = Navarch({"events", "-o", "json", "--limit", "0"});
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 2500u);
  EXPECT_EQ(r.err, "");
}

TEST_F(AppTest, EventsTailShowsTheNewestOldestFirst) {
  fake_.AddEvents(2500);
  Result r = Navarch({"events", "-o", "json", "--tail", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["id"], "2498");
  EXPECT_EQ(j[2]["id"], "2500");
  EXPECT_EQ(r.err, "(the newest 3 of 2500 matching events)\n");
  EXPECT_EQ(fake_.last_events.page_size(), 1000);

  // Fewer than asked for: all of them, and no note.
  r = Navarch({"events", "-o", "json", "--tail", "5000"});
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 2500u);
  EXPECT_EQ(r.err, "");

  r = Navarch({"events", "--tail", "2", "--kind", "node.*"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fake_.last_events.kinds(0), "node.*");  // filters still apply
  EXPECT_THAT(r.out, HasSubstr("n2499"));
  EXPECT_THAT(r.out, Not(HasSubstr("n2497")));

  for (std::vector<std::string> args :
       {std::vector<std::string>{"events", "--tail", "0"},
        {"events", "--tail", "2", "--limit", "5"}}) {
    r = Navarch(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
  }
}

TEST_F(AppTest, EventsFiltersAndTable) {
  fake_.AddEvents(2);
  Result r = Navarch({"events", "--node", "n1", "--pool", "p", "--kind",
                      "node.*", "--kind", "command.issued", "--since", "1h"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fake_.last_events.node_id(), "n1");
  EXPECT_EQ(fake_.last_events.pool(), "p");
  ASSERT_EQ(fake_.last_events.kinds_size(), 2);
  EXPECT_EQ(fake_.last_events.kinds(0), "node.*");
  EXPECT_EQ(FromTimestamp(fake_.last_events.since()),
            absl::FromUnixSeconds(kNow - 3600));
  EXPECT_FALSE(fake_.last_events.has_until());
  EXPECT_EQ(r.out,
            "TIME                   AGE       KIND              NODE   POOL   "
            "ACTOR   MESSAGE\n"
            "2025-12-31T23:50:00Z   10m ago   node.registered   n0            "
            "node    registered\n"
            "2025-12-31T23:50:01Z   9m ago    node.registered   n1            "
            "node    registered\n");
  Navarch({"events", "--since", "2026-01-01T00:00:00Z"});
  EXPECT_EQ(FromTimestamp(fake_.last_events.since()),
            absl::FromUnixSeconds(kNow));
}

TEST_F(AppTest, Version) {
  Result r = Navarch({"version"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("navarch version ", NAVARCH_VERSION,
                                            "\n")));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat(address_, " (reachable)")));
  // A server that does not name its version (upstream's).
  EXPECT_THAT(r.out, HasSubstr("server version:  unknown\n"));
  r = Navarch({"version", "-o", "json"});
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["client_version"], NAVARCH_VERSION);
  EXPECT_EQ(j["server_reachable"], true);
  EXPECT_FALSE(j.contains("server_version"));

  fake_.version_header = "9.8.7";
  r = Navarch({"version"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("server version:  9.8.7\n"));
  j = nlohmann::json::parse(Navarch({"version", "-o", "json"}).out);
  EXPECT_EQ(j["server_version"], "9.8.7");

  r = Navarch({"-s", "127.0.0.1:1", "version"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1:1 (unreachable)"));
  EXPECT_THAT(r.err, HasSubstr("cannot reach"));
  r = Navarch({"-s", "127.0.0.1:1", "version", "--client"}, false);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, Not(HasSubstr("server")));

  fake_.RequireToken("t");
  r = Navarch({"version"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("authentication failed"));
}

TEST_F(AppTest, ColourOnlyWhenAskedAndNeverInJson) {
  std::ostringstream out, err;
  RunOptions color;
  color.color = true;
  ASSERT_EQ(cli::Run({"-s", address_, "list"}, out, err, clock_, color), 0);
  EXPECT_THAT(out.str(), HasSubstr("\033[32mActive\033[0m"));
  std::ostringstream jout;
  ASSERT_EQ(cli::Run({"-s", address_, "list", "-o", "json"}, jout, err, clock_,
                     color),
            0);
  EXPECT_THAT(jout.str(), Not(HasSubstr("\033[")));
  EXPECT_THAT(Navarch({"list"}).out, Not(HasSubstr("\033[")));
}

// ---- TLS, with a CA and certificates made in the test ----

// Another control plane: a second region beside the fixture's.
struct Region {
  explicit Region(NodeInfo node) {
    fake.AddNode(std::move(node));
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&fake);
    server = b.BuildAndStart();
    address = absl::StrCat("127.0.0.1:", port);
  }
  ~Region() {
    if (server) server->Shutdown();
  }
  FakeControlPlane fake;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

std::string ContextYaml(const std::string& name, const std::string& server) {
  return absl::StrCat("  - name: ", name, "\n    server: ", server, "\n");
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST_F(AppTest, AllContextsMergesTheRegionsAndReportsTheUnreachableOne) {
  Region us(Node("us-1", "aws", "us-east-1a", NODE_STATUS_ACTIVE,
                 HEALTH_STATUS_HEALTHY, 8, 10));
  ASSERT_NE(us.server, nullptr);
  WriteConfig(absl::StrCat(
      "current-context: eu\ncontexts:\n", ContextYaml("eu", address_),
      ContextYaml("down", "127.0.0.1:1"), ContextYaml("us", us.address)));
  Result r = Navarch({"list", "--all-contexts"}, false);
  EXPECT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "CONTEXT   NODE ID   PROVIDER"))
      << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "eu        aws-1     aws")) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[2], "eu        gpu-1 ")) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[3], "eu        gpu-2 ")) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[4], "us        us-1  ")) << r.out;
  EXPECT_TRUE(absl::StartsWith(r.err,
                               "context down: unavailable: cannot reach the "
                               "control plane at 127.0.0.1:1: "))
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  Result json = Navarch({"list", "--all-contexts", "-o", "json"}, false);
  EXPECT_EQ(json.code, 0) << json.err;
  nlohmann::json nodes = nlohmann::json::parse(json.out);
  ASSERT_EQ(nodes.size(), 4u);
  EXPECT_EQ(nodes[0]["context"], "eu");
  EXPECT_EQ(nodes[3]["context"], "us");
  EXPECT_EQ(nodes[3]["node_id"], "us-1");
}

TEST_F(AppTest, AllContextsFailsOnlyWhenEveryContextFails) {
  WriteConfig(absl::StrCat("contexts:\n", ContextYaml("a", "127.0.0.1:1"),
                           ContextYaml("b", "127.0.0.1:1")));
  Result r = Navarch({"list", "--all-contexts"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("context a: unavailable: "));
  EXPECT_THAT(r.err, HasSubstr("context b: unavailable: "));
  EXPECT_THAT(r.err, HasSubstr("Error: no context answered (2 failed)\n"));
}

TEST_F(AppTest, AllContextsNeedsContextsAndTakesNoServerFlag) {
  Result none = Navarch({"list", "--all-contexts"}, false);
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err,
              HasSubstr("--all-contexts: no contexts in " + config_path_));
  WriteConfig(absl::StrCat("contexts:\n", ContextYaml("eu", address_)));
  Result flag = Navarch({"list", "--all-contexts"});  // with -s
  EXPECT_EQ(flag.code, 2);
  EXPECT_THAT(flag.err, HasSubstr("each context's own server, token and TLS "
                                  "settings; drop --server"));
  setenv("NAVARCH_SERVER", "127.0.0.1:1", 1);  // the environment is ignored
  EXPECT_EQ(Navarch({"list", "--all-contexts"}, false).code, 0);
  // Only the read commands take it.
  EXPECT_EQ(Navarch({"cordon", "gpu-1", "--all-contexts"}, false).code, 2);
}

TEST_F(AppTest, PoolsAndEventsAcrossContexts) {
  Region us(Node("us-1", "aws", "us-east-1a", NODE_STATUS_ACTIVE,
                 HEALTH_STATUS_HEALTHY, 8, 10));
  PoolInfo pool;
  pool.set_name("inference");
  pool.set_current_nodes(3);
  us.fake.AddPool(pool);
  us.fake.AddEvents(1);
  fake_.AddEvents(2);
  WriteConfig(absl::StrCat("contexts:\n", ContextYaml("eu", address_),
                           ContextYaml("us", us.address)));
  Result pools = Navarch({"pools", "list", "--all-contexts"}, false);
  EXPECT_EQ(pools.code, 0) << pools.err;
  EXPECT_THAT(pools.out, HasSubstr("CONTEXT   POOL        NODES"));
  EXPECT_THAT(pools.out, HasSubstr("us        inference   3 "));
  EXPECT_THAT(pools.err, HasSubstr("context eu: unimplemented: this control "
                                   "plane does not serve pools"));
  Result events = Navarch({"events", "--all-contexts"}, false);
  EXPECT_EQ(events.code, 0) << events.err;
  std::vector<std::string> lines = Lines(events.out);
  ASSERT_EQ(lines.size(), 4u) << events.out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "CONTEXT   TIME")) << events.out;
  // One timeline: eu's two events a second apart, us's between them (a tie
  // with eu's first keeps the file's order).
  EXPECT_TRUE(absl::StartsWith(lines[1], "eu ")) << events.out;
  EXPECT_TRUE(absl::StartsWith(lines[2], "us ")) << events.out;
  EXPECT_TRUE(absl::StartsWith(lines[3], "eu ")) << events.out;
  Result json = Navarch({"events", "--all-contexts", "-o", "json"}, false);
  nlohmann::json log = nlohmann::json::parse(json.out);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1]["context"], "us");
  EXPECT_EQ(log[2]["context"], "eu");
  Result limited = Navarch({"events", "--all-contexts", "--limit", "1"}, false);
  EXPECT_THAT(limited.err, HasSubstr("context eu: (the first 1 matching"));
}

TEST_F(AppTest, TheContextFlagOrTheCurrentContextPicksTheServer) {
  WriteConfig(absl::StrCat("current-context: down\ncontexts:\n",
                           ContextYaml("down", "127.0.0.1:1"),
                           ContextYaml("eu", address_)));
  Result current = Navarch({"list"}, false);
  EXPECT_EQ(current.code, 1);
  EXPECT_THAT(current.err, HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(Navarch({"--context", "eu", "list"}, false).code, 0);
  EXPECT_EQ(Navarch({"list", "--context", "eu"}, false).code, 0);
  EXPECT_EQ(Navarch({"list"}).code, 0);  // -s beats the current context
  setenv("NAVARCH_SERVER", address_.c_str(), 1);  // and so does the variable
  EXPECT_EQ(Navarch({"list"}, false).code, 0);
  unsetenv("NAVARCH_SERVER");
  Result unknown = Navarch({"--context", "ap-south", "list"}, false);
  EXPECT_EQ(unknown.code, 1);
  EXPECT_EQ(unknown.err,
            absl::StrCat("Error: context \"ap-south\" is not in ", config_path_,
                         " (known: down, eu; see `navarch config "
                         "get-contexts`)\n"));
}

TEST_F(AppTest, AContextsTokenFileIsSentAndTheFlagWins) {
  fake_.RequireToken("s3cret");
  testing::WriteTestFile(config_dir_ + "/eu.token", "s3cret\n");
  WriteConfig(absl::StrCat("current-context: eu\ncontexts:\n",
                           ContextYaml("eu", address_),
                           "    token_file: eu.token\n"));
  EXPECT_EQ(Navarch({"list"}, false).code, 0);
  EXPECT_EQ(Navarch({"list", "--token", "nope"}, false).code, 1);
}

TEST_F(AppTest, ConfigCommandsEditTheFile) {
  Result created =
      Navarch({"config", "set-context", "eu", "--server", address_}, false);
  EXPECT_EQ(created.code, 0) << created.err;
  EXPECT_EQ(created.out,
            absl::StrCat("Context \"eu\" created in ", config_path_, ".\n"));
  struct stat st;
  ASSERT_EQ(stat(config_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  Result none = Navarch({"config", "current-context"}, false);
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("no current-context is set"));
  EXPECT_EQ(Navarch({"config", "set-context", "us", "--server", "h:1",
                     "--token-file", "us.token"},
                    false)
                .code,
            0);
  Result use = Navarch({"config", "use-context", "eu"}, false);
  EXPECT_EQ(use.out, "Switched to context \"eu\".\n");
  EXPECT_EQ(Navarch({"config", "current-context"}, false).out, "eu\n");
  Result table = Navarch({"config", "get-contexts"}, false);
  std::string token = (std::filesystem::current_path() / "us.token").string();
  EXPECT_EQ(table.out,
            absl::StrFormat("CURRENT   NAME   SERVER%s   TOKEN%s   TLS\n"
                            "*         eu     %s   -%s   -\n"
                            "          us     h:1%s   %s   -\n",
                            std::string(address_.size() - 6, ' '),
                            std::string(token.size() - 5, ' '), address_,
                            std::string(token.size() - 1, ' '),
                            std::string(address_.size() - 3, ' '), token));
  EXPECT_EQ(Navarch({"list"}, false).code, 0);  // the current context
  Result unknown = Navarch({"config", "use-context", "ap"}, false);
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("(known: eu, us)"));
  // Bad input changes nothing.
  absl::StatusOr<std::string> before = ReadFileToString(config_path_);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(Navarch({"config", "set-context", "new"}, false).code, 2);
  EXPECT_EQ(
      Navarch({"config", "set-context", "bad/name", "--server", "h:1"}, false)
          .code,
      2);
  EXPECT_EQ(
      Navarch({"config", "set-context", "eu", "--server", "http://h/x"}, false)
          .code,
      2);
  EXPECT_EQ(Navarch({"config", "set-context", "eu", "--token", "t",
                     "--token-file", "f"},
                    false)
                .code,
            2);
  EXPECT_EQ(ReadFileToString(config_path_).value_or(""), *before);
  Result json = Navarch({"config", "get-contexts", "-o", "json"}, false);
  nlohmann::json contexts = nlohmann::json::parse(json.out);
  ASSERT_EQ(contexts.size(), 2u);
  EXPECT_EQ(contexts[0]["current"], true);
  EXPECT_EQ(contexts[1]["token_file"], token);
}

TEST_F(AppTest, ABrokenConfigFileStopsOnlyWhatUsesIt) {
  WriteConfig("contexts: [\n");
  Result r = Navarch({"list"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(config_path_));
  EXPECT_EQ(Navarch({"version", "--client"}, false).code, 0);
}

class TlsTest : public AppTest {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        ::testing::TempDir(), "/navarch-cli-tls-",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    ca_ = testing::MakeCa("navarch test CA");
    server_cert_ = testing::IssueCert(ca_, "control-plane", {"localhost"},
                                      {"127.0.0.1"}, /*server=*/true);
    testing::TestCert client =
        testing::IssueCert(ca_, "ops", {}, {}, /*server=*/false);
    testing::WriteTestFile(dir_ + "/ca.pem", ca_.cert_pem);
    testing::WriteTestFile(dir_ + "/client.pem", client.cert_pem);
    testing::WriteTestFile(dir_ + "/client.key", client.key_pem);
    AppTest::SetUp();
  }

  void StartTls(bool require_client_cert) {
    server_->Shutdown();
    grpc::SslServerCredentialsOptions opts(
        require_client_cert
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    opts.pem_key_cert_pairs.push_back(
        {server_cert_.key_pem, server_cert_.cert_pem});
    if (require_client_cert) opts.pem_root_certs = ca_.cert_pem;
    Start(grpc::SslServerCredentials(opts));
  }

  std::string dir_;
  testing::TestCert ca_, server_cert_;
};

TEST_F(TlsTest, CaFileVerifiesTheServer) {
  StartTls(false);
  Result r = Navarch({"list", "--ca-file", dir_ + "/ca.pem"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Navarch(
      {"-s", "https://" + address_, "list", "--ca-file", dir_ + "/ca.pem"},
      false);
  EXPECT_EQ(r.code, 0) << r.err;
  // Plaintext to a TLS port, or TLS with the system's roots: refused.
  EXPECT_EQ(Navarch({"list"}).code, 1);
  r = Navarch({"-s", "https://" + address_, "list"}, false);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the control plane"));
}

TEST_F(TlsTest, InsecureSkipVerifyAcceptsAnyCertificate) {
  StartTls(false);
  Result r = Navarch({"list", "--insecure-skip-verify"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Navarch({"-s", "https://" + address_, "--insecure", "list"}, false);
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(TlsTest, AContextCarriesTheTlsSettings) {
  StartTls(/*require_client_cert=*/true);
  WriteConfig(absl::StrCat(
      "current-context: eu\ncontexts:\n", ContextYaml("eu", address_),
      "    tls: {ca_file: ", dir_, "/ca.pem, cert_file: ", dir_,
      "/client.pem, key_file: ", dir_, "/client.key}\n"));
  Result r = Navarch({"list"}, false);
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(TlsTest, ClientCertificates) {
  StartTls(/*require_client_cert=*/true);
  std::string ca = dir_ + "/ca.pem";
  std::string cert = dir_ + "/client.pem";
  std::string key = dir_ + "/client.key";
  EXPECT_EQ(Navarch({"list", "--ca-file", ca}).code, 1);
  Result r = Navarch(
      {"list", "--ca-file", ca, "--cert-file", cert, "--key-file", key});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Navarch({"list", "--insecure-skip-verify", "--cert-file", cert,
               "--key-file", key});
  EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace navarch::cli
