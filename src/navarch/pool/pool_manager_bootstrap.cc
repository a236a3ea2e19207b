// The pool manager's SSH bootstrap: a pool with setup_commands runs them on
// each new instance once it has an address, over SSH with its host key
// checked (docs/pools.md, "SSH bootstrap"). The commands run on the
// SshBootstrapper's threads; this file decides when, renders them, and
// records the outcome, failing and terminating an instance whose bootstrap
// failed.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "navarch/api/time_util.h"
#include "navarch/config/template.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {
namespace {

// What each step keeps of its output, per stream.
constexpr size_t kStepOutputLimit = 16 * 1024;

bootstrap::HostKeyPolicy PolicyOf(SshHostKeyPolicy p) {
  switch (p) {
    case SshHostKeyPolicy::kKnownHosts:
      return bootstrap::HostKeyPolicy::kKnownHosts;
    case SshHostKeyPolicy::kInsecure:
      return bootstrap::HostKeyPolicy::kInsecure;
    case SshHostKeyPolicy::kTofu:
      break;
  }
  return bootstrap::HostKeyPolicy::kTofu;
}

std::string HostPort(const bootstrap::SshTarget& t) {
  return t.host.find(':') != std::string::npos
             ? absl::StrCat("[", t.host, "]:", t.port)
             : absl::StrCat(t.host, ":", t.port);
}

InstanceBootstrap ToProto(const SshBootstrapJob& job,
                          const bootstrap::BootstrapResult& r,
                          absl::Time started, absl::Time finished) {
  InstanceBootstrap b;
  b.set_state(r.success ? BOOTSTRAP_STATE_SUCCEEDED : BOOTSTRAP_STATE_FAILED);
  *b.mutable_started_at() = ToTimestamp(started);
  *b.mutable_finished_at() = ToTimestamp(finished);
  b.set_host(HostPort(job.target));
  b.set_ssh_wait_ms(absl::ToInt64Milliseconds(r.ssh_wait));
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const bootstrap::BootstrapStep& s = r.steps[i];
    BootstrapStep* out = b.add_steps();
    // The template, never the rendered command (it may hold a token).
    out->set_command(i < job.recorded.size() ? job.recorded[i] : "");
    out->set_exit_code(s.exit_code);
    out->set_stdout_text(s.stdout_text);
    out->set_stderr_text(s.stderr_text);
    out->set_duration_ms(absl::ToInt64Milliseconds(s.duration));
    out->set_timed_out(s.timed_out);
  }
  b.set_error(r.error);
  b.set_host_key_fingerprint(r.host_key.fingerprint);
  b.set_host_key_policy(
      std::string(bootstrap::HostKeyPolicyName(job.options.host_key.policy)));
  return b;
}

}  // namespace

void PoolManager::StartBootstrapper() {
  if (bootstrapper_ != nullptr) return;
  BootstrapRunner runner = options_.ssh_runner;
  if (!runner) runner = &bootstrap::RunBootstrap;
  bootstrapper_ = std::make_unique<SshBootstrapper>(
      clock_, std::move(runner),
      [this](const SshBootstrapJob& job,
             const bootstrap::BootstrapResult& result) {
        FinishBootstrap(job, result);
      },
      options_.max_concurrent_bootstraps, /*inline_jobs=*/!options_.threads);
}

const ProviderInstance* PoolManager::ListedInstance(const InstanceInfo& inst,
                                                    Listed& listed) {
  Provider* p = GetProvider(inst.provider());
  if (p == nullptr) return nullptr;
  if (!listed.contains(inst.provider())) {
    absl::StatusOr<std::vector<ProviderInstance>> l = p->List();
    auto& m = listed[inst.provider()];
    if (l.ok()) {
      for (auto& pi : *l) m[pi.id] = std::move(pi);
    }
  }
  const auto& m = listed[inst.provider()];
  auto it = m.find(inst.instance_id());
  return it == m.end() ? nullptr : &it->second;
}

absl::Time PoolManager::RegistrationClockStart(const InstanceInfo& inst) const {
  if (inst.bootstrap().state() == BOOTSTRAP_STATE_SUCCEEDED) {
    return FromTimestamp(inst.bootstrap().finished_at());
  }
  return FromTimestamp(inst.created_at());
}

absl::StatusOr<std::vector<std::string>> PoolManager::RenderSetupCommands(
    const Pool& pool, const InstanceInfo& inst) {
  // SSH runs once the instance exists: {{.NodeID}} is its id.
  std::map<std::string, std::string> values =
      TemplateValues(pool, inst.provider(), inst.region(), inst.instance_type(),
                     inst.instance_id());
  std::vector<std::string> out;
  for (const std::string& command : pool.config.setup_commands) {
    absl::StatusOr<std::vector<std::string>> used =
        TemplateVariables(command, BootstrapTemplateVariables());
    if (!used.ok()) return used.status();
    const bool token =
        std::find(used->begin(), used->end(), "BootstrapToken") != used->end();
    if (token && !values.contains("BootstrapToken")) {
      auto label = inst.labels().find(std::string(kLabelToken));
      if (!options_.mint_bootstrap_token || label == inst.labels().end()) {
        return absl::FailedPreconditionError(
            "setup_commands use {{.BootstrapToken}}, which needs "
            "auth.node_token_key and an instance bought by this pool");
      }
      absl::StatusOr<std::string> minted = options_.mint_bootstrap_token(
          label->second, clock_.Now() +
                             options_.instance_manager.registration_timeout +
                             absl::Minutes(5));
      if (!minted.ok()) return minted.status();
      values["BootstrapToken"] = *std::move(minted);
    }
    absl::StatusOr<std::string> rendered = RenderTemplate(command, values);
    if (!rendered.ok()) return rendered.status();
    out.push_back(*std::move(rendered));
  }
  return out;
}

bool PoolManager::MaybeBootstrap(InstanceInfo& inst, Listed& listed) {
  if (inst.state() != INSTANCE_STATE_PENDING_REGISTRATION) return false;
  auto pool_it = pools_.find(inst.pool_name());
  if (pool_it == pools_.end()) return false;
  const Pool& pool = *pool_it->second;
  const PoolConfig& pc = pool.config;
  const BootstrapState state = inst.bootstrap().state();
  if (pc.setup_commands.empty() || state == BOOTSTRAP_STATE_SUCCEEDED) {
    return false;
  }
  const std::string& id = inst.instance_id();
  if (bootstrapper_->Running(id)) return true;
  // FAILED: FinishBootstrap terminates it (a failed terminate is retried by
  // ManageInstance). RUNNING but not here: the control plane restarted
  // mid-bootstrap; it runs again.
  if (state == BOOTSTRAP_STATE_FAILED) return false;
  const absl::Time now = clock_.Now();
  const ProviderInstance* listed_inst = ListedInstance(inst, listed);
  const std::string ip =
      listed_inst != nullptr ? listed_inst->ip_address : std::string();
  if (ip.empty()) {
    if (now - FromTimestamp(inst.created_at()) <= pc.ip_wait_timeout) {
      return true;
    }
    (void)TerminateInstance(
        inst, INSTANCE_STATE_FAILED,
        absl::StrCat("bootstrap: no IP address within ip_wait_timeout (",
                     absl::FormatDuration(pc.ip_wait_timeout), ")"));
    inst.set_state(INSTANCE_STATE_FAILED);
    return true;
  }
  SshBootstrapJob job;
  job.instance_id = id;
  job.target = {ip, pc.ssh_port, pc.ssh_user, pc.ssh_private_key_path};
  absl::StatusOr<std::vector<std::string>> commands =
      RenderSetupCommands(pool, inst);
  if (!commands.ok()) {
    (void)TerminateInstance(
        inst, INSTANCE_STATE_FAILED,
        absl::StrCat("bootstrap: ", commands.status().message()));
    inst.set_state(INSTANCE_STATE_FAILED);
    return true;
  }
  job.commands = *std::move(commands);
  job.recorded = pc.setup_commands;
  bootstrap::BootstrapOptions& o = job.options;
  o.ssh_timeout = pc.ssh_timeout;
  o.ssh_connect_timeout = pc.ssh_connect_timeout;
  o.command_timeout = pc.command_timeout;
  o.output_limit = kStepOutputLimit;
  o.host_key.policy = PolicyOf(pc.ssh_host_key_policy);
  o.host_key.known_hosts_path = pc.ssh_known_hosts_file;
  o.host_key.pinned_key = fleet_.PinnedHostKey(id);
  InstanceBootstrap running;
  running.set_state(BOOTSTRAP_STATE_RUNNING);
  *running.mutable_started_at() = ToTimestamp(now);
  running.set_host(HostPort(job.target));
  running.set_host_key_policy(
      std::string(SshHostKeyPolicyName(pc.ssh_host_key_policy)));
  // Recorded before it starts, so the outcome can never be overwritten by
  // the start.
  if (!Await<InstanceInfo>([&](auto done) {
         fleet_.RecordBootstrap(id, running, "", actor_, done);
       }).ok()) {
    return true;  // The store is down: the next tick tries again.
  }
  *inst.mutable_bootstrap() = running;
  if (pc.ssh_host_key_policy == SshHostKeyPolicy::kInsecure) {
    options_.log.Warn(
        "SSH bootstrap does not check the host key "
        "(ssh_host_key_policy: insecure)",
        {{"pool", pc.name}, {"instance", id}, {"host", running.host()}});
  }
  if (!bootstrapper_->Start(std::move(job))) {
    options_.log.Info("SSH bootstrap waits: too many run at once",
                      {{"pool", pc.name}, {"instance", id}});
  }
  return true;
}

void PoolManager::FinishBootstrap(const SshBootstrapJob& job,
                                  const bootstrap::BootstrapResult& result) {
  const absl::Time now = clock_.Now();
  GetInstanceRequest get;
  get.set_instance_id(job.instance_id);
  absl::StatusOr<GetInstanceResponse> got = fleet_.GetInstance(get);
  if (!got.ok()) return;
  InstanceInfo inst = got->instance();
  const absl::Time started = FromTimestamp(inst.bootstrap().started_at());
  InstanceBootstrap b = ToProto(job, result, started, now);
  if (result.error_code == absl::StatusCode::kCancelled) {
    // Stopped with the control plane: left RUNNING, run again at the next
    // start.
    return;
  }
  // Pinned only when the key was accepted (tofu's first connection).
  const bool pin =
      job.options.host_key.policy == bootstrap::HostKeyPolicy::kTofu &&
      result.error_code != absl::StatusCode::kFailedPrecondition;
  (void)Await<InstanceInfo>([&](auto done) {
    fleet_.RecordBootstrap(job.instance_id, b,
                           pin ? result.host_key.public_key : "", actor_, done);
  });
  if (result.success) return;
  *inst.mutable_bootstrap() = b;
  (void)TerminateInstance(inst, INSTANCE_STATE_FAILED,
                          absl::StrCat("bootstrap failed: ", result.error));
}

}  // namespace navarch
