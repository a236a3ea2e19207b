#include "navarch/base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace navarch {
namespace {

// Pipes and spawn attributes, released however Start returns.
struct SpawnState {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnState() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnState() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    for (int fd : {out[0], out[1], err[0], err[1]}) {
      if (fd >= 0) close(fd);
    }
  }
};

void SetSignals(posix_spawnattr_t* attr, ChildOptions::Group group) {
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(attr, &none);
  posix_spawnattr_setsigdefault(attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (group == ChildOptions::Group::kNew) {
    posix_spawnattr_setpgroup(attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  } else if (group == ChildOptions::Group::kSession) {
    flags |= POSIX_SPAWN_SETSID;
  }
  posix_spawnattr_setflags(attr, flags);
}

absl::Status SetOutput(const ChildOptions& o, SpawnState& s) {
  posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  if (o.output == ChildOptions::Output::kAppendToFile) {
    posix_spawn_file_actions_addopen(&s.actions, 1, o.output_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&s.actions, 1, 2);
    return absl::OkStatus();
  }
  // O_CLOEXEC: only the dup2'ed copies reach the child.
  if (pipe2(s.out, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  posix_spawn_file_actions_adddup2(&s.actions, s.out[1], 1);
  if (o.output == ChildOptions::Output::kMergedPipe) {
    posix_spawn_file_actions_adddup2(&s.actions, s.out[1], 2);
    return absl::OkStatus();
  }
  if (pipe2(s.err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  posix_spawn_file_actions_adddup2(&s.actions, s.err[1], 2);
  return absl::OkStatus();
}

// "KEY=value" strings: ours, less unset_env, with env on top.
std::vector<std::string> MergedEnvironment(const ChildOptions& o) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view kv(*e);
    const absl::string_view key = kv.substr(0, kv.find('='));
    const bool replaced = o.env.contains(std::string(key)) ||
                          std::find(o.unset_env.begin(), o.unset_env.end(),
                                    key) != o.unset_env.end();
    if (!replaced) out.emplace_back(kv);
  }
  for (const auto& [k, v] : o.env) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void AppendBounded(std::string& to, const char* data, size_t n, size_t max,
                   bool keep_tail) {
  if (!keep_tail) {
    to.append(data, std::min(n, max - std::min(max, to.size())));
    return;
  }
  to.append(data, n);
  // Trimmed only past twice the bound, so the copy is amortised.
  if (to.size() > 2 * max) to.erase(0, to.size() - max);
}

void TrimTail(std::string& s, size_t max) {
  if (s.size() > max) s.erase(0, s.size() - max);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Child>> Child::Start(
    const ChildOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("empty command");
  SpawnState s;
  SetSignals(&s.attr, options.group);
  if (absl::Status st = SetOutput(options, s); !st.ok()) return st;
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv = Pointers(args);
  std::vector<std::string> env_strings;
  char** envp = environ;
  std::vector<char*> env_pointers;
  if (!options.env.empty() || !options.unset_env.empty()) {
    env_strings = MergedEnvironment(options);
    env_pointers = Pointers(env_strings);
    envp = env_pointers.data();
  }
  std::unique_ptr<Child> child(new Child());
  const int rc = posix_spawnp(&child->pid_, argv[0], &s.actions, &s.attr,
                              argv.data(), envp);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", options.argv[0], ": ", strerror(rc)));
  }
  child->leads_group_ = options.group != ChildOptions::Group::kInherit;
  std::swap(child->stdout_fd_, s.out[0]);
  std::swap(child->stderr_fd_, s.err[0]);
  return child;
}

Child::~Child() {
  CloseOutput();
  if (reaped_ || pid_ <= 0) return;
  Signal(SIGKILL);
  WaitBlocking();
}

void Child::CloseOutput() {
  for (int* fd : {&stdout_fd_, &stderr_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void Child::Signal(int sig) {
  if (reaped_ || pid_ <= 0) return;
  kill(leads_group_ ? -pid_ : pid_, sig);
}

bool Child::TryReap() {
  if (reaped_ || pid_ <= 0) return true;
  pid_t r;
  while ((r = waitpid(pid_, &wait_status_, WNOHANG)) < 0 && errno == EINTR) {
  }
  // ECHILD: someone else reaped it; there is nothing left to wait for.
  if (r == pid_ || r < 0) reaped_ = true;
  return reaped_;
}

void Child::WaitBlocking() {
  if (reaped_ || pid_ <= 0) return;
  while (waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

int Child::exit_code() const {
  if (WIFEXITED(wait_status_)) return WEXITSTATUS(wait_status_);
  if (WIFSIGNALED(wait_status_)) return 128 + WTERMSIG(wait_status_);
  return -1;
}

pid_t Child::Release() {
  CloseOutput();
  reaped_ = true;  // not ours to wait for any more
  return pid_;
}

namespace {

// Milliseconds to wait before looking at the deadline again: 0 once it has
// passed, else at most 100 so a FakeClock's advance is seen.
int SliceMs(Clock& clock, absl::Duration deadline) {
  const absl::Duration left = deadline - clock.SteadyNow();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1,
      100));
}

// Reads both pipes until they close or the deadline passes; false on the
// deadline.
bool ReadOutput(Child& child, Clock& clock, absl::Duration deadline,
                const OutputLimits& limits, ChildResult& out) {
  pollfd fds[2] = {{child.stdout_fd(), POLLIN, 0},
                   {child.stderr_fd(), POLLIN, 0}};
  int open_fds = (fds[0].fd >= 0) + (fds[1].fd >= 0);
  char buf[4096];
  while (open_fds > 0) {
    const int ms = SliceMs(clock, deadline);
    if (ms == 0) return false;
    if (poll(fds, 2, ms) < 0) {
      if (errno == EINTR) continue;  // revents are stale
      break;
    }
    for (pollfd& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        p.fd = -1;
        --open_fds;
      } else if (&p == &fds[0]) {
        AppendBounded(out.stdout_text, buf, n, limits.max_stdout,
                      limits.stdout_keep_tail);
      } else {
        AppendBounded(out.stderr_text, buf, n, limits.keep_stderr, true);
      }
    }
  }
  return true;
}

// Its output is closed, but it may still run (it closed them itself, or
// handed them to a daemon): wait for its exit up to the deadline.
bool WaitForExit(Child& child, Clock& clock, absl::Duration deadline) {
  while (!child.TryReap()) {
    if (SliceMs(clock, deadline) == 0) return false;
    poll(nullptr, 0, 2);  // nothing to poll but its exit
  }
  return true;
}

}  // namespace

absl::StatusOr<ChildResult> RunChild(
    const ChildOptions& options, absl::Duration timeout, Clock& clock,
    const OutputLimits& limits, const std::function<void(pid_t)>& on_start) {
  if (options.output == ChildOptions::Output::kAppendToFile) {
    return absl::InvalidArgumentError("RunChild reads the child's output");
  }
  const absl::Duration deadline = clock.SteadyNow() + timeout;
  absl::StatusOr<std::unique_ptr<Child>> child = Child::Start(options);
  if (!child.ok()) return child.status();
  if (on_start) on_start((*child)->pid());
  ChildResult out;
  out.timed_out = !ReadOutput(**child, clock, deadline, limits, out) ||
                  !WaitForExit(**child, clock, deadline);
  (*child)->CloseOutput();
  if (out.timed_out) (*child)->Signal(SIGKILL);
  // Not reaped before the kill, so its pid (and group) cannot have been
  // reused by then.
  (*child)->WaitBlocking();
  out.exit_code = (*child)->exit_code();
  if (limits.stdout_keep_tail) TrimTail(out.stdout_text, limits.max_stdout);
  TrimTail(out.stderr_text, limits.keep_stderr);
  return out;
}

}  // namespace navarch
