#include "navarch/pool/ssh_bootstrapper.h"

#include <utility>

namespace navarch {

SshBootstrapper::SshBootstrapper(Clock& clock, BootstrapRunner runner,
                                 Done done, int max_concurrent,
                                 bool inline_jobs)
    : clock_(clock),
      runner_(std::move(runner)),
      done_(std::move(done)),
      max_concurrent_(max_concurrent),
      inline_(inline_jobs) {}

SshBootstrapper::~SshBootstrapper() { Stop(); }

bool SshBootstrapper::Start(SshBootstrapJob spec) {
  Job* job = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return false;  // Stop() owns the threads now.
    ReapLocked();
    if (jobs_.contains(spec.instance_id) ||
        static_cast<int>(jobs_.size()) >= max_concurrent_) {
      return false;
    }
    auto owned = std::make_unique<Job>();
    job = owned.get();
    job->spec = std::move(spec);
    job->spec.options.cancel = &job->cancel;
    jobs_[job->spec.instance_id] = std::move(owned);
    if (!inline_) job->thread = std::thread([this, job] { Run(job); });
  }
  if (inline_) Run(job);
  return true;
}

void SshBootstrapper::Run(Job* job) {
  const bootstrap::BootstrapResult result =
      runner_(job->spec.target, job->spec.commands, job->spec.options, clock_);
  done_(job->spec, result);
  absl::MutexLock lock(&mu_);
  job->finished = true;
  // Inline jobs have no thread to join: forget them now.
  if (inline_) jobs_.erase(job->spec.instance_id);
}

bool SshBootstrapper::Running(const std::string& instance_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(instance_id);
  return it != jobs_.end() && !it->second->finished;
}

void SshBootstrapper::ReapLocked() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->finished && it->second->thread.joinable()) {
      // Its thread set `finished` as its last step under mu_: it is about
      // to return and takes no lock on the way.
      it->second->thread.join();
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void SshBootstrapper::Stop() {
  std::map<std::string, std::unique_ptr<Job>> jobs;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    for (auto& [id, job] : jobs_) {
      if (!job->cancel.HasBeenNotified()) job->cancel.Notify();
    }
  }
  // Joined without the lock: the jobs' last step takes it.
  std::vector<std::thread*> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) {
      if (job->thread.joinable()) threads.push_back(&job->thread);
    }
  }
  for (std::thread* t : threads) t->join();
  absl::MutexLock lock(&mu_);
  jobs_.swap(jobs);
}

}  // namespace navarch
