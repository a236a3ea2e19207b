// SshClient against a real sshd on a loopback port (tests/testing/sshd.h).
#include "navarch/bootstrap/ssh_client.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/sshd.h"

namespace navarch::bootstrap {
namespace {

using navarch::testing::ReadFile;
using navarch::testing::WriteFile;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kDial = absl::Seconds(10);

class SshClientTest : public ::testing::Test {
 protected:
  SshTarget Target() const {
    return {sshd_.host(), sshd_.port(), sshd_.user(), sshd_.client_key_path()};
  }
  static HostKeyCheck Insecure() { return {HostKeyPolicy::kInsecure, "", ""}; }
  HostKeyCheck KnownHosts(const std::string& content) {
    const std::string path = sshd_.dir() + "/known_hosts";
    WriteFile(path, content);
    return {HostKeyPolicy::kKnownHosts, path, ""};
  }
  absl::StatusOr<std::unique_ptr<SshClient>> Connect(const HostKeyCheck& c) {
    return SshClient::Connect(Target(), c, kDial, clock_);
  }
  std::unique_ptr<SshClient> MustConnect() {
    auto client = Connect(Insecure());
    EXPECT_TRUE(client.ok()) << client.status() << "\n" << sshd_.Log();
    return client.ok() ? std::move(*client) : nullptr;
  }

  navarch::testing::Sshd sshd_;
  RealClock clock_;
};

TEST_F(SshClientTest, RunsCommandsAndCapturesBothStreams) {
  auto client = MustConnect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->host_key().public_key, sshd_.host_public_key());
  EXPECT_EQ(client->host_key().fingerprint, sshd_.host_key_fingerprint());
  auto r =
      client->Run("echo out; echo err >&2; exit 0", absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_text, "out\n");
  EXPECT_EQ(r->stderr_text, "err\n");
  EXPECT_FALSE(r->timed_out);
  EXPECT_FALSE(r->output_truncated);
  // The same connection runs the next command.
  r = client->Run("printf second", absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "second");
}

TEST_F(SshClientTest, NonZeroExitAndSignalsAreResults) {
  auto client = MustConnect();
  ASSERT_NE(client, nullptr);
  auto r = client->Run("exit 3", absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  r = client->Run("kill -TERM $$", absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 128 + 15);
  // Quotes and the user's shell's own syntax pass through unchanged.
  r = client->Run("echo \"it's\" '$HOME'; [ -n \"$SHELL\" ] && exit 4",
                  absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "it's $HOME\n");
  EXPECT_EQ(r->exit_code, 4);
}

// Whether any process's command line holds `needle`.
bool ProcessRunning(const std::string& needle) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST_F(SshClientTest, TimedOutCommandIsKilledOnTheServer) {
  auto client = MustConnect();
  ASSERT_NE(client, nullptr);
  const std::string marker = sshd_.dir() + "/finished";
  // A sleep of its own length, so that it can be found among all processes.
  // The timeout leaves the user's shell time to read its startup files
  // (killing it there could leave their locks behind).
  const std::string sleep =
      absl::StrCat("sleep 3.", 100000 + getpid() % 800000);
  const absl::Duration start = clock_.SteadyNow();
  auto r =
      client->Run(absl::StrCat("echo started; ", sleep, " && touch ", marker),
                  absl::Milliseconds(1500), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->stdout_text, "started\n");
  EXPECT_GE(r->duration, absl::Milliseconds(1500));
  EXPECT_LT(r->duration, absl::Milliseconds(2500));
  // Gone at once, not after finishing: killed by the server.
  EXPECT_TRUE(
      navarch::testing::Eventually([&] { return !ProcessRunning(sleep); }, 1))
      << sleep << " still runs";
  // And the command never went on to its second part.
  absl::SleepFor(absl::Seconds(4) - (clock_.SteadyNow() - start));
  EXPECT_FALSE(std::filesystem::exists(marker)) << sshd_.Log();
  // The connection is still usable.
  r = client->Run("echo again", absl::Seconds(10), 1024);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stdout_text, "again\n");
}

// The sshd processes below `listener` (those serving connections).
std::vector<pid_t> SshdDescendants(pid_t listener) {
  std::map<pid_t, pid_t> parent;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string stat = ReadFile(entry.path().string() + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    pid_t ppid = 0;
    if (sscanf(stat.c_str() + paren + 1, " %*c %d", &ppid) != 1) continue;
    parent[atoi(entry.path().filename().c_str())] = ppid;
  }
  std::vector<pid_t> out;
  for (const auto& [pid, ppid] : parent) {
    for (pid_t p = ppid; p > 1; p = parent.count(p) ? parent[p] : 0) {
      if (p != listener) continue;
      const std::string cmdline =
          ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
      if (cmdline.rfind("sshd: ", 0) == 0) out.push_back(pid);
      break;
    }
  }
  return out;
}

// When the connection dies (here sshd's processes serving it are killed, as
// sshd ends them when the network drops), the guard kills the command: it
// does not run on unobserved.
TEST_F(SshClientTest, CommandDiesWithItsConnection) {
  auto client = MustConnect();
  ASSERT_NE(client, nullptr);
  const std::string sleep =
      absl::StrCat("sleep 9.", 100000 + getpid() % 800000);
  absl::StatusOr<CommandResult> r;
  std::thread runner([&] { r = client->Run(sleep, absl::Seconds(30), 1024); });
  EXPECT_TRUE(
      navarch::testing::Eventually([&] { return ProcessRunning(sleep); }, 10));
  const std::vector<pid_t> serving = SshdDescendants(sshd_.pid());
  EXPECT_FALSE(serving.empty());
  for (pid_t pid : serving) kill(pid, SIGKILL);
  runner.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(
      navarch::testing::Eventually([&] { return !ProcessRunning(sleep); }, 2))
      << sleep << " still runs";
}

TEST_F(SshClientTest, OutputIsTruncatedWithAMarker) {
  auto client = MustConnect();
  ASSERT_NE(client, nullptr);
  auto r = client->Run(
      "head -c 200000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | "
      "tr '\\0' b >&2; echo; echo END",
      absl::Seconds(20), 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(r->output_truncated);
  EXPECT_THAT(r->stdout_text, HasSubstr("bytes of output dropped"));
  EXPECT_THAT(r->stdout_text, StartsWith("aaaa"));
  EXPECT_THAT(r->stdout_text, ::testing::EndsWith("\nEND\n"));
  EXPECT_LT(r->stdout_text.size(), 1100u);
  EXPECT_THAT(r->stderr_text, HasSubstr("[... 299000 bytes of output dropped"));
  EXPECT_LT(r->stderr_text.size(), 1100u);
}

TEST_F(SshClientTest, KnownHostsAcceptsListedKeyPlainAndHashed) {
  auto client = Connect(KnownHosts(sshd_.KnownHostsLine() + "\n"));
  ASSERT_TRUE(client.ok()) << client.status();
  // ssh-keygen -H hashes the host names, as HashKnownHosts does.
  const HostKeyCheck check = KnownHosts(sshd_.KnownHostsLine() + "\n");
  std::string out;
  ASSERT_EQ(
      navarch::testing::RunProgram("/usr/bin/ssh-keygen",
                                   {"-H", "-f", check.known_hosts_path}, &out),
      0)
      << out;
  ASSERT_THAT(ReadFile(check.known_hosts_path), StartsWith("|1|"));
  client = Connect(check);
  ASSERT_TRUE(client.ok()) << client.status();
}

TEST_F(SshClientTest, KnownHostsRefusesAChangedKey) {
  const std::string other =
      navarch::testing::GenerateKey(sshd_.dir() + "/other_key");
  auto client = Connect(KnownHosts(
      absl::StrCat("[", sshd_.host(), "]:", sshd_.port(), " ", other, "\n")));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(client.status().message(), HasSubstr("host key changed"));
  EXPECT_THAT(client.status().message(),
              HasSubstr(absl::StrCat(sshd_.host(), ":", sshd_.port())));
  EXPECT_THAT(client.status().message(),
              HasSubstr(sshd_.host_key_fingerprint()));
}

TEST_F(SshClientTest, KnownHostsRefusesAnUnknownHost) {
  // The right key, but for port 22 (no brackets): not this server.
  auto client = Connect(KnownHosts(
      absl::StrCat(sshd_.host(), " ", sshd_.host_public_key(), "\n")));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(client.status().message(), HasSubstr("host key unknown"));
  EXPECT_THAT(client.status().message(),
              HasSubstr(sshd_.host_key_fingerprint()));
  // A missing file is refused too.
  client = SshClient::Connect(
      Target(), {HostKeyPolicy::kKnownHosts, sshd_.dir() + "/none", ""}, kDial,
      clock_);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SshClientTest, TofuPinsTheFirstKeyAndRefusesAnother) {
  auto client = Connect({HostKeyPolicy::kTofu, "", ""});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string seen = (*client)->host_key().public_key;
  EXPECT_EQ(seen, sshd_.host_public_key());
  client = Connect({HostKeyPolicy::kTofu, "", seen + " a-comment"});
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string other =
      navarch::testing::GenerateKey(sshd_.dir() + "/other_key");
  client = Connect({HostKeyPolicy::kTofu, "", other});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(client.status().message(), HasSubstr("host key changed"));
  EXPECT_THAT(client.status().message(),
              HasSubstr(sshd_.host_key_fingerprint()));
  client = Connect({HostKeyPolicy::kTofu, "", "ssh-ed25519 not-base64!"});
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SshClientTest, RefusedClientKeyIsPermissionDenied) {
  SshTarget target = Target();
  target.private_key_path = sshd_.dir() + "/stranger";
  navarch::testing::GenerateKey(target.private_key_path);
  auto client = SshClient::Connect(target, Insecure(), kDial, clock_);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(client.status().message(), HasSubstr(target.private_key_path));
  EXPECT_THAT(client.status().message(),
              ::testing::Not(HasSubstr("PRIVATE KEY")));
}

TEST_F(SshClientTest, MissingKeyFileIsInvalidArgument) {
  SshTarget target = Target();
  target.private_key_path = sshd_.dir() + "/missing";
  auto client = SshClient::Connect(target, Insecure(), kDial, clock_);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SshClientTest, CancelKillsTheRunningCommand) {
  absl::Notification cancel;
  auto client =
      SshClient::Connect(Target(), Insecure(), kDial, clock_, &cancel);
  ASSERT_TRUE(client.ok()) << client.status();
  const TimerId timer =
      clock_.Schedule(absl::Milliseconds(1500), [&] { cancel.Notify(); });
  const std::string sleep =
      absl::StrCat("sleep 9.", 100000 + getpid() % 800000);
  auto r = (*client)->Run(sleep, absl::Seconds(30), 1024);
  clock_.Cancel(timer);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(
      navarch::testing::Eventually([&] { return !ProcessRunning(sleep); }, 1));
}

}  // namespace
}  // namespace navarch::bootstrap
