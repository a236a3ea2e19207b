#include "navarch/pool/ssh_bootstrapper.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

SshBootstrapJob Job(const std::string& id) {
  SshBootstrapJob job;
  job.instance_id = id;
  job.commands = {"true"};
  return job;
}

// A runner that blocks until it is cancelled (as a long command would).
bootstrap::BootstrapResult UntilCancelled(const bootstrap::SshTarget&,
                                          const std::vector<std::string>&,
                                          const bootstrap::BootstrapOptions& o,
                                          Clock&) {
  o.cancel->WaitForNotification();
  bootstrap::BootstrapResult r;
  r.error_code = absl::StatusCode::kCancelled;
  r.error = "cancelled";
  return r;
}

TEST(SshBootstrapperTest, OneJobPerInstanceAtMostTheLimitAndStopCancels) {
  RealClock clock;
  absl::Mutex mu;
  std::vector<std::string> done;
  SshBootstrapper b(
      clock, &UntilCancelled,
      [&](const SshBootstrapJob& job, const bootstrap::BootstrapResult& r) {
        absl::MutexLock lock(&mu);
        EXPECT_EQ(r.error_code, absl::StatusCode::kCancelled);
        done.push_back(job.instance_id);
      },
      /*max_concurrent=*/2, /*inline_jobs=*/false);
  EXPECT_TRUE(b.Start(Job("i-1")));
  EXPECT_FALSE(b.Start(Job("i-1")));  // already running
  EXPECT_TRUE(b.Start(Job("i-2")));
  EXPECT_FALSE(b.Start(Job("i-3")));  // the limit
  EXPECT_TRUE(b.Running("i-1"));
  EXPECT_FALSE(b.Running("i-3"));
  b.Stop();  // returns: the blocked runs were cancelled and joined
  EXPECT_EQ(done.size(), 2u);
  EXPECT_FALSE(b.Running("i-1"));
  EXPECT_FALSE(b.Start(Job("i-4")));  // stopped
}

TEST(SshBootstrapperTest, FinishedJobsMakeRoomAndInlineJobsRunInStart) {
  RealClock clock;
  std::atomic<int> runs{0};
  auto quick = [&](const bootstrap::SshTarget&, const std::vector<std::string>&,
                   const bootstrap::BootstrapOptions&, Clock&) {
    ++runs;
    bootstrap::BootstrapResult r;
    r.success = true;
    return r;
  };
  std::atomic<int> finished{0};
  auto on_done = [&](const SshBootstrapJob&,
                     const bootstrap::BootstrapResult& r) {
    EXPECT_TRUE(r.success);
    ++finished;
  };
  {
    SshBootstrapper threaded(clock, quick, on_done, 1, false);
    ASSERT_TRUE(threaded.Start(Job("i-1")));
    while (threaded.Running("i-1")) absl::SleepFor(absl::Milliseconds(1));
    EXPECT_TRUE(threaded.Start(Job("i-2")));  // i-1 finished: room again
  }
  EXPECT_EQ(runs, 2);
  SshBootstrapper inline_b(clock, quick, on_done, 1, true);
  EXPECT_TRUE(inline_b.Start(Job("i-1")));
  EXPECT_EQ(runs, 3);  // ran before Start returned
  EXPECT_FALSE(inline_b.Running("i-1"));
  EXPECT_TRUE(inline_b.Start(Job("i-1")));  // and can run again
  EXPECT_EQ(finished, 4);
}

}  // namespace
}  // namespace navarch
