// The control plane with one pool on the aws provider, pointed at FakeEc2
// (in this process, on 127.0.0.1): the pool fills with EC2 instances that
// carry our tags and the intent's ClientToken, no instance is bought twice,
// and the secret key appears nowhere the control plane writes. Credentials
// come from a shared credentials file; instance metadata is turned off, so
// nothing leaves the machine.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "testing/process.h"

namespace navarch {
namespace {

using testing::Eventually;

using testing::Process;
using testing::TempDir;

constexpr char kSecret[] = "fake-secret-key-123";

// Everything under `dir`, concatenated: the logs, the database, the WAL.
std::string EverythingWritten(const std::string& dir) {
  std::string all;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) all += testing::ReadFile(e.path().string());
  }
  return all;
}

class AwsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.Start().ok());
    testing::WriteFile(dir_.path() + "/aws-credentials",
                       std::string("[navarch]\naws_access_key_id = AKIDFAKE\n"
                                   "aws_secret_access_key = ") +
                           kSecret + "\n");
    for (const char* v :
         {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "AWS_PROFILE", "AWS_ENDPOINT_URL_EC2",
          "AWS_SHARED_CREDENTIALS_FILE"}) {
      unsetenv(v);
    }
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    config_ = dir_.path() + "/navarch.yaml";
    testing::WriteFile(config_, Config());
  }

  std::string Config() {
    return "server:\n"
           "  address: \"127.0.0.1:0\"\n"
           "  http_address: \"127.0.0.1:0\"\n"
           "  data_dir: " +
           dir_.path() +
           "/data\n"
           "  autoscale_interval: 1s\n"
           "providers:\n"
           "  ec2:\n"
           "    type: aws\n"
           "    region: us-east-1\n"
           "    endpoint: " +
           fake_.url() +
           "\n"
           "    image_id: ami-0e2e\n"
           "    subnet_ids: {us-east-1a: subnet-a, us-east-1b: subnet-b}\n"
           "    security_group_ids: [sg-1]\n"
           "    profile: navarch\n"
           "    credentials_file: " +
           dir_.path() +
           "/aws-credentials\n"
           "pools:\n"
           "  train:\n"
           "    provider: ec2\n"
           "    instance_type: h100-8x\n"
           "    min_nodes: 2\n"
           "    max_nodes: 3\n";
  }

  // `ready`: wait for the ready file (written after the first pool tick).
  std::unique_ptr<Process> Start(int n, bool ready_wait = true) {
    log_ = dir_.path() + "/cp" + std::to_string(n) + ".log";
    const std::string ready = dir_.path() + "/ready" + std::to_string(n);
    auto server = std::make_unique<Process>(
        testing::BinDir() + "/control-plane",
        std::vector<std::string>{"--config", config_, "--ready-file", ready},
        log_);
    if (!ready_wait) return server;
    EXPECT_FALSE(
        testing::WaitForFile(ready, *server, std::chrono::seconds(30)).empty())
        << testing::ReadFile(log_);
    return server;
  }

  FakeEc2 fake_;
  TempDir dir_;
  std::string config_;
  std::string log_;
};

TEST_F(AwsE2eTest, PoolFillsFromEc2WithoutDuplicatesOrLeakedSecrets) {
  // us-east-1a is out of p5s for the first call: it lands in us-east-1b.
  fake_.FailNext("RunInstances", 500, "InsufficientInstanceCapacity",
                 "We currently do not have sufficient p5.48xlarge capacity");
  std::unique_ptr<Process> server = Start(1);
  ASSERT_TRUE(Eventually([&] { return fake_.instances().size() >= 2; }))
      << testing::ReadFile(log_);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // a few more ticks
  const std::vector<FakeEc2::Instance> made = fake_.instances();
  EXPECT_EQ(made.size(), 2u) << testing::ReadFile(log_);
  std::set<std::string> tokens, zones;
  for (const FakeEc2::Instance& i : made) {
    EXPECT_EQ(i.instance_type, "p5.48xlarge");
    zones.insert(i.zone);
    EXPECT_EQ(i.tags.at("pool"), "train");
    EXPECT_EQ(i.tags.at("navarch-managed"), "true");
    EXPECT_FALSE(i.tags.at("navarch-token").empty());
    EXPECT_FALSE(i.client_token.empty());
    tokens.insert(i.client_token);
  }
  EXPECT_EQ(tokens.size(), made.size());
  EXPECT_TRUE(zones.contains("us-east-1b"));
  EXPECT_TRUE(fake_.refusals().empty());
  server->Signal(SIGTERM);
  server->Wait(std::chrono::seconds(30));
  EXPECT_EQ(EverythingWritten(dir_.path() + "/data").find(kSecret),
            std::string::npos);
  EXPECT_EQ(testing::ReadFile(log_).find(kSecret), std::string::npos);
}

// kill -9 while RunInstances is answered: the instances were made but the
// control plane never heard of them. After a restart its reconciliation
// finds them by their tags (DescribeInstances) and buys no more.
TEST_F(AwsE2eTest, KillBetweenCallAndAnswerBuysNothingTwice) {
  fake_.HoldRunAnswers(true);
  std::unique_ptr<Process> server = Start(1, /*ready_wait=*/false);
  // The pool provisions one at a time: the first call hangs on its answer.
  ASSERT_TRUE(Eventually([&] { return fake_.instances().size() == 1; }))
      << testing::ReadFile(log_);
  server->Signal(SIGKILL);
  server->Wait(std::chrono::seconds(30));
  fake_.HoldRunAnswers(false);
  server = Start(2);
  // The unanswered instance is adopted; one more fills the pool.
  ASSERT_TRUE(Eventually([&] { return fake_.instances().size() >= 2; }))
      << testing::ReadFile(log_);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const std::vector<FakeEc2::Instance> all = fake_.instances();
  EXPECT_EQ(all.size(), 2u) << testing::ReadFile(log_);
  for (const FakeEc2::Instance& i : all) {
    EXPECT_TRUE(i.state == "pending" || i.state == "running") << i.state;
  }
}

}  // namespace
}  // namespace navarch
