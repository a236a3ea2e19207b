// RunBootstrap against a real sshd on a loopback port, and against loopback
// ports that never answer as SSH.
#include "navarch/bootstrap/ssh_bootstrap.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/sshd.h"

namespace navarch::bootstrap {
namespace {

using ::testing::HasSubstr;

class SshBootstrapTest : public ::testing::Test {
 protected:
  SshTarget Target() const {
    return {sshd_.host(), sshd_.port(), sshd_.user(), sshd_.client_key_path()};
  }
  BootstrapOptions Options() const {
    BootstrapOptions o;
    o.ssh_timeout = absl::Seconds(20);
    o.ssh_connect_timeout = absl::Seconds(10);
    o.command_timeout = absl::Seconds(20);
    o.retry_interval = absl::Milliseconds(200);
    o.host_key = {HostKeyPolicy::kTofu, "", sshd_.host_public_key()};
    return o;
  }

  navarch::testing::Sshd sshd_;
  RealClock clock_;
};

TEST_F(SshBootstrapTest, RunsEveryCommandAndKeepsTheirOutput) {
  const BootstrapResult r = RunBootstrap(
      Target(), {"echo one; echo warn >&2", "printf two"}, Options(), clock_);
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_EQ(r.error_code, absl::StatusCode::kOk);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[0].command, "echo one; echo warn >&2");
  EXPECT_EQ(r.steps[0].exit_code, 0);
  EXPECT_EQ(r.steps[0].stdout_text, "one\n");
  EXPECT_EQ(r.steps[0].stderr_text, "warn\n");
  EXPECT_EQ(r.steps[1].stdout_text, "two");
  EXPECT_FALSE(r.steps[1].timed_out);
  EXPECT_EQ(r.host_key.public_key, sshd_.host_public_key());
  EXPECT_EQ(r.host_key.fingerprint, sshd_.host_key_fingerprint());
  EXPECT_GT(r.duration, absl::ZeroDuration());
  EXPECT_LE(r.ssh_wait, r.duration);
}

TEST_F(SshBootstrapTest, StopsAtTheFirstFailingCommand) {
  const std::string marker = sshd_.dir() + "/third-ran";
  const BootstrapResult r = RunBootstrap(
      Target(), {"true", "echo failing >&2; exit 3", "touch " + marker},
      Options(), clock_);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error_code, absl::StatusCode::kAborted);
  EXPECT_THAT(r.error, HasSubstr("command 2 of 3 exited with status 3"));
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[1].exit_code, 3);
  EXPECT_EQ(r.steps[1].stderr_text, "failing\n");
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(SshBootstrapTest, TimedOutCommandStopsTheBootstrap) {
  BootstrapOptions options = Options();
  options.command_timeout = absl::Milliseconds(1500);
  const std::string marker = sshd_.dir() + "/after";
  const BootstrapResult r =
      RunBootstrap(Target(), {"sleep 30", "touch " + marker}, options, clock_);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error_code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.error, HasSubstr("command 1 of 2 timed out"));
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_TRUE(r.steps[0].timed_out);
  EXPECT_EQ(r.steps[0].exit_code, -1);
  EXPECT_LT(r.duration, absl::Seconds(5));
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST_F(SshBootstrapTest, ChangedHostKeyIsRefusedAtOnce) {
  BootstrapOptions options = Options();
  options.host_key.pinned_key =
      navarch::testing::GenerateKey(sshd_.dir() + "/other");
  const std::string marker = sshd_.dir() + "/ran";
  const BootstrapResult r =
      RunBootstrap(Target(), {"touch " + marker}, options, clock_);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error_code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.error, HasSubstr("host key changed"));
  EXPECT_TRUE(r.steps.empty());
  EXPECT_FALSE(std::filesystem::exists(marker));
  // Not retried until ssh_timeout: a changed key does not change back.
  EXPECT_LT(r.duration, absl::Seconds(5));
}

TEST_F(SshBootstrapTest, InsecureAcceptsAnyKeyAndReportsIt) {
  BootstrapOptions options = Options();
  options.host_key = {HostKeyPolicy::kInsecure, "", ""};
  const BootstrapResult r = RunBootstrap(Target(), {"true"}, options, clock_);
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_EQ(r.host_key.public_key, sshd_.host_public_key());
}

TEST_F(SshBootstrapTest, TruncatesOutputPerStep) {
  BootstrapOptions options = Options();
  options.output_limit = 100;
  const BootstrapResult r =
      RunBootstrap(Target(), {"seq 1 10000"}, options, clock_);
  ASSERT_TRUE(r.success) << r.error;
  EXPECT_THAT(r.steps[0].stdout_text, HasSubstr("bytes of output dropped"));
  EXPECT_THAT(r.steps[0].stdout_text, ::testing::StartsWith("1\n2\n"));
  EXPECT_THAT(r.steps[0].stdout_text, ::testing::EndsWith("9999\n10000\n"));
  EXPECT_LT(r.steps[0].stdout_text.size(), 160u);
}

// A loopback socket that accepts connections (the kernel completes them
// into the backlog) but never says a word.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class UnreachableTest : public ::testing::Test {
 protected:
  BootstrapResult Bootstrap(int port) {
    const std::string key = dir_.path() + "/key";
    navarch::testing::GenerateKey(key);
    BootstrapOptions options;
    options.ssh_timeout = absl::Seconds(2);
    options.ssh_connect_timeout = absl::Milliseconds(700);
    options.retry_interval = absl::Milliseconds(200);
    options.host_key = {HostKeyPolicy::kInsecure, "", ""};
    return RunBootstrap({"127.0.0.1", port, "nobody", key}, {"true"}, options,
                        clock_);
  }

  navarch::testing::TempDir dir_;
  RealClock clock_;
};

TEST_F(UnreachableTest, SilentPortGivesUpWithinSshTimeout) {
  SilentListener silent;
  const absl::Duration start = clock_.SteadyNow();
  const BootstrapResult r = Bootstrap(silent.port());
  const absl::Duration elapsed = clock_.SteadyNow() - start;
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error_code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.error, HasSubstr(absl::StrCat("127.0.0.1:", silent.port())));
  EXPECT_THAT(r.error, HasSubstr("within 2s"));
  EXPECT_TRUE(r.steps.empty());
  EXPECT_GE(elapsed, absl::Seconds(2));
  EXPECT_LT(elapsed, absl::Seconds(2) + absl::Milliseconds(500));
}

TEST_F(UnreachableTest, ClosedPortGivesUpWithinSshTimeout) {
  const int port = navarch::testing::FreePort();
  const absl::Duration start = clock_.SteadyNow();
  const BootstrapResult r = Bootstrap(port);
  const absl::Duration elapsed = clock_.SteadyNow() - start;
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.error_code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.error, HasSubstr("dials"));
  EXPECT_THAT(r.error, HasSubstr("refused"));
  EXPECT_GE(elapsed, absl::Seconds(2) - absl::Milliseconds(300));
  EXPECT_LT(elapsed, absl::Seconds(2) + absl::Milliseconds(500));
}

TEST_F(UnreachableTest, CancelStopsTheRetries) {
  absl::Notification cancel;
  const TimerId timer =
      clock_.Schedule(absl::Milliseconds(300), [&] { cancel.Notify(); });
  const std::string key = dir_.path() + "/key";
  navarch::testing::GenerateKey(key);
  BootstrapOptions options;
  options.ssh_timeout = absl::Seconds(30);
  options.retry_interval = absl::Seconds(10);
  options.host_key = {HostKeyPolicy::kInsecure, "", ""};
  options.cancel = &cancel;
  const absl::Duration start = clock_.SteadyNow();
  const BootstrapResult r =
      RunBootstrap({"127.0.0.1", navarch::testing::FreePort(), "nobody", key},
                   {"true"}, options, clock_);
  clock_.Cancel(timer);
  EXPECT_EQ(r.error_code, absl::StatusCode::kCancelled);
  EXPECT_LT(clock_.SteadyNow() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace navarch::bootstrap
