// Three real control planes on one real PostgreSQL, behind a real HAProxy
// running deploy/haproxy/haproxy.cfg as shipped, with a pool of real agents
// (the local provider, its instance folders in the data folder the replicas
// share). One replica leads and runs the fleet; the others follow: they
// answer every call by forwarding it to the leader, and wait for the lease.
//   - any replica answers: the CLI and the REST API on a follower see and
//     change what the leader has, at once, and a command issued through a
//     follower reaches its agent, wherever the agent's stream is held.
//   - kill -9 the leader: a standby takes over within the lease plus a
//     renewal, through the balancer the agents find it, and the pool is the
//     same two machines: nothing bought twice, nothing lost.
//   - SIGSTOP the leader past its lease: another takes over; SIGCONT: the
//     old one finds it lost the lease and exits (75) without acting.
//   - kill -9 a follower, or stop PostgreSQL past the lease: nothing lost.
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
  void ExpectSamePool(int leader, const std::set<std::string>& nodes,
                      const std::set<std::string>& instances) {
    EXPECT_TRUE(
        WaitFor([&] { return Active() == nodes; }, std::chrono::seconds(30)))
        << Logs();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(Active(), nodes) << Logs();
    EXPECT_EQ(LiveInstances(), instances) << Logs();
    // Each replica answers /metrics for itself.
    httplib::Client direct("127.0.0.1", replicas_[leader].http_port);
    auto metrics = direct.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("navarch_leader 1"), std::string::npos);
  }

  // The standbys (cp2, cp3) say ready: they answer, through the leader.
  void ExpectFollowersReady() {
    for (int i : {1, 2}) {
      httplib::Client c("127.0.0.1", replicas_[i].http_port);
      ASSERT_TRUE(WaitFor(
          [&] {
            auto r = c.Get("/readyz");
            return r && r->status == 200;
          },
          std::chrono::seconds(10)))
          << "cp" << i + 1 << "\n"
          << Logs();
    }
  }

  // The navarch CLI against `server` (host:port); its output.
  std::string Cli(const std::string& server, std::vector<std::string> args,
                  int* code = nullptr) {
    const std::string out =
        dir_.path() + "/cli" + std::to_string(++cli_calls_) + ".out";
    args.insert(args.begin(), {"--server", server});
    Process p(testing::BinDir() + "/navarch", args, out);
    const int rc = p.Wait(std::chrono::seconds(30));
    if (code != nullptr) *code = rc;
    return testing::ReadFile(out);
  }
  static std::string At(int port) {
    return "127.0.0.1:" + std::to_string(port);
  }

  testing::Postgres pg_;
  TempDir dir_;
  int lb_grpc_ = 0, lb_http_ = 0;
  int cli_calls_ = 0;
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
  ExpectSamePool(next, nodes, instances);
}

TEST_F(HaE2eTest, FollowersAnswerEveryCallThroughTheLeader) {
  std::set<std::string> nodes, instances;
  ASSERT_EQ(StartCluster(nodes, instances), 0);
  // Followers are ready: they can answer, through the leader.
  ExpectFollowersReady();
  // REST on a follower: the leader's nodes and the cluster.
  httplib::Client follower("127.0.0.1", replicas_[1].http_port);
  auto listed = follower.Get("/api/v1/nodes?pool=dev");
  ASSERT_TRUE(listed && listed->status == 200) << Logs();
  EXPECT_EQ(Json::parse(listed->body).size(), 2u);
  auto cluster = follower.Get("/api/v1/cluster");
  ASSERT_TRUE(cluster && cluster->status == 200) << Logs();
  const Json view = Json::parse(cluster->body);
  EXPECT_EQ(view.value("leader", ""), "cp1") << view.dump(1);
  EXPECT_EQ(view["replicas"].size(), 3u) << view.dump(1);

  // gRPC on the other follower: the CLI writes there and reads its write.
  const std::string node = *nodes.begin();
  int rc = -1;
  const auto issued = std::chrono::steady_clock::now();
  std::string out = Cli(At(replicas_[2].grpc_port), {"cordon", node}, &rc);
  ASSERT_EQ(rc, 0) << out << Logs();
  out = Cli(At(replicas_[2].grpc_port), {"get", node, "-o", "json"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  const Json got = Json::parse(out, nullptr, false);
  ASSERT_TRUE(got.is_object()) << out;
  EXPECT_EQ(got.value("status", ""), "NODE_STATUS_CORDONED") << out;
  // The agent, wherever its stream is held, carries the command out.
  const std::string acked =
      "/api/v1/events?node=" + node + "&kind=command.succeeded";
  ASSERT_TRUE(
      WaitFor([&] { return Get(acked).size() == 1; }, std::chrono::seconds(10)))
      << Logs();
  std::cerr << "command through a follower carried out after "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             issued)
                   .count()
            << " s\n";
  out = Cli(At(lb_grpc_), {"cluster", "status", "-o", "json"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  const Json status = Json::parse(out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << out;
  EXPECT_EQ(status.value("leader", ""), "cp1") << out;
  // int64 in proto3's JSON: a string.
  EXPECT_GE(std::stoll(status.value("epoch", "0")), 1) << out;
  out = Cli(At(replicas_[1].grpc_port), {"uncordon", node}, &rc);
  ASSERT_EQ(rc, 0) << out;
  ExpectSamePool(0, nodes, instances);
}

TEST_F(HaE2eTest, KillingAFollowerLosesNothing) {
  std::set<std::string> nodes, instances;
  ASSERT_EQ(StartCluster(nodes, instances), 0);
  ExpectFollowersReady();
  if (HasFatalFailure()) return;
  // Streams and heartbeats relayed by cp2 break; the agents reconnect
  // through the balancer. Past the heartbeat timeout (10 s) every node is
  // still ACTIVE, nothing bought, nothing lost.
  replicas_[1].process->Signal(SIGKILL);
  replicas_[1].process->Wait(std::chrono::seconds(5));
  std::this_thread::sleep_for(std::chrono::seconds(12));
  ExpectSamePool(0, nodes, instances);
  const Json unhealthy =
      Get("/api/v1/events?kind=node.status_changed&pool=dev");
  for (const Json& e : unhealthy) {
    EXPECT_EQ(e.value("message", "").find("unhealthy"), std::string::npos)
        << e.dump();
  }
}

// PostgreSQL stops for longer than the lease: every replica says it is not
// ready and refuses writes (UNAVAILABLE, nothing acknowledged); the leader,
// unable to renew, steps down by exiting (75: its service manager restarts
// it). When the database is back a replica takes over by itself with the same
// pool, and writes work again.
TEST_F(HaE2eTest, RestartingPostgresLosesNothing) {
  std::set<std::string> nodes, instances;
  ASSERT_EQ(StartCluster(nodes, instances), 0);
  pg_.Stop();
  for (int i = 0; i < kReplicas; ++i) {
    httplib::Client c("127.0.0.1", replicas_[i].http_port);
    c.set_read_timeout(5, 0);
    EXPECT_TRUE(WaitFor(
        [&] {
          auto r = c.Get("/readyz");
          return !r || r->status == 503;
        },
        std::chrono::seconds(10)))
        << "cp" << i + 1 << "\n"
        << Logs();
  }
  int rc = -1;
  const std::string node = *nodes.begin();
  std::string out =
      Cli(At(replicas_[0].grpc_port), {"--timeout", "5s", "cordon", node}, &rc);
  EXPECT_NE(rc, 0) << out;
  std::this_thread::sleep_for(kLease * 2);
  pg_.Start();
  int leader = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        leader = -1;
        for (int i = 0; i < kReplicas; ++i) {
          if (replicas_[i].process->Wait(std::chrono::milliseconds(0)) >= 0)
            continue;  // exited (75) when it lost the lease
          httplib::Client c("127.0.0.1", replicas_[i].http_port);
          auto m = c.Get("/metrics");
          if (m && m->body.find("navarch_leader 1") != std::string::npos)
            leader = i;
        }
        return leader >= 0;
      },
      kTakeOver + kLease * 2))
      << Logs();
  std::cerr << "after the restart cp" << leader + 1 << " leads; cp1 "
            << (replicas_[0].process->Wait(std::chrono::milliseconds(0)) == 75
                    ? "exited 75"
                    : "runs")
            << "\n";
  ExpectSamePool(leader, nodes, instances);
  out = Cli(At(lb_grpc_), {"cordon", node}, &rc);
  EXPECT_EQ(rc, 0) << out << Logs();
}

TEST_F(HaE2eTest, AStoppedLeaderIsFencedWhenItWakesUp) {
  std::set<std::string> nodes, instances;
  int leader = StartCluster(nodes, instances);
  ASSERT_EQ(leader, 0);

  replicas_[0].process->Signal(SIGSTOP);
  int next = WaitForLeader(kLease + kTakeOver, /*except=*/0);
  ASSERT_NE(next, -1) << Logs();
  ExpectSamePool(next, nodes, instances);

  replicas_[0].process->Signal(SIGCONT);
  // It finds the lease gone at its next renewal and exits without acting.
  EXPECT_EQ(replicas_[0].process->Wait(std::chrono::seconds(20)), 75) << Logs();
  EXPECT_NE(testing::ReadFile(replicas_[0].log).find("lost the leader lease"),
            std::string::npos)
      << testing::ReadFile(replicas_[0].log);
  ExpectSamePool(next, nodes, instances);
}

}  // namespace
}  // namespace navarch
