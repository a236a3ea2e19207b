// Where the agent's work runs. The agent keeps its state on one serial
// executor, so none of its logic needs locks; blocking work (GPU reads,
// hooks, diagnostics) runs on others. Tests use InlineExecutor: the same
// serial semantics on the caller's thread, so a FakeClock drives everything
// deterministically.
#ifndef NAVARCH_AGENT_EXECUTOR_H_
#define NAVARCH_AGENT_EXECUTOR_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace navarch::agent {

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `task` later, after every task posted before it, never two at once.
  // Thread-safe; tasks posted after Shutdown() are dropped.
  virtual void Post(std::function<void()> task) = 0;
  // Finishes the running task, drops the queued ones, and refuses new ones.
  // Must not be called from a task. Idempotent.
  virtual void Shutdown() = 0;
};

// One worker thread.
class ThreadExecutor final : public Executor {
 public:
  explicit ThreadExecutor(std::string name);
  ~ThreadExecutor() override;  // Shutdown()

  void Post(std::function<void()> task) override;
  void Shutdown() override;

 private:
  void Run();

  std::string name_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Runs tasks on the posting thread. A task posted while another runs (from
// inside it, or from another thread) is queued and run by the thread that is
// already draining the queue, so tasks never nest and never overlap.
class InlineExecutor final : public Executor {
 public:
  void Post(std::function<void()> task) override;
  void Shutdown() override;

 private:
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_EXECUTOR_H_
