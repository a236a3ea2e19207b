// A provider whose instances are real node-agent processes on this machine,
// started with the fake GPU backend: the quick start and end-to-end tests run
// a whole fleet on a laptop.
//
// Each instance has a folder <root>/<instance-id>/ holding
//   agent.log  the agent's output
//   agent.pid  its process id
//   kmsg       the file the agent follows as its kernel log: appending an
//              NVRM XID line injects a hardware fault
//   token      the idempotency token it was provisioned with
//   labels     key=value lines
//   terminated present once it was terminated
// Like cloud VMs, instances outlive the control plane: everything is read
// back from these folders, so after a restart (even a kill -9) the provider
// finds its instances again, and a retried provision with the same token
// returns the same instance instead of starting another.
#ifndef NAVARCH_PROVIDER_LOCAL_LOCAL_PROVIDER_H_
#define NAVARCH_PROVIDER_LOCAL_LOCAL_PROVIDER_H_

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/provider/provider.h"

namespace navarch {

struct LocalProviderOptions {
  std::string name = "local";
  std::string root;        // Instance folders live here. Required.
  std::string agent_path;  // The node-agent binary. Required.
  // The control plane's gRPC address as HOST:PORT; a function because the
  // port is known only once the server listens.
  std::function<std::string()> server_address;
  int gpu_count = 8;
  std::string gpu_model = "NVIDIA H100 80GB HBM3";
  // SIGTERM first; SIGKILL this long after if the agent still runs.
  absl::Duration kill_grace = absl::Seconds(10);
  bool keep_instances = false;
  std::vector<std::string> extra_agent_args;
  // The token of each agent, by node id (a node token, or one shared by
  // all), given to it as NAVARCH_AUTH_TOKEN (in its environment, never on
  // its command line, where `ps` would show it). Unset or empty: auth is
  // off.
  std::function<std::string(const std::string& node_id)> auth_token;
};

class LocalProvider final : public Provider {
 public:
  LocalProvider(Clock& clock, LocalProviderOptions options);
  // Stops every instance unless keep_instances (a clean shutdown).
  ~LocalProvider() override;

  const std::string& name() const override { return options_.name; }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override;
  absl::Status Terminate(const std::string& instance_id) override;
  absl::StatusOr<std::vector<ProviderInstance>> List() override;
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override;

  // The folder of an instance (tests write its kmsg).
  std::string InstanceDir(const std::string& id) const;

 private:
  // Whether the instance's agent process runs (reaps it if it was ours).
  bool Alive(const std::string& id, int* pid_out);
  absl::StatusOr<ProviderInstance> Read(const std::string& id);
  struct TokenLookup {
    std::optional<std::string> existing;  // the instance with the token
    int next_number = 1;                  // else the next free <name>-N
  };
  TokenLookup FindToken(const std::string& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CreateInstanceDir(const std::filesystem::path& dir,
                                 const ProvisionRequest& request);
  std::vector<std::string> AgentArgs(const std::string& id,
                                     const std::string& server,
                                     const ProvisionRequest& request) const;
  // Starts the instance's agent in its own session; its pid.
  absl::StatusOr<pid_t> StartAgent(const std::string& id,
                                   const std::string& server,
                                   const ProvisionRequest& request);

  Clock& clock_;
  const LocalProviderOptions options_;
  absl::Mutex mu_;  // Serialises folder changes.
};

LocalProviderOptions LocalOptionsFromConfig(const ProviderConfig& config,
                                            const std::string& data_dir);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_LOCAL_LOCAL_PROVIDER_H_
