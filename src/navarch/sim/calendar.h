// The simulated agents' periodic ticks (heartbeats and health reports), kept
// apart from the FakeClock's timers so that their order at an instant does
// not depend on when they were scheduled.
//
// Why: a node that skips calls (sim_agent.h) has no ticks queued at all;
// its schedule goes on in arithmetic, and when it stops skipping its next
// tick is queued again. On the clock, a re-queued timer would sort after every
// timer due at the same instant that was scheduled before it, so a run that
// skips calls could order ties differently from one that makes every call. Here
// the order is a rule that holds in both: at each instant, first the
// agents' ticks, by (agent ordinal, kind), then the clock's timers (the
// simulation's loop runs this calendar, then FakeClock::AdvanceTo). So
// whether a tick due at a given instant has run is a pure function of the
// time and the tick's key (Fired), whether or not it was ever queued.
#ifndef NAVARCH_SIM_CALENDAR_H_
#define NAVARCH_SIM_CALENDAR_H_

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "absl/time/time.h"

namespace navarch::sim {

class AgentCalendar {
 public:
  enum Kind : uint8_t { kHeartbeat = 0, kHealth = 1 };

  // Queues a tick; `epoch` comes back to the dispatcher (stale ticks are the
  // agent's to ignore: there is no cancel).
  void Add(absl::Time due, uint32_t agent, Kind kind, uint64_t epoch) {
    heap_.push_back(Tick{due, agent, kind, epoch});
    std::push_heap(heap_.begin(), heap_.end(), Later);
  }

  absl::Time NextAt() const {
    return heap_.empty() ? absl::InfiniteFuture() : heap_.front().due;
  }
  size_t size() const { return heap_.size(); }

  // Whether the tick (due, agent, kind) has run by `now` under the rule
  // above, had it been queued: due before now; or due now and the instant's
  // ticks are done (outside RunAt, the clock's part of an instant), or sort
  // before the one running.
  bool Fired(absl::Time due, uint32_t agent, Kind kind, absl::Time now) const {
    if (due != now) return due < now;
    if (!running_ || running_at_ != now) return true;
    return std::make_tuple(agent, kind) <=
           std::make_tuple(running_agent_, running_kind_);
  }

  // Runs every tick due at `t` (the clock reads `t`), in key order, ticks
  // queued meanwhile for `t` included. `dispatch(agent, kind, epoch)`.
  template <typename F>
  void RunAt(absl::Time t, F&& dispatch) {
    running_ = true;
    running_at_ = t;
    while (!heap_.empty() && heap_.front().due <= t) {
      std::pop_heap(heap_.begin(), heap_.end(), Later);
      const Tick tick = heap_.back();
      heap_.pop_back();
      running_agent_ = tick.agent;
      running_kind_ = tick.kind;
      dispatch(tick.agent, tick.kind, tick.epoch);
    }
    running_ = false;
  }

 private:
  struct Tick {
    absl::Time due;
    uint32_t agent;
    Kind kind;
    uint64_t epoch;
  };
  // A max-heap by "later": the earliest (due, agent, kind) on top.
  static bool Later(const Tick& a, const Tick& b) {
    return std::make_tuple(a.due, a.agent, a.kind) >
           std::make_tuple(b.due, b.agent, b.kind);
  }

  std::vector<Tick> heap_;
  bool running_ = false;
  absl::Time running_at_;
  uint32_t running_agent_ = 0;
  Kind running_kind_ = kHeartbeat;
};

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_CALENDAR_H_
