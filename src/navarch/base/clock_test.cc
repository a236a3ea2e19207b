#include "navarch/base/clock.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

TEST(FakeClockTest, OnlyMovesWhenTold) {
  FakeClock clock(absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.SteadyNow(), absl::ZeroDuration());
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1005));
  EXPECT_EQ(clock.SteadyNow(), absl::Seconds(5));
}

TEST(FakeClockTest, FiresDueTimersInOrderWithTheirDueTime) {
  FakeClock clock(absl::FromUnixSeconds(0));
  std::vector<std::pair<int, absl::Time>> fired;
  clock.Schedule(absl::Seconds(3), [&] { fired.push_back({3, clock.Now()}); });
  clock.Schedule(absl::Seconds(1), [&] { fired.push_back({1, clock.Now()}); });
  clock.Schedule(absl::Seconds(1), [&] { fired.push_back({11, clock.Now()}); });
  clock.Schedule(absl::Seconds(10), [&] {
    fired.push_back({10, clock.Now()});
  });
  clock.Advance(absl::Seconds(3));
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[0].first, 1);
  EXPECT_EQ(fired[1].first, 11);  // same due time: scheduling order
  EXPECT_EQ(fired[2].first, 3);
  EXPECT_EQ(fired[0].second, absl::FromUnixSeconds(1));
  EXPECT_EQ(fired[2].second, absl::FromUnixSeconds(3));
  EXPECT_EQ(clock.PendingTimers(), 1u);
  EXPECT_EQ(clock.NextTimerAt(), absl::FromUnixSeconds(10));
}

TEST(FakeClockTest, TimersScheduledByCallbacksFireInTheSameAdvance) {
  FakeClock clock;
  int count = 0;
  std::function<void()> tick = [&] {
    ++count;
    clock.Schedule(absl::Seconds(1), tick);
  };
  clock.Schedule(absl::Seconds(1), tick);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(count, 10);
}

TEST(FakeClockTest, AdvanceUntilLeavesTimersDueAtTheTarget) {
  FakeClock clock(absl::FromUnixSeconds(0));
  std::vector<int> fired;
  clock.Schedule(absl::Seconds(1), [&] {
    fired.push_back(1);
    // Due before the target too: fires in the same call.
    clock.Schedule(absl::Seconds(1), [&] { fired.push_back(2); });
  });
  clock.Schedule(absl::Seconds(5), [&] { fired.push_back(5); });
  clock.Schedule(absl::Seconds(6), [&] { fired.push_back(6); });
  clock.AdvanceUntil(absl::FromUnixSeconds(5));
  EXPECT_EQ(fired, (std::vector<int>{1, 2}));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
  EXPECT_EQ(clock.NextTimerAt(), absl::FromUnixSeconds(5));
  // Never backwards.
  clock.AdvanceUntil(absl::FromUnixSeconds(4));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
  clock.AdvanceTo(absl::FromUnixSeconds(5));
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 5}));
  EXPECT_EQ(clock.PendingTimers(), 1u);
}

TEST(FakeClockTest, CancelStopsATimer) {
  FakeClock clock;
  bool fired = false;
  TimerId id = clock.Schedule(absl::Seconds(1), [&] { fired = true; });
  EXPECT_TRUE(clock.Cancel(id));
  EXPECT_FALSE(clock.Cancel(id));
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(fired);
}

TEST(FakeClockTest, ManyTimersFireByDueTimeThenSchedulingOrder) {
  // Thousands of timers over a few instants (as the simulator schedules
  // them), some cancelled: each instant's timers fire in scheduling order.
  FakeClock clock(absl::FromUnixSeconds(0));
  std::vector<std::pair<int64_t, int>> fired;  // (due second, sequence)
  std::vector<TimerId> ids;
  for (int i = 0; i < 3000; ++i) {
    const int64_t due = (i * 7919) % 5;
    ids.push_back(clock.Schedule(absl::Seconds(due), [&fired, &clock, i] {
      fired.push_back({absl::ToUnixSeconds(clock.Now()), i});
    }));
  }
  int cancelled = 0;
  for (int i = 0; i < 3000; i += 7) {
    EXPECT_TRUE(clock.Cancel(ids[i]));
    ++cancelled;
  }
  EXPECT_EQ(clock.PendingTimers(), 3000u - cancelled);
  clock.Advance(absl::Seconds(10));
  ASSERT_EQ(fired.size(), 3000u - cancelled);
  for (size_t k = 1; k < fired.size(); ++k) {
    EXPECT_LT(fired[k - 1], fired[k]) << k;
  }
  for (const auto& [due, i] : fired) {
    EXPECT_NE(i % 7, 0);
    EXPECT_EQ(due, (i * 7919) % 5);
  }
  EXPECT_EQ(clock.PendingTimers(), 0u);
  EXPECT_EQ(clock.NextTimerAt(), absl::InfiniteFuture());
}

TEST(FakeClockTest, CancelAfterFiringOrOfTheNextTimer) {
  FakeClock clock(absl::FromUnixSeconds(0));
  int a = 0, b = 0;
  TimerId first = clock.Schedule(absl::Seconds(1), [&] { ++a; });
  TimerId second = clock.Schedule(absl::Seconds(2), [&] { ++b; });
  clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(clock.Cancel(first));  // fired
  EXPECT_TRUE(clock.Cancel(second));  // the next one: NextTimerAt skips it
  EXPECT_EQ(clock.NextTimerAt(), absl::InfiniteFuture());
  EXPECT_EQ(clock.PendingTimers(), 0u);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_FALSE(clock.Cancel(12345));  // never existed
}

TEST(RealClockTest, FiresATimer) {
  RealClock clock;
  absl::Notification done;
  clock.Schedule(absl::Milliseconds(1), [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  bool fired = false;
  TimerId id = clock.Schedule(absl::Hours(1), [&] { fired = true; });
  EXPECT_TRUE(clock.Cancel(id));
  EXPECT_FALSE(fired);
  absl::Duration a = clock.SteadyNow();
  EXPECT_LE(a, clock.SteadyNow());
}

}  // namespace
}  // namespace navarch
