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

TEST(FakeClockTest, CancelStopsATimer) {
  FakeClock clock;
  bool fired = false;
  TimerId id = clock.Schedule(absl::Seconds(1), [&] { fired = true; });
  EXPECT_TRUE(clock.Cancel(id));
  EXPECT_FALSE(clock.Cancel(id));
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(fired);
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
