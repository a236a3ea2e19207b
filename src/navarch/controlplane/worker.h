// A thread that runs one function whenever asked, coalescing requests that
// arrive while it runs into one more run. The pool manager's ticks run on
// one, so provider and notifier calls (network, seconds) never block the
// clock's timer thread, and a node turning UNHEALTHY can ask for a tick at
// once instead of waiting for the next autoscale interval.
#ifndef NAVARCH_CONTROLPLANE_WORKER_H_
#define NAVARCH_CONTROLPLANE_WORKER_H_

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace navarch {

class CoalescingWorker {
 public:
  explicit CoalescingWorker(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~CoalescingWorker() { Stop(); }

  void Start() {
    absl::MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
    thread_ = std::thread([this] { Loop(); });
  }

  // Thread-safe; never blocks on `fn`.
  void Request() {
    absl::MutexLock lock(&mu_);
    requested_ = true;
  }

  // Waits for a run in progress to finish; pending requests are dropped.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      if (!running_) return;
      stopping_ = true;
    }
    thread_.join();
    absl::MutexLock lock(&mu_);
    running_ = false;
  }

  // Runs completed since Start (tests).
  int64_t runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }

 private:
  void Loop() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](CoalescingWorker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
              return w->stopping_ || w->requested_;
            },
            this));
        if (stopping_) return;
        requested_ = false;
      }
      fn_();
      absl::MutexLock lock(&mu_);
      ++runs_;
    }
  }

  std::function<void()> fn_;
  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  int64_t runs_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_WORKER_H_
