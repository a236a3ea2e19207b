#include "navarch/provider/local/local_provider.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {
namespace fs = std::filesystem;

// A stand-in agent: runs until signalled, keeping its arguments visible in
// /proc/<pid>/cmdline as the real agent does.
std::string WriteFakeAgent(const fs::path& dir) {
  const fs::path path = dir / "fake-agent";
  std::ofstream(path) << "#!/bin/sh\necho started \"$@\"\n"
                         "echo \"token=[$NAVARCH_AUTH_TOKEN]\"\n"
                         "while true; do sleep 0.05; done\n";
  chmod(path.c_str(), 0755);
  return path.string();
}

class LocalProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("navarch-local-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.name = "local";
    options_.root = (dir_ / "local").string();
    options_.agent_path = WriteFakeAgent(dir_);
    options_.server_address = [] { return std::string("127.0.0.1:1"); };
    options_.gpu_count = 2;
    options_.kill_grace = absl::Seconds(1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  ProvisionRequest Req(const std::string& token) {
    ProvisionRequest r;
    r.idempotency_token = token;
    r.labels = {{"pool", "train"}};
    return r;
  }
  // Polls (real processes need real time) until `pred` or 5 s.
  template <typename Pred>
  static bool Eventually(Pred pred) {
    for (int i = 0; i < 100; ++i) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return pred();
  }

  fs::path dir_;
  FakeClock clock_;
  LocalProviderOptions options_;
};

TEST_F(LocalProviderTest, ProvisionStartsAnAgentWithItsFolder) {
  options_.keep_instances = false;
  LocalProvider provider(clock_, options_);
  auto i = provider.Provision(Req("t1"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->id, "local-1");
  EXPECT_EQ(i->state, ProviderInstanceState::kRunning);
  EXPECT_EQ(i->labels.at("pool"), "train");
  const fs::path d = provider.InstanceDir(i->id);
  EXPECT_TRUE(fs::exists(d / "agent.pid"));
  EXPECT_TRUE(fs::exists(d / "kmsg"));
  ASSERT_TRUE(Eventually([&] {
    std::ifstream log(d / "agent.log");
    std::string all((std::istreambuf_iterator<char>(log)), {});
    return all.find("--node-id local-1") != std::string::npos &&
           all.find("--gpu-backend fake --fake-gpus 2") != std::string::npos &&
           all.find("--pool train") != std::string::npos;
  }));
  // Same token: the same instance, no second process.
  auto again = provider.Provision(Req("t1"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, "local-1");
  EXPECT_EQ(provider.List()->size(), 1u);
  auto second = provider.Provision(Req("t2"));
  EXPECT_EQ(second->id, "local-2");
  EXPECT_EQ(provider.List()->size(), 2u);
}

// The agent is a "VM": its own session (a Ctrl-C of the control plane's
// group does not reach it), and the token only from the provider, never one
// the control plane inherited: its own node's token when there is one.
TEST_F(LocalProviderTest, TheAgentGetsItsOwnSessionAndOnlyItsToken) {
  ASSERT_EQ(setenv("NAVARCH_AUTH_TOKEN", "inherited", 1), 0);
  for (const std::string prefix : {"given-for-", ""}) {
    options_.auth_token = [prefix](const std::string& node_id) {
      return prefix.empty() ? "" : prefix + node_id;
    };
    LocalProvider provider(clock_, options_);
    auto i = provider.Provision(Req("t-" + prefix));
    ASSERT_TRUE(i.ok()) << i.status();
    const std::string token = prefix.empty() ? "" : prefix + i->id;
    const fs::path d = provider.InstanceDir(i->id);
    const int pid = std::stoi(
        std::string(std::istreambuf_iterator<char>(
                        *std::make_unique<std::ifstream>(d / "agent.pid")),
                    {}));
    EXPECT_EQ(getsid(pid), pid);
    EXPECT_TRUE(Eventually([&] {
      std::ifstream log(d / "agent.log");
      std::string all((std::istreambuf_iterator<char>(log)), {});
      return all.find("token=[" + token + "]") != std::string::npos;
    })) << token;
  }
  unsetenv("NAVARCH_AUTH_TOKEN");
}

TEST_F(LocalProviderTest, FoundAgainAfterRestartAndTerminated) {
  options_.keep_instances = true;
  std::string id;
  {
    LocalProvider first(clock_, options_);
    auto i = first.Provision(Req("t1"));
    ASSERT_TRUE(i.ok()) << i.status();
    id = i->id;
  }  // keep_instances: the agent keeps running
  LocalProvider second(clock_, options_);
  auto list = second.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, id);
  // A retried provision after the restart does not start a second agent.
  EXPECT_EQ(second.Provision(Req("t1"))->id, id);
  ASSERT_TRUE(second.Terminate(id).ok());
  EXPECT_TRUE(second.List()->empty());
  EXPECT_TRUE(second.Terminate(id).ok());
  EXPECT_EQ(second.Terminate("local-99").code(), absl::StatusCode::kNotFound);
  int pid = std::stoi(std::string(
      std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(
          fs::path(second.InstanceDir(id)) / "agent.pid")),
      {}));
  EXPECT_TRUE(Eventually([&] {
    int status = 0;
    return waitpid(pid, &status, WNOHANG) == pid;
  }));
}

TEST_F(LocalProviderTest, DeadAgentLeavesTheList) {
  LocalProvider provider(clock_, options_);
  auto i = provider.Provision(Req("t1"));
  ASSERT_TRUE(i.ok());
  int pid = std::stoi(std::string(
      std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(
          fs::path(provider.InstanceDir(i->id)) / "agent.pid")),
      {}));
  kill(pid, SIGKILL);  // like `kill -9` of an agent
  EXPECT_TRUE(Eventually([&] { return provider.List()->empty(); }));
  EXPECT_TRUE(provider.Terminate(i->id).ok());
}

TEST_F(LocalProviderTest, MissingAgentIsFailedPrecondition) {
  options_.agent_path = (dir_ / "nope").string();
  LocalProvider provider(clock_, options_);
  EXPECT_EQ(provider.Provision(Req("t1")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(LocalProviderTest, CleanShutdownStopsInstances) {
  int pid = 0;
  {
    LocalProvider provider(clock_, options_);
    auto i = provider.Provision(Req("t1"));
    ASSERT_TRUE(i.ok());
    pid = std::stoi(std::string(
        std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(
            fs::path(provider.InstanceDir(i->id)) / "agent.pid")),
        {}));
  }
  EXPECT_TRUE(Eventually([&] {
    int status = 0;
    return waitpid(pid, &status, WNOHANG) == pid;
  }));
}

}  // namespace
}  // namespace navarch
