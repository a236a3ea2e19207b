#include "navarch/agent/timer_set.h"

#include <algorithm>
#include <memory>

namespace navarch::agent {

TimerId TimerSet::Schedule(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (closed_) return 0;
  // The id is only known after Schedule returns, and the callback may run
  // before that (FakeClock with a zero delay never does, RealClock might); a
  // shared slot lets the callback find its own id.
  auto slot = std::make_shared<TimerId>(0);
  auto run = [this, slot, fn = std::move(fn)] {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      pending_.erase(*slot);
      running_.push_back(std::this_thread::get_id());
    }
    fn();
    absl::MutexLock lock(&mu_);
    running_.erase(std::find(running_.begin(), running_.end(),
                             std::this_thread::get_id()));
  };
  // Scheduling under mu_ is safe: clocks never run callbacks inside Schedule.
  TimerId id = clock_.Schedule(delay, std::move(run));
  *slot = id;
  pending_.insert(id);
  return id;
}

bool TimerSet::Cancel(TimerId id) {
  {
    absl::MutexLock lock(&mu_);
    if (pending_.erase(id) == 0) return false;
  }
  return clock_.Cancel(id);
}

void TimerSet::Close() {
  std::set<TimerId> pending;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    pending.swap(pending_);
  }
  for (TimerId id : pending) clock_.Cancel(id);
  auto self = std::this_thread::get_id();
  auto only_self = [this, self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(running_.begin(), running_.end(),
                       [self](std::thread::id t) { return t == self; });
  };
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&only_self));
}

}  // namespace navarch::agent
