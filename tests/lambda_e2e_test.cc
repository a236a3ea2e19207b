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
#include <vector>

#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Eventually;

using json = nlohmann::json;
using testing::Process;

constexpr char kKey[] = "secret_e2e-lambda-key_5f3c9a1e7b";

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

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// `navarch ARGS` against `server`, stdout and stderr apart.
CliResult Navarch(const std::string& dir, const std::string& server,
                  const std::vector<std::string>& args) {
  static int runs = 0;
  const std::string n = std::to_string(++runs);
  std::string cmd = "exec env -u NAVARCH_SERVER -u NAVARCH_AUTH_TOKEN '" +
                    testing::BinDir() + "/navarch' -s " + server;
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >" + dir + "/out" + n + " 2>" + dir + "/err" + n;
  Process p("/bin/sh", {"-c", cmd}, dir + "/sh.log");
  const int code = p.Wait(std::chrono::seconds(60));
  return {code, testing::ReadFile(dir + "/out" + n),
          testing::ReadFile(dir + "/err" + n)};
}

// `navarch providers types` asks Lambda's API through the control plane:
// the price in cents per hour and the regions with capacity arrive as Lambda
// answers them, and a Lambda error comes back with Lambda's code.
TEST(LambdaE2eTest, ProvidersTypesShowsPricesAndRegionsWithCapacity) {
  FakeLambda fake(RealClock::Default(), kKey);
  fake.AddType({"gpu_8x_h100_sxm5",
                "8x H100 (80 GB SXM5)",
                "H100 (80 GB SXM5)",
                2392,
                208,
                1800,
                24780,
                8,
                {"us-east-1", "us-west-1"}});
  fake.AddType({"gpu_1x_a10",
                "1x A10 (24 GB PCIe)",
                "A10 (24 GB PCIe)",
                75,
                30,
                200,
                1400,
                1,
                {}});
  testing::TempDir dir;
  const std::string key_file = dir.path() + "/lambda-key";
  testing::WriteFile(key_file, std::string(kKey) + "\n");
  const std::string config = dir.path() + "/navarch.yaml";
  testing::WriteFile(config,
                     "server:\n  address: \"127.0.0.1:0\"\n"
                     "  http_address: \"127.0.0.1:0\"\n"
                     "  data_dir: " +
                         dir.path() +
                         "/data\n"
                         "providers:\n  lam:\n    type: lambda\n"
                         "    api_key_file: " +
                         key_file +
                         "\n"
                         "    endpoint: " +
                         fake.endpoint() +
                         "\n"
                         "    ssh_key_name: ops\n"
                         "pools:\n  train:\n    provider: lam\n"
                         "    instance_type: h100-8x\n"
                         "    min_nodes: 0\n    max_nodes: 1\n");
  const std::string log = dir.path() + "/cp.log";
  Process server(testing::BinDir() + "/control-plane",
                 {"--config", config, "--ready-file", dir.path() + "/ready"},
                 log);
  const std::string ready = testing::WaitForFile(dir.path() + "/ready", server,
                                                 std::chrono::seconds(30));
  ASSERT_FALSE(ready.empty()) << testing::ReadFile(log);
  const std::string address = testing::JsonString(ready, "grpc_address");

  CliResult list = Navarch(dir.path(), address, {"providers", "list"});
  EXPECT_EQ(list.code, 0) << list.err;
  EXPECT_NE(list.out.find("lam "), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("lambda"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("train"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("ready"), std::string::npos) << list.out;

  CliResult types =
      Navarch(dir.path(), address, {"providers", "types", "lam", "-o", "json"});
  ASSERT_EQ(types.code, 0) << types.err << testing::ReadFile(log);
  json got = json::parse(types.out);
  ASSERT_EQ(got.size(), 2u) << types.out;
  EXPECT_EQ(got[1]["name"], "gpu_8x_h100_sxm5");
  EXPECT_DOUBLE_EQ(got[1]["price_per_hour"].get<double>(), 23.92);
  EXPECT_EQ(got[1]["gpu_count"], 8);
  EXPECT_EQ(got[1]["gpu_model"], "H100");
  EXPECT_EQ(got[1]["regions"], json::array({"us-east-1", "us-west-1"}));
  EXPECT_EQ(got[1]["available"], true);
  EXPECT_EQ(got[1]["abstract_types"], json::array({"h100-8x"}));
  EXPECT_EQ(got[0]["name"], "gpu_1x_a10");
  EXPECT_EQ(got[0]["regions"], json::array());
  EXPECT_EQ(got[0]["available"], false);

  CliResult table = Navarch(dir.path(), address, {"providers", "types", "lam"});
  EXPECT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("$23.92"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("us-east-1,us-west-1"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("8x H100"), std::string::npos) << table.out;

  fake.ForceNext("types", {401, "", "global/invalid-api-key",
                           "API key was invalid, expired, or deleted.", ""});
  CliResult bad = Navarch(dir.path(), address, {"providers", "types", "lam"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("global/invalid-api-key"), std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find("the cloud refused the control plane's credentials"),
            std::string::npos)
      << bad.err;
  EXPECT_EQ(bad.err.find(kKey), std::string::npos) << bad.err;
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(std::chrono::seconds(30)), 0);
}

}  // namespace
}  // namespace navarch
