// Timers on a Clock that are cancelled together, safely. Clock::Cancel cannot
// stop a callback that is already running, so an object that schedules
// callbacks capturing `this` could be destroyed under one. TimerSet::Close()
// cancels everything pending and waits for running callbacks to return.
#ifndef NAVARCH_AGENT_TIMER_SET_H_
#define NAVARCH_AGENT_TIMER_SET_H_

#include <functional>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch::agent {

class TimerSet {
 public:
  explicit TimerSet(Clock& clock) : clock_(clock) {}
  ~TimerSet() { Close(); }

  TimerSet(const TimerSet&) = delete;
  TimerSet& operator=(const TimerSet&) = delete;

  // Runs `fn` after `delay` unless cancelled or closed first. Returns 0 (and
  // never runs `fn`) after Close(). Thread-safe.
  TimerId Schedule(absl::Duration delay, std::function<void()> fn);
  // Cancels one timer; false if it already ran or is running. Thread-safe.
  bool Cancel(TimerId id);
  // Cancels every pending timer and waits for running callbacks, except one
  // running on the calling thread (a callback may close its own set).
  // Idempotent; later Schedule() calls are ignored.
  void Close();

  Clock& clock() { return clock_; }

 private:
  Clock& clock_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::set<TimerId> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_TIMER_SET_H_
