// A second start of the real control-plane binary on the same data folder,
// with a pool of real node-agent processes (the local provider), after each
// way the first one can end (issue 15, "A second start leaves a pool
// wedged"):
//   - a clean stop (SIGTERM): the agents stop with it, so their instances
//     are gone at the second start;
//   - a clean stop with keep_instances: the agents keep running;
//   - kill -9: the agents keep running (their own session, like VMs);
//   - kill -9 and the agents lost too (a reboot of the machine).
// Each time the pool is full and healthy again within one autoscale interval
// plus start-up, and stays so after the heartbeat grace of the restart; the
// nodes of vanished instances are terminated with a reason, never counted
// toward the replacement breaker. The REST API is polled: real processes
// take real time. No agent outlives a test.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "httplib.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::FreePort;

using Json = nlohmann::json;
using testing::Process;
using testing::TempDir;
using Seconds = std::chrono::duration<double>;

// The pool's autoscale interval, and how long a start may take on top of it
// (the binary, reconciliation, two agents starting and registering) on a
// loaded two-core machine.
constexpr std::chrono::seconds kAutoscaleInterval(2);
constexpr std::chrono::seconds kStartUp(10);
// Liveness after a restart: every node gets this much grace.
constexpr std::chrono::seconds kHeartbeatTimeout(4);

enum class Stop { kClean, kCleanKeepInstances, kKill9, kKill9AndAgentsLost };

class RestartE2eTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_ != nullptr) server_->Signal(SIGKILL);
    // Agents are not our children (nor, after a kill -9, anybody's but
    // init's): kill whatever still runs, so that no test leaks processes.
    for (const std::string& id : LiveAgents()) kill(AgentPid(id), SIGKILL);
  }

  void WriteConfig(bool keep_instances) {
    config_ = dir_.path() + "/navarch.yaml";
    testing::WriteFile(config_,
                       "server:\n"
                       "  address: \"127.0.0.1:" +
                           std::to_string(FreePort()) +
                           "\"\n"
                           "  http_address: \"127.0.0.1:0\"\n"
                           "  data_dir: " +
                           dir_.path() +
                           "/data\n"
                           "  heartbeat_interval: 1s\n"
                           "  heartbeat_timeout: " +
                           std::to_string(kHeartbeatTimeout.count()) +
                           "s\n"
                           "  autoscale_interval: " +
                           std::to_string(kAutoscaleInterval.count()) +
                           "s\n"
                           "providers:\n"
                           "  local:\n"
                           "    type: local\n"
                           "    gpu_count: 2\n"
                           "    keep_instances: " +
                           (keep_instances ? "true" : "false") +
                           "\n"
                           "    agent_path: " +
                           testing::BinDir() +
                           "/node-agent\n"
                           "pools:\n"
                           "  dev:\n"
                           "    provider: local\n"
                           "    instance_type: local-2x\n"
                           "    min_nodes: 2\n"
                           "    max_nodes: 2\n"
                           "    cooldown: 0s\n"
                           "    health:\n"
                           "      unhealthy_after: 1\n"
                           "      drain_timeout: 2s\n");
  }

  void StartControlPlane(int n) {
    const std::string ready = dir_.path() + "/ready" + std::to_string(n);
    log_ = dir_.path() + "/cp" + std::to_string(n) + ".log";
    started_ = std::chrono::steady_clock::now();
    server_ = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config_, "--ready-file", ready},
        log_);
    const std::string content = testing::WaitForFile(ready, *server_, kStartUp);
    ASSERT_FALSE(content.empty()) << testing::ReadFile(log_);
    const std::string http = testing::JsonString(content, "http_address");
    ASSERT_FALSE(http.empty()) << content;
    http_ = std::make_unique<httplib::Client>("http://" + http);
    http_->set_read_timeout(5, 0);
  }

  Json Get(const std::string& path) {
    auto r = http_->Get(path);
    if (!r || r->status != 200) return Json();
    return Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }

  // Node id -> status ("NODE_STATUS_ACTIVE", ...) of the pool's nodes.
  std::map<std::string, std::string> Nodes() {
    std::map<std::string, std::string> out;
    const Json nodes = Get("/api/v1/nodes?pool=dev");
    if (!nodes.is_array()) return out;
    for (const Json& n : nodes) {
      out[n.value("node_id", "")] = n.value("status", "");
    }
    return out;
  }
  std::set<std::string> Active() {
    std::set<std::string> out;
    for (const auto& [id, status] : Nodes()) {
      if (status == "NODE_STATUS_ACTIVE") out.insert(id);
    }
    return out;
  }

  std::string InstanceDir(const std::string& id) {
    return dir_.path() + "/data/local/" + id;
  }
  std::set<std::string> InstanceFolders() {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator(dir_.path() + "/data/local", ec)) {
      if (e.is_directory()) out.insert(e.path().filename().string());
    }
    return out;
  }
  int AgentPid(const std::string& id) {
    try {
      return std::stoi(testing::ReadFile(InstanceDir(id) + "/agent.pid"));
    } catch (...) {
      return 0;
    }
  }
  // Whether instance `id`'s agent process runs (not a zombie, and the pid
  // was not reused by something else).
  bool AgentRuns(const std::string& id) {
    const int pid = AgentPid(id);
    if (pid <= 0 || kill(pid, 0) != 0) return false;
    const std::string proc = "/proc/" + std::to_string(pid);
    const std::string stat = testing::ReadFile(proc + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size() ||
        stat[paren + 2] == 'Z') {
      return false;
    }
    const std::string needle = std::string("--node-id") + '\0' + id + '\0';
    return testing::ReadFile(proc + "/cmdline").find(needle) !=
           std::string::npos;
  }
  std::set<std::string> LiveAgents() {
    std::set<std::string> out;
    for (const std::string& id : InstanceFolders()) {
      if (AgentRuns(id)) out.insert(id);
    }
    return out;
  }

  // Full and healthy: two ACTIVE nodes, and they are exactly the running
  // agents (a node whose machine is gone must not count), nothing pending,
  // the breaker closed.
  bool FullAndHealthy(std::string* why) {
    const Json pool = Get("/api/v1/pools/dev");
    const std::set<std::string> active = Active();
    const std::set<std::string> live = LiveAgents();
    *why = "pool " + pool.dump() + "; active nodes " + Join(active) +
           "; running agents " + Join(live);
    return pool.is_object() && pool.value("healthy_nodes", 0) == 2 &&
           pool.value("current_nodes", 0) == 2 &&
           pool.value("pending_instances", 0) == 0 &&
           !pool.value("replacement_breaker_open", false) &&
           active.size() == 2 && active == live;
  }
  static std::string Join(const std::set<std::string>& s) {
    std::string out = "{";
    for (const std::string& x : s) out += (out.size() > 1 ? "," : "") + x;
    return out + "}";
  }

  // Polls until `pred` holds or `deadline` passes (real processes).
  static bool Until(std::chrono::steady_clock::time_point deadline,
                    const std::function<bool()>& pred) {
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }

  Json Events(const std::string& query) {
    const Json events = Get("/api/v1/events?page_size=1000&" + query);
    return events.is_array() ? events : Json::array();
  }

  // The whole scenario: start, get full, end the first control plane as
  // `stop` says, start a second one on the same data folder.
  void Run(Stop stop);
  void EndFirst(Stop stop, const std::set<std::string>& first_nodes);
  void CheckSecond(Stop stop, const std::set<std::string>& first_nodes);

  TempDir dir_;
  std::string config_;
  std::string log_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<Process> server_;
  std::unique_ptr<httplib::Client> http_;
};

void RestartE2eTest::Run(Stop stop) {
  WriteConfig(/*keep_instances=*/stop == Stop::kCleanKeepInstances);
  StartControlPlane(1);
  std::string why;
  ASSERT_TRUE(Until(started_ + kAutoscaleInterval + kStartUp,
                    [&] { return FullAndHealthy(&why); }))
      << why << "\n"
      << testing::ReadFile(log_);
  const std::set<std::string> first_nodes = Active();
  EndFirst(stop, first_nodes);
  if (HasFatalFailure()) return;
  StartControlPlane(2);
  if (HasFatalFailure()) return;
  CheckSecond(stop, first_nodes);
  if (HasFatalFailure()) return;

  // A clean stop with the default keep_instances: false takes every agent
  // down with it, those it adopted at start-up included.
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(std::chrono::seconds(30)), 0);
  server_.reset();
  if (stop != Stop::kCleanKeepInstances) {
    EXPECT_TRUE(Until(std::chrono::steady_clock::now() + kStartUp,
                      [&] { return LiveAgents().empty(); }))
        << "agents still running: " << Join(LiveAgents());
  }
}

void RestartE2eTest::EndFirst(Stop stop,
                              const std::set<std::string>& first_nodes) {
  const bool clean = stop == Stop::kClean || stop == Stop::kCleanKeepInstances;
  server_->Signal(clean ? SIGTERM : SIGKILL);
  ASSERT_EQ(server_->Wait(std::chrono::seconds(30)), clean ? 0 : 128 + SIGKILL)
      << testing::ReadFile(log_);
  server_.reset();
  if (stop == Stop::kKill9AndAgentsLost) {
    for (const std::string& id : first_nodes) kill(AgentPid(id), SIGKILL);
  }
  const bool agents_survive =
      stop == Stop::kCleanKeepInstances || stop == Stop::kKill9;
  // The agents run in their own session: only an explicit stop ends them.
  ASSERT_TRUE(Until(std::chrono::steady_clock::now() + kStartUp,
                    [&] {
                      return LiveAgents() == (agents_survive
                                                  ? first_nodes
                                                  : std::set<std::string>());
                    }))
      << "running agents: " << Join(LiveAgents())
      << ", first nodes: " << Join(first_nodes);
}

void RestartE2eTest::CheckSecond(Stop stop,
                                 const std::set<std::string>& first_nodes) {
  std::string why;
  ASSERT_TRUE(Until(started_ + kAutoscaleInterval + kStartUp,
                    [&] { return FullAndHealthy(&why); }))
      << why << "\n"
      << testing::ReadFile(log_);
  const Seconds took = std::chrono::steady_clock::now() - started_;
  std::cout << "full and healthy " << took.count()
            << " s after the second start\n";
  const bool agents_survive =
      stop == Stop::kCleanKeepInstances || stop == Stop::kKill9;
  if (agents_survive) {
    EXPECT_EQ(Active(), first_nodes);  // the same machines, adopted
  } else {
    for (const std::string& id : Active()) EXPECT_FALSE(first_nodes.count(id));
    // Each old node ended with its instance, and says why.
    const std::map<std::string, std::string> nodes = Nodes();
    for (const std::string& id : first_nodes) {
      EXPECT_EQ(nodes.at(id), "NODE_STATUS_TERMINATED") << id;
      const Json events = Events("node=" + id + "&kind=node.status_changed");
      EXPECT_NE(events.dump().find("gone at the provider"), std::string::npos)
          << events.dump(1);
    }
  }
  const std::set<std::string> folders = InstanceFolders();

  // Past the restart's heartbeat grace and a few evaluations: the losses
  // reconciliation explained never reach the breaker, and nothing is
  // replaced again.
  std::this_thread::sleep_until(started_ + kHeartbeatTimeout +
                                2 * kAutoscaleInterval);
  EXPECT_TRUE(FullAndHealthy(&why)) << why << "\n" << testing::ReadFile(log_);
  EXPECT_EQ(InstanceFolders(), folders);
  const Json tripped = Events("kind=pool.breaker_tripped");
  EXPECT_TRUE(tripped.empty()) << tripped.dump(1);
}

TEST_F(RestartE2eTest, AfterACleanStop) { Run(Stop::kClean); }

TEST_F(RestartE2eTest, AfterACleanStopWithKeepInstances) {
  Run(Stop::kCleanKeepInstances);
}

TEST_F(RestartE2eTest, AfterKill9) { Run(Stop::kKill9); }

TEST_F(RestartE2eTest, AfterKill9WithTheAgentsLostToo) {
  Run(Stop::kKill9AndAgentsLost);
}

}  // namespace
}  // namespace navarch
