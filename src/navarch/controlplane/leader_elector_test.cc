#include "navarch/controlplane/leader_elector.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"

namespace navarch {
namespace {

// The lease row of leader_lease.h, kept in memory and judged by a FakeClock;
// shared by the replicas of a test. `down` plays an unreachable database.
struct FakeLeaseRow {
  absl::Mutex mu;
  std::string holder;
  int64_t epoch = 0;
  absl::Time expires = absl::InfinitePast();
  bool down = false;
  int calls = 0;
};

class FakeLease : public LeaderLease {
 public:
  FakeLease(FakeLeaseRow& row, Clock& clock, std::string me,
            absl::Duration duration)
      : row_(row), clock_(clock), me_(std::move(me)), duration_(duration) {}

  absl::StatusOr<LeaseState> TryAcquireOrRenew(int64_t epoch) override {
    absl::MutexLock lock(&row_.mu);
    row_.calls++;
    if (row_.down) return absl::UnavailableError("database down");
    absl::Time now = clock_.Now();
    bool ours = row_.holder == me_ && row_.epoch == epoch;
    if (ours || row_.expires <= now) {
      if (!ours) row_.epoch++;
      row_.holder = me_;
      row_.expires = now + duration_;
    }
    return StateLocked(now);
  }
  absl::Status Release(int64_t epoch) override {
    absl::MutexLock lock(&row_.mu);
    if (row_.down) return absl::UnavailableError("database down");
    if (row_.holder == me_ && row_.epoch == epoch) row_.expires = clock_.Now();
    return absl::OkStatus();
  }
  absl::StatusOr<LeaseState> Read() override {
    absl::MutexLock lock(&row_.mu);
    return StateLocked(clock_.Now());
  }

 private:
  LeaseState StateLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(row_.mu) {
    LeaseState s;
    s.epoch = row_.epoch;
    s.holder = row_.holder;
    s.remaining = row_.expires - now;
    s.held = s.holder == me_ && s.remaining > absl::ZeroDuration();
    return s;
  }

  FakeLeaseRow& row_;
  Clock& clock_;
  const std::string me_;
  const absl::Duration duration_;
};

constexpr absl::Duration kLease = absl::Seconds(10);

struct Replica {
  Replica(FakeLeaseRow& row, FakeClock& clock, const std::string& name)
      : lease(row, clock, name, kLease),
        elector(clock, lease,
                ElectorOptions{kLease, absl::ZeroDuration(),
                               [this](int64_t e) { elected = e; },
                               [this](const std::string& why) { lost = why; }},
                NullLogger()) {}
  FakeLease lease;
  LeaderElector elector;
  int64_t elected = 0;
  std::string lost;
};

TEST(LeaderElectorTest, OneLeadsTheOtherWaitsAndTakesOverWhenTheLeaseRunsOut) {
  FakeClock clock;
  FakeLeaseRow row;
  Replica a(row, clock, "a"), b(row, clock, "b");
  a.elector.RunOnce();
  b.elector.RunOnce();
  EXPECT_TRUE(a.elector.leader());
  EXPECT_EQ(a.elected, 1);
  EXPECT_FALSE(b.elector.leader());
  EXPECT_EQ(b.elector.last_seen().holder, "a");
  // A renews within its lease: B never gets in.
  for (int i = 0; i < 5; ++i) {
    clock.Advance(kLease / 3);
    a.elector.RunOnce();
    b.elector.RunOnce();
  }
  EXPECT_TRUE(a.elector.leader());
  EXPECT_FALSE(b.elector.leader());
  // A is paused (SIGSTOP, GC) past its lease: B takes over with a new
  // epoch; when A wakes, it finds it lost and steps down.
  clock.Advance(kLease);
  b.elector.RunOnce();
  EXPECT_TRUE(b.elector.leader());
  EXPECT_EQ(b.elected, 2);
  a.elector.RunOnce();
  EXPECT_FALSE(a.elector.leader());
  EXPECT_EQ(a.elector.epoch(), 0);
  EXPECT_NE(a.lost.find("replica b holds the lease at epoch 2"),
            std::string::npos)
      << a.lost;
  EXPECT_EQ(b.elector.leader_changes(), 1);
}

TEST(LeaderElectorTest, AnUnreachableDatabaseCostsTheLeadOnlyAfterALease) {
  FakeClock clock;
  FakeLeaseRow row;
  Replica a(row, clock, "a");
  a.elector.RunOnce();
  ASSERT_TRUE(a.elector.leader());
  {
    absl::MutexLock lock(&row.mu);
    row.down = true;
  }
  clock.Advance(kLease / 3);
  a.elector.RunOnce();
  clock.Advance(kLease / 3);
  a.elector.RunOnce();
  EXPECT_TRUE(a.elector.leader()) << "two failed renewals are within the lease";
  EXPECT_EQ(a.lost, "");
  clock.Advance(kLease - 2 * (kLease / 3));
  a.elector.RunOnce();  // a full lease since the last renewal was sent
  EXPECT_FALSE(a.elector.leader());
  EXPECT_NE(a.lost.find("could not be renewed"), std::string::npos) << a.lost;
  // Back, and nobody else took it: A leads again, at a new epoch only if
  // someone had.
  {
    absl::MutexLock lock(&row.mu);
    row.down = false;
  }
  a.elector.RunOnce();
  EXPECT_TRUE(a.elector.leader());
  EXPECT_EQ(a.elector.leader_changes(), 2);
}

TEST(LeaderElectorTest, ReleaseGivesTheLeaseUpSoAStandbyTakesOverAtOnce) {
  FakeClock clock;
  FakeLeaseRow row;
  Replica a(row, clock, "a"), b(row, clock, "b");
  a.elector.RunOnce();
  b.elector.RunOnce();
  ASSERT_TRUE(a.elector.leader());
  a.elector.Stop();
  EXPECT_TRUE(a.elector.leader());  // stopped, the lease still held
  b.elector.RunOnce();
  EXPECT_FALSE(b.elector.leader());
  a.elector.Release();
  EXPECT_FALSE(a.elector.leader());
  b.elector.RunOnce();  // no waiting for the lease to run out
  EXPECT_TRUE(b.elector.leader());
  EXPECT_EQ(b.elected, 2);
}

TEST(LeaderElectorTest, TheThreadTriesOnTheClock) {
  FakeClock clock;
  FakeLeaseRow row;
  absl::Notification elected;
  FakeLease lease(row, clock, "a", kLease);
  LeaderElector elector(
      clock, lease,
      ElectorOptions{kLease, absl::Seconds(2),
                     [&](int64_t) { elected.Notify(); }, nullptr},
      NullLogger());
  elector.Start();
  ASSERT_TRUE(elected.WaitForNotificationWithTimeout(absl::Seconds(10)));
  auto calls = [&] {
    absl::MutexLock lock(&row.mu);
    return row.calls;
  };
  EXPECT_EQ(calls(), 1);
  // Each renew interval of the injected clock brings one renewal.
  auto wait_for_timer = [&] {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (clock.PendingTimers() == 0 && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(1));
  };
  for (int i = 2; i <= 4; ++i) {
    wait_for_timer();
    ASSERT_EQ(clock.NextTimerAt(), clock.Now() + absl::Seconds(2));
    clock.Advance(absl::Seconds(2));
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (calls() < i && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(1));
    EXPECT_EQ(calls(), i);
  }
  elector.Release();
  EXPECT_FALSE(elector.leader());
}

}  // namespace
}  // namespace navarch
