// Three real control planes on one real PostgreSQL, behind a real HAProxy
// running deploy/haproxy/haproxy.cfg as shipped, with a pool of real agents
// (the local provider, its instance folders in the data folder the replicas
// share). One replica leads and serves; the others wait for the lease.
//   - kill -9 the leader: a standby takes over within the lease plus a
//     renewal, through the balancer the agents find it, and the pool is the
//     same two machines: nothing bought twice, nothing lost.
//   - SIGSTOP the leader past its lease: another takes over; SIGCONT: the
//     old one finds it lost the lease and exits (75) without acting.
// Real processes take real time: the REST API is polled through the
// balancer.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "httplib.h"
#include "testing/postgres.h"
#include "testing/process.h"

namespace navarch {
namespace {

using Json = nlohmann::json;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

constexpr int kReplicas = 3;
constexpr std::chrono::seconds kLease(2);
// Start-up of a replica that takes over (load, listen, reconcile) on a
// loaded two-core machine, on top of the lease and a renewal.
constexpr std::chrono::seconds kTakeOver(15);

struct Replica {
  int grpc_port = 0;
  int http_port = 0;
  std::string config, ready, log;
  std::unique_ptr<Process> process;
};

class HaE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Sql("CREATE DATABASE navarch"), "");
    lb_grpc_ = FreePort();
    lb_http_ = FreePort();
    for (int i = 0; i < kReplicas; ++i) {
      replicas_[i].grpc_port = FreePort();
      replicas_[i].http_port = FreePort();
    }
    StartBalancer();
    for (int i = 0; i < kReplicas; ++i) WriteConfig(i);
  }

  void TearDown() override {
    for (Replica& r : replicas_) {
      if (r.process != nullptr) {
        r.process->Signal(SIGCONT);
        r.process->Signal(SIGKILL);
      }
    }
    // The agents run in sessions of their own, like VMs: kill them too.
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(
             dir_.path() + "/data", ec)) {
      if (e.path().filename() != "agent.pid") continue;
      int pid = std::atoi(testing::ReadFile(e.path().string()).c_str());
      if (pid > 1) kill(pid, SIGKILL);
    }
    if (balancer_ != nullptr) balancer_->Signal(SIGKILL);
  }

  std::string Sql(const std::string& sql) {
    std::string out = dir_.path() + "/psql.out";
    Process p(
        "/usr/bin/psql",
        {"-h", "127.0.0.1", "-p", std::to_string(pg_.port()), "-U", pg_.user(),
         "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql},
        out);
    return p.Wait(std::chrono::seconds(30)) == 0 ? "" : testing::ReadFile(out);
  }

  void StartBalancer() {
    auto set = [](const std::string& k, const std::string& v) {
      setenv(k.c_str(), v.c_str(), 1);
    };
    set("NAVARCH_LB_GRPC", "127.0.0.1:" + std::to_string(lb_grpc_));
    set("NAVARCH_LB_HTTP", "127.0.0.1:" + std::to_string(lb_http_));
    for (int i = 0; i < kReplicas; ++i) {
      const std::string n = "NAVARCH_CP" + std::to_string(i + 1);
      const Replica& r = replicas_[i];
      set(n + "_GRPC", "127.0.0.1:" + std::to_string(r.grpc_port));
      set(n + "_HTTP", "127.0.0.1:" + std::to_string(r.http_port));
      set(n + "_HTTP_PORT", std::to_string(r.http_port));
    }
    balancer_ = std::make_unique<Process>(
        "/usr/sbin/haproxy",
        // -n: a connection limit the test's file descriptor limit allows.
        std::vector<std::string>{
            "-db", "-n", "1000", "-f",
            std::string(NAVARCH_SOURCE_DIR) + "/deploy/haproxy/haproxy.cfg"},
        dir_.path() + "/haproxy.log");
    lb_ = std::make_unique<httplib::Client>("127.0.0.1", lb_http_);
    lb_->set_connection_timeout(2, 0);
    lb_->set_read_timeout(5, 0);
  }

  void WriteConfig(int i) {
    Replica& r = replicas_[i];
    const std::string n = std::to_string(i + 1);
    r.config = dir_.path() + "/cp" + n + ".yaml";
    r.ready = dir_.path() + "/cp" + n + ".ready";
    r.log = dir_.path() + "/cp" + n + ".log";
    testing::WriteFile(
        r.config,
        "server:\n"
        "  address: \"127.0.0.1:" +
            std::to_string(r.grpc_port) + "\"\n" +
            "  http_address: \"127.0.0.1:" + std::to_string(r.http_port) +
            "\"\n" + "  external_address: \"http://127.0.0.1:" +
            std::to_string(lb_grpc_) + "\"\n" + "  data_dir: " + dir_.path() +
            "/data\n" +
            "  heartbeat_interval: 1s\n"
            "  heartbeat_timeout: 10s\n"
            "  autoscale_interval: 1s\n"
            "storage:\n"
            "  backend: postgres\n"
            "  dsn: \"host=127.0.0.1 port=" +
            std::to_string(pg_.port()) + " user=" + pg_.user() +
            " dbname=navarch\"\n" +
            "ha:\n"
            "  lease_duration: " +
            std::to_string(kLease.count()) + "s\n" + "  replica_id: cp" + n +
            "\n" +
            "logging:\n"
            "  level: info\n"
            "  format: text\n"
            "providers:\n"
            "  local:\n"
            "    type: local\n"
            "    gpu_count: 2\n"
            "    keep_instances: true\n"
            "    agent_path: " +
            testing::BinDir() + "/node-agent\n" +
            "pools:\n"
            "  dev:\n"
            "    provider: local\n"
            "    instance_type: local-2x\n"
            "    min_nodes: 2\n"
            "    max_nodes: 2\n"
            "    cooldown: 0s\n");
  }

  void Start(int i) {
    Replica& r = replicas_[i];
    r.process = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", r.config, "--ready-file", r.ready},
        r.log);
  }

  // The replica that wrote its ready file (it serves) within `timeout`; -1.
  int WaitForLeader(std::chrono::seconds timeout, int except = -1) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < kReplicas; ++i) {
        if (i != except && !testing::ReadFile(replicas_[i].ready).empty())
          return i;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

  Json Get(const std::string& path) {
    auto r = lb_->Get(path);
    if (!r || r->status != 200) return Json();
    return Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

  // The pool's ACTIVE nodes, through the balancer.
  std::set<std::string> Active() {
    std::set<std::string> out;
    const Json nodes = Get("/api/v1/nodes?pool=dev");
    if (!nodes.is_array()) return out;
    for (const Json& n : nodes) {
      if (n.value("status", "") == "NODE_STATUS_ACTIVE")
        out.insert(n.value("node_id", ""));
    }
    return out;
  }

  // Instances of the pool that are not terminated.
  std::set<std::string> LiveInstances() {
    std::set<std::string> out;
    const Json instances = Get("/api/v1/instances?pool=dev");
    if (!instances.is_array()) return out;
    for (const Json& i : instances) {
      const std::string state = i.value("state", "");
      if (state != "INSTANCE_STATE_TERMINATED" &&
          state != "INSTANCE_STATE_FAILED") {
        out.insert(i.value("instance_id", ""));
      }
    }
    return out;
  }

  bool WaitFor(const std::function<bool()>& done, std::chrono::seconds t) {
    const auto deadline = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return done();
  }

  std::string Logs() {
    std::string out;
    for (int i = 0; i < kReplicas; ++i) {
      out += "--- cp" + std::to_string(i + 1) + "\n" +
             testing::ReadFile(replicas_[i].log);
    }
    return out + "--- haproxy\n" +
           testing::ReadFile(dir_.path() + "/haproxy.log");
  }

  // Starts the three replicas; the first to start leads; the pool fills.
  int StartCluster(std::set<std::string>& nodes,
                   std::set<std::string>& instances) {
    Start(0);
    int leader = WaitForLeader(kTakeOver);
    EXPECT_EQ(leader, 0) << Logs();
    Start(1);
    Start(2);
    EXPECT_TRUE(
        WaitFor([&] { return Active().size() == 2; }, std::chrono::seconds(30)))
        << Logs();
    nodes = Active();
    instances = LiveInstances();
    EXPECT_EQ(instances.size(), 2u);
    // The standbys do not serve.
    EXPECT_EQ(WaitForLeader(std::chrono::seconds(0), leader), -1);
    return leader;
  }

  // After a takeover: the same two nodes ACTIVE through the balancer and no
  // instance bought, for a few autoscale intervals.
  void ExpectSamePool(const std::set<std::string>& nodes,
                      const std::set<std::string>& instances) {
    EXPECT_TRUE(
        WaitFor([&] { return Active() == nodes; }, std::chrono::seconds(30)))
        << Logs();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(Active(), nodes) << Logs();
    EXPECT_EQ(LiveInstances(), instances) << Logs();
    auto metrics = lb_->Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("navarch_leader 1"), std::string::npos);
  }

  testing::Postgres pg_;
  TempDir dir_;
  int lb_grpc_ = 0, lb_http_ = 0;
  Replica replicas_[kReplicas];
  std::unique_ptr<Process> balancer_;
  std::unique_ptr<httplib::Client> lb_;
};

TEST_F(HaE2eTest, KillingTheLeaderHandsTheFleetToAStandby) {
  std::set<std::string> nodes, instances;
  int leader = StartCluster(nodes, instances);
  ASSERT_EQ(leader, 0);

  const auto killed = std::chrono::steady_clock::now();
  replicas_[0].process->Signal(SIGKILL);
  replicas_[0].process->Wait(std::chrono::seconds(5));
  int next = WaitForLeader(kLease + kTakeOver, /*except=*/0);
  ASSERT_NE(next, -1) << Logs();
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed)
          .count();
  // Within the lease plus one renewal, and the start-up of the new one.
  EXPECT_LT(took, (kLease + kTakeOver).count()) << Logs();
  std::cerr << "takeover after kill -9: " << took << " s\n";
  ExpectSamePool(nodes, instances);
}

TEST_F(HaE2eTest, AStoppedLeaderIsFencedWhenItWakesUp) {
  std::set<std::string> nodes, instances;
  int leader = StartCluster(nodes, instances);
  ASSERT_EQ(leader, 0);

  replicas_[0].process->Signal(SIGSTOP);
  int next = WaitForLeader(kLease + kTakeOver, /*except=*/0);
  ASSERT_NE(next, -1) << Logs();
  ExpectSamePool(nodes, instances);

  replicas_[0].process->Signal(SIGCONT);
  // It finds the lease gone at its next renewal and exits without acting.
  EXPECT_EQ(replicas_[0].process->Wait(std::chrono::seconds(20)), 75) << Logs();
  EXPECT_NE(testing::ReadFile(replicas_[0].log).find("lost the leader lease"),
            std::string::npos)
      << testing::ReadFile(replicas_[0].log);
  ExpectSamePool(nodes, instances);
}

}  // namespace
}  // namespace navarch
