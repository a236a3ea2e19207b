#include "navarch/base/clock.h"

#include <chrono>

namespace navarch {

RealClock::RealClock() : thread_([this] { Run(); }) {}

RealClock::~RealClock() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

RealClock& RealClock::Default() {
  static RealClock* clock = new RealClock();
  return *clock;
}

absl::Time RealClock::Now() { return absl::Now(); }

absl::Duration RealClock::SteadyNow() {
  return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

TimerId RealClock::Schedule(absl::Duration delay, std::function<void()> fn) {
  absl::Duration due = SteadyNow() + std::max(delay, absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  timers_.emplace(std::make_pair(due, id), std::move(fn));
  return id;
}

bool RealClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->first.second == id) {
      timers_.erase(it);
      return true;
    }
  }
  return false;
}

void RealClock::Run() {
  mu_.Lock();
  while (!stop_) {
    absl::Duration now = SteadyNow();
    if (!timers_.empty() && timers_.begin()->first.first <= now) {
      auto node = timers_.extract(timers_.begin());
      mu_.Unlock();
      node.mapped()();
      mu_.Lock();
      continue;
    }
    absl::Duration wait = absl::Milliseconds(100);
    if (!timers_.empty()) {
      wait = std::min(wait, timers_.begin()->first.first - now);
    }
    // Wakes early when a timer is added or Stop is requested.
    size_t size_before = timers_.size();
    auto wake = [this, size_before]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || timers_.size() > size_before;
    };
    mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
  }
  mu_.Unlock();
}

FakeClock::FakeClock(absl::Time start) : now_(start), start_(start) {}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return now_;
}

absl::Duration FakeClock::SteadyNow() {
  absl::MutexLock lock(&mu_);
  return now_ - start_;
}

TimerId FakeClock::Schedule(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  timers_.emplace(
      std::make_pair(now_ + std::max(delay, absl::ZeroDuration()), id),
      std::move(fn));
  return id;
}

bool FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->first.second == id) {
      timers_.erase(it);
      return true;
    }
  }
  return false;
}

void FakeClock::Advance(absl::Duration d) {
  absl::Time target;
  {
    absl::MutexLock lock(&mu_);
    target = now_ + std::max(d, absl::ZeroDuration());
  }
  AdvanceTo(target);
}

void FakeClock::AdvanceTo(absl::Time target) {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (timers_.empty() || timers_.begin()->first.first > target) {
        if (target > now_) now_ = target;
        return;
      }
      auto node = timers_.extract(timers_.begin());
      if (node.key().first > now_) now_ = node.key().first;
      fn = std::move(node.mapped());
    }
    fn();
  }
}

size_t FakeClock::PendingTimers() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

absl::Time FakeClock::NextTimerAt() {
  absl::MutexLock lock(&mu_);
  return timers_.empty() ? absl::InfiniteFuture()
                         : timers_.begin()->first.first;
}

}  // namespace navarch
