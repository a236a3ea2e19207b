#include "navarch/agent/commands.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"

namespace navarch::agent {
namespace {

std::string Param(const NodeCommand& c, const std::string& key,
                  const std::string& fallback = "") {
  auto it = c.parameters().find(key);
  return it == c.parameters().end() ? fallback : it->second;
}

bool IsTrue(const std::string& v) {
  std::string l = absl::AsciiStrToLower(v);
  return l == "true" || l == "1" || l == "yes";
}

// The last non-empty line of a command's output, for short messages.
std::string Tail(const std::string& output, size_t max = 512) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(output), '\n');
  std::string tail;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    absl::string_view l = absl::StripAsciiWhitespace(*it);
    if (!l.empty()) {
      tail = std::string(l);
      break;
    }
  }
  if (tail.size() > max) tail = tail.substr(0, max) + "...";
  return tail;
}

}  // namespace

std::string ResolveDiagnosticCommand(const std::string& configured,
                                     absl::string_view path_env) {
  if (!configured.empty()) return configured;
  if (FindExecutable("dcgmi", path_env)) return kDcgmDiagnostic;
  return "";
}

CommandHandler::CommandHandler(std::string node_id, AgentConfig config,
                               std::string diagnostic_command,
                               ProcessRunner& processes, GpuMonitor& monitor,
                               Clock& clock, Logger log)
    : node_id_(std::move(node_id)),
      config_(std::move(config)),
      diagnostic_command_(std::move(diagnostic_command)),
      processes_(processes),
      monitor_(monitor),
      clock_(clock),
      log_(std::move(log)) {}

bool CommandHandler::cordoned() const {
  absl::MutexLock lock(&mu_);
  return cordoned_;
}

bool CommandHandler::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

std::map<std::string, std::string> CommandHandler::Env(
    const NodeCommand& command) const {
  std::map<std::string, std::string> env;
  env["NAVARCH_NODE_ID"] = node_id_;
  env["NAVARCH_COMMAND"] = ShortName(command.type());
  env["NAVARCH_COMMAND_ID"] = command.command_id();
  for (const auto& [k, v] : command.parameters()) {
    std::string name = "NAVARCH_PARAM_";
    for (char c : k) {
      name += absl::ascii_isalnum(static_cast<unsigned char>(c))
                  ? absl::ascii_toupper(static_cast<unsigned char>(c))
                  : '_';
    }
    env[name] = v;
  }
  return env;
}

CommandResult CommandHandler::RunHook(
    const NodeCommand& command, const std::string& name,
    const std::string& hook, std::map<std::string, std::string> extra_env,
    absl::Duration timeout) {
  CommandResult r;
  if (hook.empty()) {
    r.succeeded = true;
    r.message = absl::StrCat(name, ": no hook configured");
    return r;
  }
  auto env = Env(command);
  for (auto& [k, v] : extra_env) env[k] = v;
  log_.Info("running hook",
            {{"hook", name}, {"command_id", command.command_id()}});
  auto result = processes_.RunShell(hook, env, timeout);
  if (!result.ok()) {
    r.message = absl::StrCat(
        name, " hook could not start: ", result.status().message());
    return r;
  }
  if (result->timed_out) {
    r.message =
        absl::StrCat(name, " hook timed out after ", FormatGoDuration(timeout));
  } else if (result->exit_code != 0) {
    r.message =
        absl::StrCat(name, " hook exited with status ", result->exit_code);
  } else {
    r.succeeded = true;
    r.message = absl::StrCat(name, " hook succeeded");
  }
  std::string tail = Tail(result->output);
  if (!tail.empty()) absl::StrAppend(&r.message, ": ", tail);
  return r;
}

CommandResult CommandHandler::Diagnose(const NodeCommand& command) {
  HealthCheckResult check;
  check.set_check_name("diagnostic");
  auto& details = *check.mutable_details();
  details["command_id"] = command.command_id();
  std::string test = Param(command, "test", "all");
  details["test"] = test;
  CommandResult r;
  if (diagnostic_command_.empty()) {
    SweepResult sweep = monitor_.Sweep();
    details["tool"] = "nvml-sweep";
    details["gpus_checked"] = absl::StrCat(sweep.gpus_checked);
    r.succeeded = sweep.passed;
    r.message = sweep.passed
                    ? absl::StrCat("NVML sweep passed: ", sweep.gpus_checked,
                                   " GPUs checked")
                    : absl::StrCat("NVML sweep failed: ",
                                   absl::StrJoin(sweep.problems, "; "));
  } else {
    details["tool"] = diagnostic_command_;
    auto env = Env(command);
    auto result = processes_.RunShell(diagnostic_command_, env,
                                      config_.diagnostic_timeout);
    if (!result.ok()) {
      r.message = absl::StrCat("diagnostic could not start: ",
                               result.status().message());
    } else if (result->timed_out) {
      r.message = absl::StrCat("diagnostic timed out after ",
                               FormatGoDuration(config_.diagnostic_timeout));
    } else {
      r.succeeded = result->exit_code == 0;
      r.message =
          absl::StrCat("diagnostic `", diagnostic_command_, "` ",
                       r.succeeded ? "passed" : "failed with status ",
                       r.succeeded ? "" : absl::StrCat(result->exit_code));
      std::string tail = Tail(result->output);
      if (!tail.empty()) absl::StrAppend(&r.message, ": ", tail);
    }
    if (result.ok()) details["output_tail"] = Tail(result->output, 1024);
  }
  check.set_status(r.succeeded ? HEALTH_STATUS_HEALTHY
                               : HEALTH_STATUS_UNHEALTHY);
  check.set_message(r.message);
  *check.mutable_timestamp() = ToTimestamp(clock_.Now());
  r.check = std::move(check);
  return r;
}

CommandResult CommandHandler::Execute(const NodeCommand& command) {
  switch (command.type()) {
    case NODE_COMMAND_TYPE_CORDON:
      if (!IsTrue(Param(command, "uncordon"))) {
        CommandResult r = RunHook(command, "cordon", config_.hooks.cordon, {},
                                  config_.hooks.timeout);
        if (r.succeeded) {
          absl::MutexLock lock(&mu_);
          cordoned_ = true;
        }
        return r;
      }
      [[fallthrough]];
    case NODE_COMMAND_TYPE_UNCORDON: {
      CommandResult r = RunHook(command, "uncordon", config_.hooks.uncordon, {},
                                config_.hooks.timeout);
      if (r.succeeded) {
        absl::MutexLock lock(&mu_);
        cordoned_ = false;
        draining_ = false;
      }
      return r;
    }
    case NODE_COMMAND_TYPE_DRAIN: {
      int64_t seconds = 300;
      if (!absl::SimpleAtoi(Param(command, "timeout", "300"), &seconds) ||
          seconds <= 0) {
        seconds = 300;
      }
      {
        absl::MutexLock lock(&mu_);
        cordoned_ = true;
        draining_ = true;
      }
      return RunHook(
          command, "drain", config_.hooks.drain,
          {{"NAVARCH_DRAIN_TIMEOUT", absl::StrCat(seconds)},
           {"NAVARCH_DRAIN_FORCE",
            IsTrue(Param(command, "force")) ? "true" : "false"}},
          // The hook gets the drain's own timeout plus a margin to report.
          absl::Seconds(seconds) + absl::Seconds(30));
    }
    case NODE_COMMAND_TYPE_RUN_DIAGNOSTIC:
      return Diagnose(command);
    case NODE_COMMAND_TYPE_TERMINATE: {
      CommandResult r;
      r.succeeded = true;
      std::vector<std::string> steps;
      if (!IsTrue(Param(command, "force")) && !config_.hooks.drain.empty()) {
        int64_t seconds = 300;
        if (!absl::SimpleAtoi(Param(command, "timeout", "300"), &seconds) ||
            seconds <= 0) {
          seconds = 300;
        }
        CommandResult drain =
            RunHook(command, "drain", config_.hooks.drain,
                    {{"NAVARCH_DRAIN_TIMEOUT", absl::StrCat(seconds)},
                     {"NAVARCH_DRAIN_FORCE", "false"}},
                    absl::Seconds(seconds) + absl::Seconds(30));
        // A failed drain does not stop a terminate: the instance is going away.
        steps.push_back(drain.message);
      }
      r.run_shutdown_command = !config_.shutdown_command.empty();
      r.stop_agent = Param(command, "exit") != "false";
      steps.push_back(r.run_shutdown_command
                          ? absl::StrCat("running shutdown command `",
                                         config_.shutdown_command, "`")
                          : "no shutdown command configured");
      steps.push_back(r.stop_agent ? "the agent stops"
                                   : "the agent keeps running (exit=false)");
      r.message = absl::StrJoin(steps, "; ");
      return r;
    }
    default: {
      CommandResult r;
      std::string name = NodeCommandType_Name(command.type());
      r.message = absl::StrCat(
          "unsupported command type ",
          name.empty() ? absl::StrCat(static_cast<int>(command.type())) : name);
      return r;
    }
  }
}

void CommandHandler::RunShutdownCommand() {
  if (config_.shutdown_command.empty()) return;
  log_.Warn("running shutdown command",
            {{"command", config_.shutdown_command}});
  auto result = processes_.RunShell(config_.shutdown_command,
                                    {{"NAVARCH_NODE_ID", node_id_}},
                                    config_.shutdown_timeout);
  if (!result.ok()) {
    log_.Error("shutdown command could not start",
               {{"error", result.status()}});
  } else if (result->exit_code != 0) {
    log_.Error("shutdown command failed", {{"exit_code", result->exit_code},
                                           {"output", Tail(result->output)}});
  }
}

}  // namespace navarch::agent
