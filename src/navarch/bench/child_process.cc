#include "navarch/bench/child_process.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace navarch::bench {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::string& binary, const std::vector<std::string>& args,
    const std::string& log_path) {
  ChildOptions options;
  options.argv.push_back(binary);
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  // Our process group: a Ctrl-C of the benchmark stops it too.
  options.group = ChildOptions::Group::kInherit;
  options.output = ChildOptions::Output::kAppendToFile;
  options.output_file = log_path;
  absl::StatusOr<std::unique_ptr<Child>> child = Child::Start(options);
  if (!child.ok()) return child.status();
  return std::unique_ptr<ChildProcess>(new ChildProcess(*std::move(child)));
}

bool ChildProcess::Exited() { return child_->TryReap(); }

absl::StatusOr<int> ChildProcess::Wait(Clock& clock, absl::Duration timeout) {
  absl::Duration deadline = clock.SteadyNow() + timeout;
  while (!child_->TryReap()) {
    if (clock.SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid(), " still running"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return child_->wait_status();
}

absl::StatusOr<int64_t> ReadRssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("no process ", pid));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (!absl::ConsumePrefix(&v, "VmRSS:")) continue;
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumeSuffix(&v, "kB");
    v = absl::StripAsciiWhitespace(v);
    int64_t kb = 0;
    if (!absl::SimpleAtoi(v, &kb))
      return absl::InternalError(absl::StrCat("cannot parse VmRSS: ", line));
    return kb * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS for process ", pid));
}

absl::StatusOr<std::string> WaitForReadyFile(const std::string& path,
                                             ChildProcess& process,
                                             Clock& clock,
                                             absl::Duration timeout) {
  absl::Duration deadline = clock.SteadyNow() + timeout;
  for (;;) {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string content = ss.str();
      // The control plane writes it atomically (rename), so a complete
      // object is the whole file.
      if (!content.empty() && content.find('}') != std::string::npos) {
        return content;
      }
    }
    if (process.Exited()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "process ", process.pid(), " exited before writing ", path));
    }
    if (clock.SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no ready file ", path, " after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace navarch::bench
