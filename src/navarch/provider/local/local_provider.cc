#include "navarch/provider/local/local_provider.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "navarch/base/subprocess.h"

namespace navarch {
namespace fs = std::filesystem;
namespace {

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out);
}

// Whether `pid` runs the agent of instance `id` (pids are reused).
bool IsAgentOf(int pid, const std::string& id) {
  const std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  const std::string needle = std::string("--node-id") + '\0' + id + '\0';
  return cmdline.find(needle) != std::string::npos;
}

}  // namespace

LocalProvider::LocalProvider(Clock& clock, LocalProviderOptions options)
    : clock_(clock), options_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(options_.root, ec);
}

LocalProvider::~LocalProvider() {
  if (options_.keep_instances) return;
  absl::StatusOr<std::vector<ProviderInstance>> live = List();
  if (!live.ok()) return;
  for (const ProviderInstance& i : *live) (void)Terminate(i.id);
}

std::string LocalProvider::InstanceDir(const std::string& id) const {
  return (fs::path(options_.root) / id).string();
}

bool LocalProvider::Alive(const std::string& id, int* pid_out) {
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(
                            ReadFile(fs::path(InstanceDir(id)) / "agent.pid")),
                        &pid) ||
      pid <= 0) {
    return false;
  }
  if (pid_out != nullptr) *pid_out = pid;
  // Our own child: reap it if it exited (a zombie still answers kill 0).
  int status = 0;
  const pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == pid) return false;
  if (r == 0) return true;
  // Not our child (we were restarted): look at the process itself.
  return (kill(pid, 0) == 0 || errno == EPERM) && IsAgentOf(pid, id);
}

absl::StatusOr<ProviderInstance> LocalProvider::Read(const std::string& id) {
  const fs::path dir = InstanceDir(id);
  if (!fs::exists(dir)) {
    return absl::NotFoundError(absl::StrCat("instance ", id, " not found"));
  }
  ProviderInstance i;
  i.id = id;
  i.provider = options_.name;
  i.region = "local";
  i.zone = "local";
  i.instance_type = absl::StrCat("local-", options_.gpu_count, "x");
  i.ip_address = "127.0.0.1";
  i.gpu_count = options_.gpu_count;
  i.gpu_type = options_.gpu_model;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(dir / "labels"), '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
    i.labels[kv.first] = kv.second;
  }
  if (fs::exists(dir / "terminated")) {
    i.state = ProviderInstanceState::kTerminated;
  } else {
    i.state = Alive(id, nullptr) ? ProviderInstanceState::kRunning
                                 : ProviderInstanceState::kTerminated;
  }
  return i;
}

absl::StatusOr<ProviderInstance> LocalProvider::Provision(
    const ProvisionRequest& request) {
  if (request.idempotency_token.empty()) {
    return absl::InvalidArgumentError("idempotency_token is required");
  }
  if (access(options_.agent_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node-agent not found or not executable at ", options_.agent_path,
        " (set agent_path for provider ", options_.name, ")"));
  }
  const std::string server =
      options_.server_address ? options_.server_address() : "";
  if (server.empty()) {
    return absl::UnavailableError("control plane address not known yet");
  }
  absl::MutexLock lock(&mu_);
  // Same token, same instance, even across a control-plane restart.
  const TokenLookup found = FindToken(request.idempotency_token);
  if (found.existing.has_value()) return Read(*found.existing);
  const std::string id = absl::StrCat(options_.name, "-", found.next_number);
  const fs::path dir = InstanceDir(id);
  if (absl::Status s = CreateInstanceDir(dir, request); !s.ok()) return s;
  absl::StatusOr<pid_t> pid = StartAgent(id, server, request);
  if (!pid.ok()) return pid.status();
  WriteFile(dir / "agent.pid", absl::StrCat(*pid, "\n"));
  absl::StatusOr<ProviderInstance> read = Read(id);
  if (!read.ok()) return read.status();
  ProviderInstance i = *std::move(read);
  i.state = ProviderInstanceState::kRunning;
  i.created_at = clock_.Now();
  return i;
}

LocalProvider::TokenLookup LocalProvider::FindToken(const std::string& token) {
  TokenLookup out;
  std::error_code ec;
  const std::string prefix = absl::StrCat(options_.name, "-");
  for (const auto& entry : fs::directory_iterator(options_.root, ec)) {
    const std::string id = entry.path().filename().string();
    if (ReadFile(entry.path() / "token") == token) {
      out.existing = id;
      return out;
    }
    int n = 0;
    if (absl::StartsWith(id, prefix) &&
        absl::SimpleAtoi(absl::string_view(id).substr(prefix.size()), &n)) {
      out.next_number = std::max(out.next_number, n + 1);
    }
  }
  return out;
}

absl::Status LocalProvider::CreateInstanceDir(const fs::path& dir,
                                              const ProvisionRequest& request) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
  std::string labels;
  for (const auto& [k, v] : request.labels)
    absl::StrAppend(&labels, k, "=", v, "\n");
  if (!WriteFile(dir / "labels", labels) || !WriteFile(dir / "kmsg", "") ||
      !WriteFile(dir / "token", request.idempotency_token)) {
    return absl::InternalError(absl::StrCat("cannot write in ", dir.string()));
  }
  return absl::OkStatus();
}

std::vector<std::string> LocalProvider::AgentArgs(
    const std::string& id, const std::string& server,
    const ProvisionRequest& request) const {
  std::vector<std::string> args = {
      options_.agent_path,
      "--server",
      server,
      "--node-id",
      id,
      "--provider",
      options_.name,
      "--region",
      "local",
      "--zone",
      "local",
      "--instance-type",
      absl::StrCat("local-", options_.gpu_count, "x"),
      "--gpu-backend",
      "fake",
      "--fake-gpus",
      absl::StrCat(options_.gpu_count),
      "--fake-gpu-model",
      options_.gpu_model,
      "--kmsg",
      (fs::path(InstanceDir(id)) / "kmsg").string(),
      "--log-format",
      "text"};
  if (auto it = request.labels.find(std::string(kLabelPool));
      it != request.labels.end()) {
    args.push_back("--pool");
    args.push_back(it->second);
  }
  for (const std::string& a : options_.extra_agent_args) args.push_back(a);
  return args;
}

absl::StatusOr<pid_t> LocalProvider::StartAgent(
    const std::string& id, const std::string& server,
    const ProvisionRequest& request) {
  ChildOptions options;
  options.argv = AgentArgs(id, server, request);
  // The token goes in the environment, never on the command line.
  options.unset_env = {"NAVARCH_AUTH_TOKEN"};
  if (options_.auth_token) {
    // The node id is the instance id (AgentArgs).
    std::string token = options_.auth_token(id);
    if (!token.empty()) options.env["NAVARCH_AUTH_TOKEN"] = std::move(token);
  }
  // Its own session: a Ctrl-C or kill of the control plane's process group
  // does not take the "VMs" with it.
  options.group = ChildOptions::Group::kSession;
  options.output = ChildOptions::Output::kAppendToFile;
  options.output_file = (fs::path(InstanceDir(id)) / "agent.log").string();
  absl::StatusOr<std::unique_ptr<Child>> child = Child::Start(options);
  if (!child.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no process for the agent: ", child.status().message()));
  }
  // Like a VM, it outlives this call and us; Alive and Terminate reap it.
  return (*child)->Release();
}

absl::Status LocalProvider::Terminate(const std::string& instance_id) {
  absl::MutexLock lock(&mu_);
  const fs::path dir = InstanceDir(instance_id);
  if (instance_id.empty() || instance_id.find('/') != std::string::npos ||
      !fs::exists(dir)) {
    return absl::NotFoundError(
        absl::StrCat("instance ", instance_id, " not found"));
  }
  if (fs::exists(dir / "terminated")) return absl::OkStatus();
  int pid = 0;
  if (Alive(instance_id, &pid)) {
    kill(pid, SIGTERM);
    // The agent gets kill_grace to finish; then SIGKILL. Captures no `this`:
    // the timer may fire after the provider is gone.
    const std::string id = instance_id;
    clock_.Schedule(options_.kill_grace, [pid, id] {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return;
      if (IsAgentOf(pid, id)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
    });
  }
  if (!WriteFile(dir / "terminated", "")) {
    return absl::InternalError(absl::StrCat("cannot write in ", dir.string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ProviderInstance>> LocalProvider::List() {
  absl::MutexLock lock(&mu_);
  std::vector<ProviderInstance> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.root, ec)) {
    if (!entry.is_directory()) continue;
    absl::StatusOr<ProviderInstance> i = Read(entry.path().filename().string());
    if (i.ok() && i->state != ProviderInstanceState::kTerminated) {
      out.push_back(*std::move(i));
    }
  }
  return out;
}

absl::StatusOr<std::vector<InstanceTypeInfo>>
LocalProvider::ListInstanceTypes() {
  return absl::UnimplementedError("the local provider takes any type");
}

LocalProviderOptions LocalOptionsFromConfig(const ProviderConfig& config,
                                            const std::string& data_dir) {
  LocalProviderOptions o;
  o.name = config.name;
  o.root = (fs::path(data_dir) / "local").string();
  if (config.gpu_count > 0) o.gpu_count = config.gpu_count;
  if (!config.gpu_model.empty()) o.gpu_model = config.gpu_model;
  o.keep_instances = config.keep_instances;
  o.agent_path = config.agent_path;
  if (o.agent_path.empty()) {
    // The node-agent beside this binary (build/bin, or an install's bin/).
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    o.agent_path = (self.parent_path() / "node-agent").string();
  }
  return o;
}

}  // namespace navarch
