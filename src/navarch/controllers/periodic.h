// A task that runs every `interval` on the injected Clock until stopped. The
// controllers (heartbeat monitor, pruning, the pool manager's tick) are built
// on it, so the simulator drives them on virtual time.
#ifndef NAVARCH_CONTROLLERS_PERIODIC_H_
#define NAVARCH_CONTROLLERS_PERIODIC_H_

#include <functional>

#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"

namespace navarch {

class PeriodicTask {
 public:
  PeriodicTask(Clock& clock, absl::Duration interval, std::function<void()> fn)
      : clock_(clock), interval_(interval), fn_(std::move(fn)) {}
  ~PeriodicTask() { Stop(); }

  void Start() {
    absl::MutexLock lock(&mu_);
    stopped_ = false;
    ScheduleLocked();
  }

  // After Stop returns, `fn` is not running and will not run again.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    clock_.Cancel(timer_);
    mu_.Await(absl::Condition(
        +[](bool* running) { return !*running; }, &running_));
  }

 private:
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    timer_ = clock_.Schedule(interval_, [this] {
      {
        absl::MutexLock lock(&mu_);
        if (stopped_) return;
        running_ = true;
      }
      fn_();
      absl::MutexLock lock(&mu_);
      running_ = false;
      if (!stopped_) ScheduleLocked();
    });
  }

  Clock& clock_;
  const absl::Duration interval_;
  std::function<void()> fn_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = true;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLLERS_PERIODIC_H_
