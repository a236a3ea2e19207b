// navarch-bench, each subcommand briefly against the real binaries: they run,
// finish, and print what docs/performance.md reads. Nothing about speed: the
// machine running the tests may be busy.
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Process;
using testing::TempDir;

class NavarchBenchSmokeTest : public ::testing::Test {
 protected:
  static std::string Bench() { return testing::BinDir() + "/navarch-bench"; }
  static std::string ControlPlane() {
    return testing::BinDir() + "/control-plane";
  }

  // Runs navarch-bench to completion; returns its exit code and leaves the
  // last JSON object it printed in `json`.
  int RunBench(const std::string& name, const std::vector<std::string>& args,
               nlohmann::json* json) {
    std::string log = dir_.path() + "/" + name + ".log";
    Process p(Bench(), args, log);
    int rc = p.Wait(std::chrono::seconds(60));
    std::string out = testing::ReadFile(log);
    size_t start = out.rfind("\n{");
    start = start == std::string::npos ? out.find('{') : start + 1;
    if (start != std::string::npos) {
      *json = nlohmann::json::parse(out.substr(start), nullptr, false);
    }
    EXPECT_FALSE(json->is_discarded()) << out;
    EXPECT_TRUE(json->is_object()) << out;
    return rc;
  }

  // Starts a server that writes a ready file; returns its gRPC address.
  std::string StartServer(const std::string& binary,
                          const std::vector<std::string>& args,
                          const std::string& ready,
                          std::unique_ptr<Process>* process) {
    *process = std::make_unique<Process>(binary, args, ready + ".log");
    std::string content =
        testing::WaitForFile(ready, **process, std::chrono::seconds(30));
    EXPECT_FALSE(content.empty()) << testing::ReadFile(ready + ".log");
    return testing::JsonString(content, "grpc_address");
  }

  std::string StartEcho() {
    std::string ready = dir_.path() + "/echo.json";
    return StartServer(
        Bench(),
        {"echo-server", "--address", "127.0.0.1:0", "--ready-file", ready},
        ready, &echo_);
  }

  // `extra` is appended to the configuration (pools, providers).
  std::string StartControlPlane(const std::string& server_extra = "",
                                const std::string& extra = "") {
    std::string config = dir_.path() + "/navarch.yaml";
    testing::WriteFile(config,
                       "server:\n  address: \"127.0.0.1:0\"\n"
                       "  http_address: \"127.0.0.1:0\"\n"
                       "  data_dir: " +
                           dir_.path() + "/data\n" + server_extra +
                           "logging:\n  level: warn\n" + extra);
    std::string ready = dir_.path() + "/cp.json";
    return StartServer(ControlPlane(),
                       {"--config", config, "--ready-file", ready}, ready,
                       &cp_);
  }

  static void ExpectRunFigures(const nlohmann::json& j) {
    for (const char* key : {"requests", "errors", "throughput_rps", "p50_ms",
                            "p99_ms", "p999_ms"}) {
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    }
    EXPECT_GT(j.value("requests", 0), 0) << j.dump();
    EXPECT_EQ(j.value("errors", -1), 0) << j.dump();
    EXPECT_GT(j.value("throughput_rps", 0.0), 0.0) << j.dump();
    EXPECT_LE(j.value("p50_ms", 0.0), j.value("p99_ms", 0.0)) << j.dump();
    EXPECT_LE(j.value("p99_ms", 0.0), j.value("p999_ms", 0.0)) << j.dump();
  }

  TempDir dir_;
  std::unique_ptr<Process> echo_;
  std::unique_ptr<Process> cp_;
};

TEST_F(NavarchBenchSmokeTest, EchoServerClosedLoop) {
  std::string echo = StartEcho();
  ASSERT_FALSE(echo.empty());
  nlohmann::json j;
  ASSERT_EQ(
      RunBench("closed",
               {"heartbeat", "--target", echo, "--nodes", "20", "--duration",
                "1s", "--concurrency", "8", "--register", "--json"},
               &j),
      0)
      << j.dump();
  ExpectRunFigures(j);
  EXPECT_EQ(j["registration"].value("requests", 0), 20) << j.dump();
  // The echo server stops on SIGTERM.
  echo_->Signal(SIGTERM);
  EXPECT_EQ(echo_->Wait(std::chrono::seconds(10)), 0);
}

TEST_F(NavarchBenchSmokeTest, ControlPlaneAgainstEchoOpenLoop) {
  std::string echo = StartEcho();
  std::string cp = StartControlPlane();
  ASSERT_FALSE(echo.empty());
  ASSERT_FALSE(cp.empty());
  nlohmann::json j;
  ASSERT_EQ(RunBench("open",
                     {"heartbeat", "--target", echo + "," + cp, "--nodes", "50",
                      "--duration", "1s", "--rate", "200", "--register",
                      "--token", "ignored-without-auth", "--json"},
                     &j),
            0)
      << j.dump();
  ASSERT_EQ(j["targets"].size(), 2u) << j.dump();
  for (const auto& t : j["targets"]) {
    ExpectRunFigures(t);
    EXPECT_EQ(t.value("target_rps", 0.0), 200.0) << t.dump();
    EXPECT_EQ(t.value("unfinished", -1), 0) << t.dump();
  }
  ASSERT_EQ(j["throughput_ratio_to_first"].size(), 2u) << j.dump();
  EXPECT_GT(j["throughput_ratio_to_first"][1].get<double>(), 0.0);
}

TEST_F(NavarchBenchSmokeTest, XidDecisionFromTheEventLog) {
  std::string cp = StartControlPlane();
  ASSERT_FALSE(cp.empty());
  nlohmann::json j;
  ASSERT_EQ(RunBench("xid",
                     {"xid", "--target", cp, "--nodes", "5", "--rate", "0",
                      "--provision-timeout", "0s", "--json"},
                     &j),
            0)
      << j.dump();
  EXPECT_EQ(j.value("decided", 0), 5) << j.dump();
  EXPECT_EQ(j["decision"].value("count", 0), 5) << j.dump();
  EXPECT_TRUE(j.contains("p99_ms")) << j.dump();
  // No pools yet: no replacement is provisioned, and the result says so.
  EXPECT_EQ(j.value("provisioned", -1), 0) << j.dump();
  EXPECT_TRUE(j["provision"].is_null()) << j.dump();
}

TEST_F(NavarchBenchSmokeTest, XidToTheReplacementsProvision) {
  // A pool of the fake provider that replaces unhealthy nodes, looked at
  // every second: the bench's nodes join it through their pool label.
  std::string cp = StartControlPlane("  autoscale_interval: 1s\n",
                                     "pools:\n"
                                     "  bench:\n"
                                     "    provider: fake\n"
                                     "    instance_type: h100-8x\n"
                                     "    min_nodes: 0\n"
                                     "    max_nodes: 10\n"
                                     "    health:\n"
                                     "      unhealthy_after: 1\n"
                                     "      auto_replace: true\n");
  ASSERT_FALSE(cp.empty());
  nlohmann::json j;
  ASSERT_EQ(RunBench("xid-pool",
                     {"xid", "--target", cp, "--pool", "bench", "--fleet", "4",
                      "--nodes", "1", "--rate", "0", "--provision-timeout",
                      "20s", "--json"},
                     &j),
            0)
      << j.dump();
  EXPECT_EQ(j.value("decided", 0), 1) << j.dump();
  EXPECT_EQ(j.value("provisioned", 0), 1) << j.dump();
  EXPECT_EQ(j.value("headline", ""), "provision") << j.dump();
  EXPECT_EQ(j.value("provision_kind", ""), "pool.replacement_provisioned")
      << j.dump();
}

TEST_F(NavarchBenchSmokeTest, ScaleMemoryAndRestart) {
  nlohmann::json j;
  ASSERT_EQ(RunBench("scale",
                     {"scale", "--control-plane", ControlPlane(), "--nodes",
                      "200", "--work-dir", dir_.path() + "/scale", "--json"},
                     &j),
            0)
      << j.dump();
  EXPECT_EQ(j.value("listed_nodes", 0), 200) << j.dump();
  EXPECT_GT(j.value("rss_empty_mib", 0.0), 0.0) << j.dump();
  EXPECT_GT(j.value("restart_ready_ms", 0.0), 0.0) << j.dump();
  EXPECT_GE(j.value("restart_all_listed_ms", 0.0),
            j.value("restart_first_get_ms", 0.0))
      << j.dump();
  EXPECT_EQ(j["registration"].value("errors", -1), 0) << j.dump();
}

}  // namespace
}  // namespace navarch
