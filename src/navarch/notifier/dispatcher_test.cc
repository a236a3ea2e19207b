#include "navarch/notifier/dispatcher.h"

#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;

// Records calls; fails the next `fail_next` calls with `error`.
class RecordingNotifier final : public Notifier {
 public:
  absl::string_view name() const override { return "recording"; }
  absl::Status Cordon(const std::string& id, const std::string& r) override {
    return Record("cordon " + id + (r.empty() ? "" : " " + r));
  }
  absl::Status Uncordon(const std::string& id) override {
    return Record("uncordon " + id);
  }
  absl::Status Drain(const std::string& id, const std::string& r) override {
    return Record("drain " + id + (r.empty() ? "" : " " + r));
  }
  absl::StatusOr<bool> IsDrained(const std::string&) override { return true; }
  absl::Status Notify(const Notice& notice) override {
    {
      absl::MutexLock lock(&mu);
      stamps_.push_back(notice.id + " " + absl::FormatTime(notice.time));
    }
    return Notifier::Notify(notice);
  }

  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu);
    return calls_;
  }
  // "<id> <time>" of every notice delivered.
  std::vector<std::string> stamps() {
    absl::MutexLock lock(&mu);
    return stamps_;
  }
  absl::Mutex mu;
  int fail_next ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu) = absl::UnavailableError("down");

 private:
  absl::Status Record(std::string call) {
    absl::MutexLock lock(&mu);
    calls_.push_back(call);
    if (fail_next > 0) {
      --fail_next;
      return error;
    }
    return absl::OkStatus();
  }
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu);
  std::vector<std::string> stamps_ ABSL_GUARDED_BY(mu);
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NotifierDispatcherOptions o;
    o.max_attempts = 3;
    o.initial_backoff = absl::Seconds(1);
    o.jitter = 0;  // exact backoffs; jitter has a test of its own
    d_ = std::make_unique<NotifierDispatcher>(
        n_, clock_,
        [this](const Notice& notice, const absl::Status& s, int attempts) {
          absl::MutexLock lock(&mu_);
          failures_.push_back(notice.node_id + " " +
                              std::string(NoticeTypeName(notice.type)) + " " +
                              std::to_string(attempts));
        },
        o);
    d_->Start();
  }
  void Idle() { ASSERT_TRUE(d_->WaitIdle(absl::Seconds(10))); }

  RecordingNotifier n_;
  FakeClock clock_;
  std::unique_ptr<NotifierDispatcher> d_;
  absl::Mutex mu_;
  std::vector<std::string> failures_;
};

TEST_F(DispatcherTest, DeliversInOrder) {
  d_->Enqueue({NoticeType::kCordon, "a", "xid 79"});
  d_->Enqueue({NoticeType::kDrain, "a", "xid 79"});
  d_->Enqueue({NoticeType::kUncordon, "a", ""});
  Idle();
  EXPECT_THAT(n_.calls(),
              ElementsAre("cordon a xid 79", "drain a xid 79", "uncordon a"));
  EXPECT_EQ(d_->counters()["cordon|ok"], 1);
  EXPECT_EQ(d_->backlog(), 0u);
}

TEST_F(DispatcherTest, RetriesWithBackoffAndKeepsPerNodeOrder) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 2;
  }
  d_->Enqueue({NoticeType::kCordon, "a", ""});
  d_->Enqueue({NoticeType::kUncordon, "a", ""});
  Idle();
  // First attempt failed; the uncordon waits behind the parked cordon.
  EXPECT_THAT(n_.calls(), ElementsAre("cordon a"));
  clock_.Advance(absl::Milliseconds(999));
  Idle();
  EXPECT_EQ(n_.calls().size(), 1u);
  clock_.Advance(absl::Milliseconds(1));  // 1 s backoff.
  Idle();
  EXPECT_THAT(n_.calls(), ElementsAre("cordon a", "cordon a"));
  clock_.Advance(absl::Seconds(2));  // Doubled.
  Idle();
  EXPECT_THAT(n_.calls(),
              ElementsAre("cordon a", "cordon a", "cordon a", "uncordon a"));
  EXPECT_EQ(d_->counters()["cordon|retried"], 2);
  EXPECT_EQ(d_->counters()["cordon|ok"], 1);
  absl::MutexLock lock(&mu_);
  EXPECT_TRUE(failures_.empty());
}

TEST_F(DispatcherTest, ARetryIsTheSameNoticeWithItsIdAndTime) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 1;
  }
  const absl::Time happened = clock_.Now() - absl::Minutes(1);
  d_->Enqueue({NoticeType::kDrain, "a", "xid", "event-7", happened});
  Idle();
  clock_.Advance(absl::Seconds(1));
  Idle();
  const std::string stamp = "event-7 " + absl::FormatTime(happened);
  EXPECT_THAT(n_.stamps(), ElementsAre(stamp, stamp));
  EXPECT_EQ(d_->counters()["drain|ok"], 1);
}

// Where the retry of a notice that failed once falls, with `seed`.
absl::Duration FirstRetryWait(uint64_t seed) {
  RecordingNotifier n;
  {
    absl::MutexLock lock(&n.mu);
    n.fail_next = 1;
  }
  FakeClock clock;
  NotifierDispatcherOptions o;
  o.initial_backoff = absl::Seconds(10);
  o.jitter = 0.5;
  o.seed = seed;
  NotifierDispatcher d(n, clock, nullptr, o);
  d.Start();
  d.Enqueue({NoticeType::kCordon, "a", ""});
  EXPECT_TRUE(d.WaitIdle(absl::Seconds(10)));
  const absl::Duration wait = clock.NextTimerAt() - clock.Now();
  d.Stop();
  return wait;
}

TEST(DispatcherJitterTest, RetriesWaitAJitteredBackoffDrawnFromTheSeed) {
  const absl::Duration a = FirstRetryWait(1);
  const absl::Duration b = FirstRetryWait(2);
  EXPECT_EQ(a, FirstRetryWait(1));  // seeded: reproducible
  EXPECT_NE(a, b);
  for (absl::Duration wait : {a, b}) {
    EXPECT_GT(wait, absl::Seconds(5));
    EXPECT_LE(wait, absl::Seconds(10));
  }
}

TEST_F(DispatcherTest, OtherNodesAreNotHeldUpByARetry) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 1;
  }
  d_->Enqueue({NoticeType::kCordon, "a", ""});
  Idle();
  d_->Enqueue({NoticeType::kCordon, "b", ""});
  Idle();
  EXPECT_THAT(n_.calls(), ElementsAre("cordon a", "cordon b"));
}

TEST_F(DispatcherTest, GivesUpAfterMaxAttemptsAndReports) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 100;
  }
  d_->Enqueue({NoticeType::kDrain, "a", ""});
  for (int i = 0; i < 5; ++i) {
    Idle();
    clock_.Advance(absl::Seconds(10));
  }
  Idle();
  EXPECT_EQ(n_.calls().size(), 3u);
  EXPECT_EQ(d_->counters()["drain|failed"], 1);
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(failures_, ElementsAre("a drain 3"));
}

TEST_F(DispatcherTest, NonRetryableErrorsFailAtOnce) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 1;
    n_.error = absl::FailedPreconditionError("400");
  }
  d_->Enqueue({NoticeType::kCordon, "a", ""});
  d_->Enqueue({NoticeType::kDrain, "a", ""});
  Idle();
  EXPECT_THAT(n_.calls(), ElementsAre("cordon a", "drain a"));
  absl::MutexLock lock(&mu_);
  EXPECT_THAT(failures_, ElementsAre("a cordon 1"));
}

TEST_F(DispatcherTest, StopWithRetriesPendingIsClean) {
  {
    absl::MutexLock lock(&n_.mu);
    n_.fail_next = 1;
  }
  d_->Enqueue({NoticeType::kCordon, "a", ""});
  Idle();
  d_->Stop();
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(n_.calls().size(), 1u);
}

}  // namespace
}  // namespace navarch
