// Time, injected. Everything in Navarch that reads the time or waits takes a
// Clock&: production code gets RealClock, tests and the simulator FakeClock.
#ifndef NAVARCH_BASE_CLOCK_H_
#define NAVARCH_BASE_CLOCK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace navarch {

using TimerId = uint64_t;

class Clock {
 public:
  virtual ~Clock() = default;

  // Wall-clock time. Thread-safe.
  virtual absl::Time Now() = 0;

  // Monotonic time since an arbitrary origin; never goes backwards. Use it to
  // measure intervals. Thread-safe.
  virtual absl::Duration SteadyNow() = 0;

  // Runs `fn` once, `delay` from now (a non-positive delay means as soon as
  // possible). Callbacks run on a thread owned by the clock (RealClock) or on
  // the thread that advances time (FakeClock); they must not block for long.
  // Timers due at the same instant fire in the order they were scheduled.
  // Thread-safe; may be called from inside a callback.
  virtual TimerId Schedule(absl::Duration delay, std::function<void()> fn) = 0;

  // Cancels a timer that has not fired yet. Returns false if it already fired,
  // is firing, or never existed. Thread-safe.
  virtual bool Cancel(TimerId id) = 0;
};

// The real thing: absl::Now(), a steady clock, and one timer thread.
class RealClock final : public Clock {
 public:
  RealClock();
  ~RealClock() override;  // Stops the timer thread; pending timers never fire.

  absl::Time Now() override;
  absl::Duration SteadyNow() override;
  TimerId Schedule(absl::Duration delay, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;

  // A process-wide instance for binaries. Never destroyed.
  static RealClock& Default();

 private:
  void Run();

  absl::Mutex mu_;
  // Keyed by (due steady time, id) so equal times keep scheduling order.
  std::map<std::pair<absl::Duration, TimerId>, std::function<void()>> timers_
      ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Time that moves only when told. Advance() fires every timer that falls due,
// in due-time order, each with Now() set to its due time, on the calling
// thread. Timers scheduled by callbacks fire too if they fall due in the
// window.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1767225600));

  absl::Time Now() override;
  absl::Duration SteadyNow() override;
  TimerId Schedule(absl::Duration delay, std::function<void()> fn) override;
  bool Cancel(TimerId id) override;

  // Moves time forward by `d` (>= 0), firing due timers.
  void Advance(absl::Duration d);
  // Moves time to `t` if it is in the future.
  void AdvanceTo(absl::Time t);
  // Fires the timers due strictly before `t`, then moves time to `t` if it is
  // in the future; timers due at `t` stay pending. For a caller with timers
  // of its own that must run first at an instant (the simulator's agent
  // calendar, sim/calendar.h).
  void AdvanceUntil(absl::Time t);
  // Number of timers not yet fired.
  size_t PendingTimers();
  // Due time of the earliest pending timer, or InfiniteFuture.
  absl::Time NextTimerAt();

 private:
  struct Timer {
    absl::Time due;
    TimerId id;
    std::function<void()> fn;
  };
  // Fires timers due before `target` (and at it when `inclusive`), then
  // moves time to `target`.
  void Fire(absl::Time target, bool inclusive);
  // Pops cancelled timers off the top of the heap.
  void DropCancelledLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Time start_;
  // A binary min-heap on (due, id), so timers due at the same instant fire
  // in the order they were scheduled. A heap, not a map: the simulator
  // schedules millions of timers, and a heap push costs no allocation.
  // Cancelled timers stay in the heap until they reach the top.
  std::vector<Timer> timers_ ABSL_GUARDED_BY(mu_);
  std::vector<TimerId> cancelled_ ABSL_GUARDED_BY(mu_);  // still in timers_
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace navarch

#endif  // NAVARCH_BASE_CLOCK_H_
