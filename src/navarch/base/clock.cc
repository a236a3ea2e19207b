#include "navarch/base/clock.h"

#include <algorithm>
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

namespace {

// std::*_heap build a max-heap: "later" is "less", so the earliest timer,
// and among equals the first scheduled, is on top.
template <typename T>
bool Later(const T& a, const T& b) {
  return a.due != b.due ? a.due > b.due : a.id > b.id;
}

}  // namespace

TimerId FakeClock::Schedule(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  timers_.push_back(
      Timer{now_ + std::max(delay, absl::ZeroDuration()), id, std::move(fn)});
  std::push_heap(timers_.begin(), timers_.end(), Later<Timer>);
  return id;
}

bool FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  if (std::find(cancelled_.begin(), cancelled_.end(), id) != cancelled_.end())
    return false;
  for (Timer& t : timers_) {
    if (t.id == id) {
      t.fn = nullptr;  // release what it holds now
      cancelled_.push_back(id);
      DropCancelledLocked();
      return true;
    }
  }
  return false;
}

void FakeClock::DropCancelledLocked() {
  while (!timers_.empty() && !cancelled_.empty()) {
    auto c =
        std::find(cancelled_.begin(), cancelled_.end(), timers_.front().id);
    if (c == cancelled_.end()) return;
    cancelled_.erase(c);
    std::pop_heap(timers_.begin(), timers_.end(), Later<Timer>);
    timers_.pop_back();
  }
}

void FakeClock::Advance(absl::Duration d) {
  absl::Time target;
  {
    absl::MutexLock lock(&mu_);
    target = now_ + std::max(d, absl::ZeroDuration());
  }
  AdvanceTo(target);
}

void FakeClock::AdvanceTo(absl::Time target) { Fire(target, true); }

void FakeClock::AdvanceUntil(absl::Time target) { Fire(target, false); }

void FakeClock::Fire(absl::Time target, bool inclusive) {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      DropCancelledLocked();
      if (timers_.empty() || timers_.front().due > target ||
          (!inclusive && timers_.front().due == target)) {
        if (target > now_) now_ = target;
        return;
      }
      std::pop_heap(timers_.begin(), timers_.end(), Later<Timer>);
      Timer t = std::move(timers_.back());
      timers_.pop_back();
      if (t.due > now_) now_ = t.due;
      fn = std::move(t.fn);
    }
    fn();
  }
}

size_t FakeClock::PendingTimers() {
  absl::MutexLock lock(&mu_);
  return timers_.size() - cancelled_.size();
}

absl::Time FakeClock::NextTimerAt() {
  absl::MutexLock lock(&mu_);
  DropCancelledLocked();
  return timers_.empty() ? absl::InfiniteFuture() : timers_.front().due;
}

}  // namespace navarch
