// Runs a real binary in a test: spawn with arguments, wait for its ready
// file, signal it, collect its exit status. POSIX only; no dependency on the
// rest of Navarch (the upstream-client test links nothing of ours).
#ifndef NAVARCH_TESTS_TESTING_PROCESS_H_
#define NAVARCH_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace navarch::testing {

// The folder holding the project's binaries (<build>/bin), from the
// NAVARCH_BIN_DIR compile definition.
std::string BinDir();

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Process {
 public:
  // Starts `binary` with `args`; stdout and stderr go to `log_path`.
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::string& log_path);
  ~Process();  // SIGKILLs it if still running

  pid_t pid() const { return pid_; }
  // Sends `sig`.
  void Signal(int sig);
  // Waits for exit up to `timeout`; returns the exit code, 128+signal if it
  // was killed, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Polls until `path` exists and is non-empty (or the process exits or the
// timeout passes); returns its content, or "" on failure.
std::string WaitForFile(const std::string& path, Process& process,
                        std::chrono::milliseconds timeout);

// Reads a whole file ("" if missing).
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A loopback TCP port free now (for a server whose address must be known
// before it starts, e.g. written into a configuration file).
int FreePort();

// Polls `pred` every 100 ms until it holds or `seconds` pass; its last
// answer. For real processes only: in-process tests use a FakeClock.
bool Eventually(const std::function<bool()>& pred, int seconds = 60);

// Extracts the string value of "key" from a flat JSON object.
std::string JsonString(const std::string& json, const std::string& key);

}  // namespace navarch::testing

#endif  // NAVARCH_TESTS_TESTING_PROCESS_H_
