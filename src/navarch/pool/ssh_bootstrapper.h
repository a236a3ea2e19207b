// Runs pools' setup_commands on their new instances over SSH
// (bootstrap/ssh_bootstrap.h): one thread per instance being bootstrapped, at
// most `max_concurrent` at once, so a machine that takes ten minutes to boot
// holds no pool tick and no worker. The pool manager decides when an instance
// is ready (it has an address) and what to run, and records the outcome.
#ifndef NAVARCH_POOL_SSH_BOOTSTRAPPER_H_
#define NAVARCH_POOL_SSH_BOOTSTRAPPER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "navarch/base/clock.h"
#include "navarch/bootstrap/ssh_bootstrap.h"

namespace navarch {

struct SshBootstrapJob {
  std::string instance_id;
  bootstrap::SshTarget target;
  // What runs (rendered: may hold the bootstrap token) and what is recorded
  // of each step (the configured templates).
  std::vector<std::string> commands;
  std::vector<std::string> recorded;
  bootstrap::BootstrapOptions options;  // `cancel` is set here
};

// bootstrap::RunBootstrap, or a stand-in in tests.
using BootstrapRunner = std::function<bootstrap::BootstrapResult(
    const bootstrap::SshTarget&, const std::vector<std::string>&,
    const bootstrap::BootstrapOptions&, Clock&)>;

class SshBootstrapper {
 public:
  // Called on the job's thread (inline: on Start's) when a job ends,
  // cancelled ones included.
  using Done = std::function<void(const SshBootstrapJob&,
                                  const bootstrap::BootstrapResult&)>;

  // `inline_jobs`: Start runs the job before returning (the simulator and
  // single-threaded tests).
  SshBootstrapper(Clock& clock, BootstrapRunner runner, Done done,
                  int max_concurrent, bool inline_jobs);
  ~SshBootstrapper();  // Stop()s.

  SshBootstrapper(const SshBootstrapper&) = delete;
  SshBootstrapper& operator=(const SshBootstrapper&) = delete;

  // Starts `job`; false (and nothing started) when one runs for the same
  // instance, `max_concurrent` run, or Stop was called.
  bool Start(SshBootstrapJob job);
  bool Running(const std::string& instance_id);
  // Cancels every job (their commands are killed on the machines) and joins
  // their threads. Idempotent.
  void Stop();

 private:
  struct Job {
    SshBootstrapJob spec;
    absl::Notification cancel;
    std::thread thread;
    bool finished = false;
  };
  void Run(Job* job);
  // Joins the threads of finished jobs and forgets them.
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  BootstrapRunner runner_;
  Done done_;
  const int max_concurrent_;
  const bool inline_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch

#endif  // NAVARCH_POOL_SSH_BOOTSTRAPPER_H_
