#include "navarch/agent/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/testing/fake_process_runner.h"

namespace navarch::agent {
namespace {

using testing::FakeProcessRunner;

NodeCommand Command(NodeCommandType type,
                    std::map<std::string, std::string> params = {}) {
  NodeCommand c;
  c.set_command_id("cmd-1");
  c.set_type(type);
  for (auto& [k, v] : params) (*c.mutable_parameters())[k] = v;
  return c;
}

class CommandHandlerTest : public ::testing::Test {
 protected:
  CommandHandlerTest() : fake_({.gpu_count = 2}), monitor_(fake_, clock_) {
    EXPECT_TRUE(monitor_.Start().ok());
  }

  CommandHandler Handler(AgentConfig config, std::string diagnostic = "") {
    return CommandHandler("node-1", std::move(config), std::move(diagnostic),
                          runner_, monitor_, clock_, NullLogger());
  }

  FakeClock clock_;
  FakeGpuBackend fake_;
  GpuMonitor monitor_;
  FakeProcessRunner runner_;
};

TEST_F(CommandHandlerTest, WithoutHooksCordonAndDrainSucceed) {
  CommandHandler h = Handler({});
  CommandResult r = h.Execute(Command(NODE_COMMAND_TYPE_CORDON));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.message, "cordon: no hook configured");
  EXPECT_TRUE(h.cordoned());
  EXPECT_TRUE(h.Execute(Command(NODE_COMMAND_TYPE_DRAIN)).succeeded);
  EXPECT_TRUE(h.draining());
  EXPECT_TRUE(h.Execute(Command(NODE_COMMAND_TYPE_UNCORDON)).succeeded);
  EXPECT_FALSE(h.cordoned());
  EXPECT_TRUE(runner_.calls().empty());
}

TEST_F(CommandHandlerTest, HooksGetTheCommandInTheirEnvironment) {
  AgentConfig config;
  config.hooks.cordon = "slurm-cordon";
  config.hooks.drain = "slurm-drain";
  config.hooks.uncordon = "slurm-resume";
  CommandHandler h = Handler(config);
  EXPECT_TRUE(
      h.Execute(Command(NODE_COMMAND_TYPE_CORDON, {{"reason", "xid 79"}}))
          .succeeded);
  EXPECT_TRUE(h.Execute(Command(NODE_COMMAND_TYPE_DRAIN,
                                {{"timeout", "60"}, {"force", "true"}}))
                  .succeeded);
  // Upstream's spelling of uncordon.
  EXPECT_TRUE(
      h.Execute(Command(NODE_COMMAND_TYPE_CORDON, {{"uncordon", "true"}}))
          .succeeded);
  auto calls = runner_.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].command, "slurm-cordon");
  EXPECT_EQ(calls[0].env.at("NAVARCH_NODE_ID"), "node-1");
  EXPECT_EQ(calls[0].env.at("NAVARCH_COMMAND"), "cordon");
  EXPECT_EQ(calls[0].env.at("NAVARCH_COMMAND_ID"), "cmd-1");
  EXPECT_EQ(calls[0].env.at("NAVARCH_PARAM_REASON"), "xid 79");
  EXPECT_EQ(calls[0].timeout, absl::Minutes(5));
  EXPECT_EQ(calls[1].command, "slurm-drain");
  EXPECT_EQ(calls[1].env.at("NAVARCH_DRAIN_TIMEOUT"), "60");
  EXPECT_EQ(calls[1].env.at("NAVARCH_DRAIN_FORCE"), "true");
  EXPECT_EQ(calls[1].timeout, absl::Seconds(90));
  EXPECT_EQ(calls[2].command, "slurm-resume");
}

TEST_F(CommandHandlerTest, FailingHookFailsTheCommandWithItsOutput) {
  AgentConfig config;
  config.hooks.cordon = "slurm-cordon";
  runner_.SetResult("slurm-cordon",
                    {1, false, "scontrol: error: Invalid node name\n"});
  CommandHandler h = Handler(config);
  CommandResult r = h.Execute(Command(NODE_COMMAND_TYPE_CORDON));
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(
      r.message,
      "cordon hook exited with status 1: scontrol: error: Invalid node name");
  EXPECT_FALSE(h.cordoned());
  runner_.SetResult("slurm-cordon", {137, true, ""});
  EXPECT_EQ(h.Execute(Command(NODE_COMMAND_TYPE_CORDON)).message,
            "cordon hook timed out after 5m");
}

TEST_F(CommandHandlerTest, DiagnosticDefaultsToTheNvmlSweep) {
  CommandHandler h = Handler({});
  CommandResult r = h.Execute(Command(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.message, "NVML sweep passed: 2 GPUs checked");
  ASSERT_TRUE(r.check.has_value());
  EXPECT_EQ(r.check->check_name(), "diagnostic");
  EXPECT_EQ(r.check->status(), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(r.check->details().at("tool"), "nvml-sweep");

  fake_.AddEccErrors(1, 0, 1);
  r = h.Execute(Command(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC));
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.check->status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r.message,
            "NVML sweep failed: GPU 1: 1 uncorrectable ECC error(s)");
}

TEST_F(CommandHandlerTest, DiagnosticCommandVerdictIsTheCheck) {
  runner_.SetResult(kDcgmDiagnostic, {226, false, "| Memory | Fail |\n"});
  CommandHandler h = Handler({}, kDcgmDiagnostic);
  CommandResult r = h.Execute(Command(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC));
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.check->status(), HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(r.check->details().at("tool"), "dcgmi diag -r 1");
  EXPECT_NE(r.message.find("failed with status 226: | Memory | Fail |"),
            std::string::npos);
}

TEST_F(CommandHandlerTest, TerminateDrainsThenAsksToStop) {
  AgentConfig config;
  config.hooks.drain = "drain-jobs";
  config.shutdown_command = "poweroff";
  CommandHandler h = Handler(config);
  CommandResult r = h.Execute(Command(NODE_COMMAND_TYPE_TERMINATE));
  EXPECT_TRUE(r.succeeded);
  EXPECT_TRUE(r.run_shutdown_command);
  EXPECT_TRUE(r.stop_agent);
  ASSERT_EQ(runner_.calls().size(), 1u);
  EXPECT_EQ(runner_.calls()[0].command, "drain-jobs");
  h.RunShutdownCommand();
  EXPECT_EQ(runner_.calls()[1].command, "poweroff");

  CommandResult forced = h.Execute(Command(
      NODE_COMMAND_TYPE_TERMINATE, {{"force", "true"}, {"exit", "false"}}));
  EXPECT_FALSE(forced.stop_agent);
  EXPECT_EQ(runner_.calls().size(), 2u);  // no drain when forced
}

TEST_F(CommandHandlerTest, UnknownCommandFails) {
  CommandHandler h = Handler({});
  CommandResult r = h.Execute(Command(static_cast<NodeCommandType>(42)));
  EXPECT_FALSE(r.succeeded);
  EXPECT_NE(r.message.find("unsupported command type"), std::string::npos);
}

TEST(DiagnosticResolutionTest, ConfiguredThenDcgmThenSweep) {
  EXPECT_EQ(ResolveDiagnosticCommand("my-diag", ""), "my-diag");
  EXPECT_EQ(ResolveDiagnosticCommand("", "/nonexistent"), "");
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("diag-path-" + std::to_string(getpid())))
                        .string();
  std::filesystem::create_directories(dir);
  std::string dcgmi = dir + "/dcgmi";
  std::ofstream(dcgmi) << "#!/bin/sh\n";
  chmod(dcgmi.c_str(), 0755);
  EXPECT_EQ(ResolveDiagnosticCommand("", "/nonexistent:" + dir),
            "dcgmi diag -r 1");
  std::filesystem::remove_all(dir);
}

TEST(PosixProcessRunnerTest, RunsThroughTheShell) {
  RealClock clock;
  PosixProcessRunner runner(clock);
  auto r = runner.RunShell("echo \"hello $WHO\"; echo oops >&2; exit 3",
                           {{"WHO", "hook"}}, absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->output, "hello hook\noops\n");
}

TEST(PosixProcessRunnerTest, KillsTheProcessGroupAtTheTimeout) {
  RealClock clock;
  PosixProcessRunner runner(clock);
  // The child's child holds the pipe too; the group kill ends both.
  auto r = runner.RunShell("sleep 30 & sleep 30", {}, absl::Milliseconds(200));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + 9);
}

TEST(PosixProcessRunnerTest, KillAllStopsNewRuns) {
  RealClock clock;
  PosixProcessRunner runner(clock);
  runner.KillAll();
  EXPECT_TRUE(absl::IsCancelled(
      runner.RunShell("true", {}, absl::Seconds(1)).status()));
}

}  // namespace
}  // namespace navarch::agent
