// Records the commands the agent would run and answers with a chosen result.
#ifndef NAVARCH_AGENT_TESTING_FAKE_PROCESS_RUNNER_H_
#define NAVARCH_AGENT_TESTING_FAKE_PROCESS_RUNNER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "navarch/agent/process_runner.h"

namespace navarch::agent::testing {

class FakeProcessRunner final : public ProcessRunner {
 public:
  struct Call {
    std::string command;
    std::map<std::string, std::string> env;
    absl::Duration timeout;
  };

  absl::StatusOr<ProcessResult> RunShell(
      const std::string& command, const std::map<std::string, std::string>& env,
      absl::Duration timeout) override {
    std::function<void(const Call&)> observer;
    ProcessResult result{0, false, ""};
    {
      absl::MutexLock lock(&mu_);
      calls_.push_back({command, env, timeout});
      auto it = results_.find(command);
      if (it != results_.end()) result = it->second;
      observer = observer_;
    }
    if (observer) observer(Call{command, env, timeout});
    return result;
  }
  // Called (outside the lock) for every command run.
  void SetObserver(std::function<void(const Call&)> observer) {
    absl::MutexLock lock(&mu_);
    observer_ = std::move(observer);
  }
  void KillAll() override {}

  void SetResult(const std::string& command, ProcessResult result) {
    absl::MutexLock lock(&mu_);
    results_[command] = std::move(result);
  }
  std::vector<Call> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, ProcessResult> results_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::function<void(const Call&)> observer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch::agent::testing

#endif  // NAVARCH_AGENT_TESTING_FAKE_PROCESS_RUNNER_H_
