#include "navarch/base/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

ChildOptions Shell(const std::string& script) {
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

// The hex mask on line `field` ("SigBlk", "SigIgn") of the child's
// /proc/self/status, as the child itself saw it. grep, not a shell: dash
// changes its own signal state at start.
uint64_t ChildSignalMask(const std::string& field) {
  ChildOptions o;
  o.argv = {"grep", field + ":", "/proc/self/status"};
  absl::StatusOr<ChildResult> r =
      RunChild(o, absl::Seconds(30), RealClock::Default());
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return ~uint64_t{0};
  std::vector<std::string> parts =
      absl::StrSplit(r->stdout_text, ':', absl::SkipEmpty());
  uint64_t mask = ~uint64_t{0};
  EXPECT_EQ(parts.size(), 2u) << r->stdout_text;
  if (parts.size() == 2) {
    EXPECT_TRUE(
        absl::SimpleHexAtoi(absl::StripAsciiWhitespace(parts[1]), &mask))
        << r->stdout_text;
  }
  return mask;
}

uint64_t Bit(int sig) { return uint64_t{1} << (sig - 1); }

TEST(RunChildTest, CapturesStdoutStderrAndTheExitCode) {
  ChildOptions o = Shell("echo \"out $WHO\"; echo err >&2; exit 3");
  o.env["WHO"] = "child";
  absl::StatusOr<ChildResult> r =
      RunChild(o, absl::Seconds(30), RealClock::Default());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->stdout_text, "out child\n");
  EXPECT_EQ(r->stderr_text, "err\n");
}

TEST(RunChildTest, MergedOutputKeepsTheOrder) {
  ChildOptions o = Shell("echo one; echo two >&2; echo three");
  o.output = ChildOptions::Output::kMergedPipe;
  absl::StatusOr<ChildResult> r =
      RunChild(o, absl::Seconds(30), RealClock::Default());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "one\ntwo\nthree\n");
  EXPECT_EQ(r->stderr_text, "");
}

// Our binaries block SIGTERM (and ignore nothing the child needs); the child
// must start with the signal unblocked and at its default disposition, or a
// timeout's SIGTERM (or an operator's) would never stop it.
TEST(RunChildTest, TheChildSeesSigtermUnblockedAndDefaultEvenIfWeBlockIt) {
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&block, sig);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  struct sigaction ignore {
  }, old_action{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGTERM, &ignore, &old_action), 0);
  const uint64_t blocked = ChildSignalMask("SigBlk");
  const uint64_t ignored = ChildSignalMask("SigIgn");
  sigaction(SIGTERM, &old_action, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(blocked, 0u);
  EXPECT_EQ(ignored & Bit(SIGTERM), 0u);
}

TEST(RunChildTest, TheTimeoutKillsTheWholeProcessGroup) {
  // The child's child holds the pipe too; only a group kill ends both.
  const absl::Duration start = RealClock::Default().SteadyNow();
  absl::StatusOr<ChildResult> r =
      RunChild(Shell("sleep 30 & sleep 30"), absl::Milliseconds(200),
               RealClock::Default());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_LT(RealClock::Default().SteadyNow() - start, absl::Seconds(20));
}

TEST(RunChildTest, TheTimeoutIsOnTheInjectedClock) {
  FakeClock clock;
  std::atomic<bool> done{false};
  absl::StatusOr<ChildResult> r;
  std::thread run([&] {
    r = RunChild(Shell("sleep 30"), absl::Seconds(10), clock);
    done = true;
  });
  while (!done) {
    clock.Advance(absl::Seconds(1));
    std::this_thread::yield();
  }
  run.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
}

TEST(RunChildTest, TheTimeoutAlsoCoversAChildThatClosedItsOutput) {
  absl::StatusOr<ChildResult> r =
      RunChild(Shell("exec >/dev/null 2>&1; sleep 30"), absl::Milliseconds(200),
               RealClock::Default());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
}

TEST(RunChildTest, OutputCaptureIsBounded) {
  OutputLimits limits;
  limits.max_stdout = 1000;
  limits.keep_stderr = 10;
  absl::StatusOr<ChildResult> r =
      RunChild(Shell("head -c 100000 /dev/zero; "
                     "printf 0123456789abcdefghij >&2"),
               absl::Seconds(30), RealClock::Default(), limits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text.size(), 1000u);
  EXPECT_EQ(r->stderr_text, "abcdefghij");

  limits.stdout_keep_tail = true;
  limits.max_stdout = 5;
  r = RunChild(Shell("head -c 100000 /dev/zero; printf tail!"),
               absl::Seconds(30), RealClock::Default(), limits);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "tail!");
}

TEST(RunChildTest, EnvironmentIsOursLessUnsetPlusAdded) {
  ASSERT_EQ(setenv("NAVARCH_SUBPROCESS_TEST_DROP", "secret", 1), 0);
  ASSERT_EQ(setenv("NAVARCH_SUBPROCESS_TEST_KEEP", "kept", 1), 0);
  ChildOptions o = Shell(
      "echo \"$NAVARCH_SUBPROCESS_TEST_DROP|$NAVARCH_SUBPROCESS_TEST_KEEP|"
      "$ADDED\"");
  o.unset_env = {"NAVARCH_SUBPROCESS_TEST_DROP"};
  o.env["ADDED"] = "new";
  absl::StatusOr<ChildResult> r =
      RunChild(o, absl::Seconds(30), RealClock::Default());
  unsetenv("NAVARCH_SUBPROCESS_TEST_DROP");
  unsetenv("NAVARCH_SUBPROCESS_TEST_KEEP");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "|kept|new\n");
}

TEST(RunChildTest, AProgramThatDoesNotExistIsAnError) {
  ChildOptions o;
  o.argv = {"navarch-no-such-program-xyz"};
  absl::StatusOr<ChildResult> r =
      RunChild(o, absl::Seconds(1), RealClock::Default());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("cannot run navarch-no-such-program-xyz"));
  EXPECT_EQ(RunChild(ChildOptions{}, absl::Seconds(1), RealClock::Default())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RunChildTest, OnStartSeesThePid) {
  pid_t seen = 0;
  absl::StatusOr<ChildResult> r =
      RunChild(Shell("echo $$"), absl::Seconds(30), RealClock::Default(), {},
               [&](pid_t pid) { seen = pid; });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, absl::StrCat(seen, "\n"));
}

TEST(ChildTest, TheDestructorKillsAndReapsIt) {
  pid_t pid = 0;
  {
    absl::StatusOr<std::unique_ptr<Child>> c = Child::Start(Shell("sleep 30"));
    ASSERT_TRUE(c.ok()) << c.status();
    pid = (*c)->pid();
    EXPECT_FALSE((*c)->TryReap());
  }
  // Reaped: not even a zombie is left.
  EXPECT_EQ(kill(pid, 0), -1);
}

TEST(ChildTest, AReleasedChildRunsOnInItsOwnSession) {
  ChildOptions o = Shell("sleep 30");
  o.group = ChildOptions::Group::kSession;
  pid_t pid = 0;
  {
    absl::StatusOr<std::unique_ptr<Child>> c = Child::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    pid = (*c)->Release();
  }
  EXPECT_EQ(kill(pid, 0), 0);
  EXPECT_EQ(getsid(pid), pid);
  kill(pid, SIGKILL);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
}

TEST(ChildTest, AppendsOutputToAFile) {
  const std::string path = ::testing::TempDir() + "/subprocess_test.log";
  std::filesystem::remove(path);
  for (const char* word : {"first", "second"}) {
    ChildOptions o = Shell(std::string("echo ") + word + "; echo err >&2");
    o.output = ChildOptions::Output::kAppendToFile;
    o.output_file = path;
    o.group = ChildOptions::Group::kInherit;
    absl::StatusOr<std::unique_ptr<Child>> c = Child::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->stdout_fd(), -1);
    (*c)->WaitBlocking();
    EXPECT_EQ((*c)->exit_code(), 0);
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "first\nerr\nsecond\nerr\n");
}

}  // namespace
}  // namespace navarch
