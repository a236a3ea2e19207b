// The real control plane with a `type: lambda` provider pointed at the fake
// Lambda API on loopback: its pool buys its instance with one launch that
// carries our tags, and the API key (read from api_key_file) appears nowhere
// the control plane writes (its log, its data folder), even when Lambda
// echoes it back in an error.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "testing/process.h"

namespace navarch {
namespace {

using json = nlohmann::json;
using testing::Process;

constexpr char kKey[] = "secret_e2e-lambda-key_5f3c9a1e7b";

bool Eventually(const std::function<bool()>& pred, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

// Every file under `dir` whose bytes contain `needle`.
std::vector<std::string> FilesHolding(const std::string& dir,
                                      const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) out.push_back(e.path());
  }
  return out;
}

TEST(LambdaE2eTest, PoolBuysItsInstanceAndNeverShowsTheKey) {
  FakeLambda fake(RealClock::Default(), kKey);
  fake.AddType({"gpu_8x_h100_sxm5",
                "8x H100 (80 GB SXM5)",
                "H100 (80 GB SXM5)",
                2392,
                208,
                1800,
                24780,
                8,
                {"us-east-1"}});
  fake.AddSshKey("ops");
  // The first launch fails with a message that echoes the key.
  fake.ForceNext("launch", {503, "", "global/internal-error",
                            std::string("upstream saw Bearer ") + kKey, ""});
  testing::TempDir dir;
  const std::string key_file = dir.path() + "/lambda-key";
  testing::WriteFile(key_file, std::string(kKey) + "\n");
  const std::string config = dir.path() + "/navarch.yaml";
  testing::WriteFile(config,
                     "server:\n"
                     "  address: \"127.0.0.1:0\"\n"
                     "  http_address: \"127.0.0.1:0\"\n"
                     "  data_dir: " +
                         dir.path() +
                         "/data\n"
                         "  autoscale_interval: 1s\n"
                         "providers:\n"
                         "  lam:\n"
                         "    type: lambda\n"
                         "    api_key_file: " +
                         key_file +
                         "\n"
                         "    endpoint: " +
                         fake.endpoint() +
                         "\n"
                         "    ssh_key_name: ops\n"
                         "pools:\n"
                         "  train:\n"
                         "    provider: lam\n"
                         "    instance_type: h100-8x\n"
                         "    region: us-east-1\n"
                         "    min_nodes: 1\n"
                         "    max_nodes: 1\n"
                         "    cooldown: 0s\n");
  const std::string log = dir.path() + "/cp.log";
  {
    Process server(testing::BinDir() + "/control-plane",
                   {"--config", config, "--ready-file", dir.path() + "/ready"},
                   log);
    ASSERT_FALSE(testing::WaitForFile(dir.path() + "/ready", server,
                                      std::chrono::seconds(30))
                     .empty())
        << testing::ReadFile(log);
    ASSERT_TRUE(Eventually([&] { return fake.launches() == 1; }, 60))
        << "launch calls: " << fake.calls("launch") << "\n"
        << testing::ReadFile(log);
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0);
  }
  EXPECT_EQ(fake.launches(), 1);
  EXPECT_EQ(fake.calls("launch"), 2);  // the failed one, then the good one
  // The failure was recorded (so the key check below means something)...
  const bool recorded =
      !FilesHolding(dir.path() + "/data", "upstream saw Bearer").empty() ||
      testing::ReadFile(log).find("upstream saw Bearer") != std::string::npos;
  EXPECT_TRUE(recorded) << testing::ReadFile(log);
  json body = json::parse(fake.launch_bodies()[0]);
  EXPECT_EQ(body["instance_type_name"], "gpu_8x_h100_sxm5");
  EXPECT_EQ(body["ssh_key_names"], json::array({"ops"}));
  std::map<std::string, std::string> tags;
  for (const json& t : body["tags"]) tags[t["key"]] = t["value"];
  EXPECT_EQ(tags["pool"], "train");
  EXPECT_EQ(tags["navarch-managed"], "true");
  EXPECT_FALSE(tags["navarch-token"].empty());
  EXPECT_TRUE(FilesHolding(dir.path() + "/data", kKey).empty());
  EXPECT_EQ(testing::ReadFile(log).find(kKey), std::string::npos)
      << testing::ReadFile(log);
}

}  // namespace
}  // namespace navarch
