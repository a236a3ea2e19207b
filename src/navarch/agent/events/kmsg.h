// The kernel log as a source of XID errors.
//
// NVIDIA's kernel driver reports every XID in the kernel log ("NVRM: Xid
// (PCI:0000:3b:00): 79, pid=..., name=..., GPU has fallen off the bus."), also
// on drivers and GPUs whose NVML cannot deliver XID events, and with the
// process that triggered it. We read /dev/kmsg in its record format
// ("priority,sequence,microseconds,flags;message", continuation lines start
// with a space): the whole current boot at start, then new records as they
// come. A plain file in the same format (or in dmesg or syslog format) that
// grows works the same way; tests and the local provider inject faults so.
#ifndef NAVARCH_AGENT_EVENTS_KMSG_H_
#define NAVARCH_AGENT_EVENTS_KMSG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/agent/gpu/pci.h"
#include "navarch/agent/timer_set.h"
#include "navarch/base/clock.h"

namespace navarch::agent {

// One kernel log record.
struct KmsgRecord {
  bool has_header = false;  // false: the line had no "pri,seq,usec,flags;"
  int priority = -1;        // syslog facility * 8 + level
  uint64_t sequence = 0;
  uint64_t timestamp_us = 0;  // since boot
  std::string message;        // the first line only
};

// Parses one record (or one line of a log file). Never fails: a line that is
// not in record format is all message. Continuation lines (dictionary
// entries after the first line) are dropped.
KmsgRecord ParseKmsgRecord(absl::string_view text);

// An XID as the driver printed it.
struct XidLine {
  std::string pci;                    // as written, e.g. "0000:3b:00"
  std::optional<PciAddress> address;  // parsed, when well-formed
  int code = 0;
  std::string pid;           // "1234", "<unknown>", or "" when not printed
  std::string process_name;  // "python3", "<unknown>", or ""
  std::string text;          // the rest: the driver's description
};

// Finds and parses an "NVRM: Xid (...)" line anywhere in `message` (so
// dmesg and syslog lines work too). Handles the variants drivers print: with
// or without "PCI:", 4- or 8-digit domains, optional function, with or
// without pid= and name= (quoted or not), any text after. Bounded: a huge or
// hostile line yields at most a few KB of fields. nullopt if no XID.
std::optional<XidLine> ParseXidLine(absl::string_view message);

// What each XID means, in a few words ("" when we do not know the code).
absl::string_view XidDescription(int code);

struct KmsgOptions {
  std::string path = "/dev/kmsg";
  // How often new records are looked for. /dev/kmsg and plain files alike
  // are read without blocking, so no thread waits on them.
  absl::Duration poll_interval = absl::Milliseconds(250);
  // How often a log that cannot be opened is tried again.
  absl::Duration reopen_interval = absl::Seconds(10);
  // At most this much is read per poll, so a huge log is caught up in steps.
  size_t max_bytes_per_poll = 4 << 20;
};

// Follows a kernel log and hands every record to a callback. Polls on the
// Clock, so tests drive it with FakeClock (or call PollOnce directly).
class KmsgFollower {
 public:
  using Callback = std::function<void(const KmsgRecord&)>;

  // `callback` runs on the clock's thread (the caller of PollOnce).
  KmsgFollower(KmsgOptions options, Clock& clock, Callback callback);
  ~KmsgFollower();

  // Opens the log and starts polling. The first poll reads everything the
  // log holds now. If the log cannot be opened the error is returned (for the
  // caller to log) and opening is retried every reopen_interval.
  absl::Status Start();
  // Stops polling; no callback runs after it returns. Idempotent.
  void Stop();
  // Reads what is new now. Thread-compatible with the timer (one at a time).
  void PollOnce();

  uint64_t records() const;
  // Records lost because the kernel ring buffer overwrote them before we read
  // them (/dev/kmsg only).
  uint64_t overruns() const;

 private:
  absl::Status Open() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Close() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadDevice() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadFile() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(absl::string_view text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleNext(absl::Duration delay);

  const KmsgOptions options_;
  Callback callback_;
  TimerSet timers_;

  mutable absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  bool is_device_ ABSL_GUARDED_BY(mu_) = false;
  bool is_regular_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t inode_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t offset_ ABSL_GUARDED_BY(mu_) = 0;
  std::string partial_ ABSL_GUARDED_BY(mu_);  // an unfinished last line
  std::vector<KmsgRecord> pending_ ABSL_GUARDED_BY(mu_);  // for the callback
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t overruns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_EVENTS_KMSG_H_
