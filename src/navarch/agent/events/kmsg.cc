#include "navarch/agent/events/kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace navarch::agent {
namespace {

// Bounds on what one XID line may put into an event.
constexpr size_t kMaxPciText = 32;
constexpr size_t kMaxPid = 32;
constexpr size_t kMaxName = 64;
constexpr size_t kMaxText = 1024;
// A log line longer than this is cut (a kernel record is at most ~8 KB).
constexpr size_t kMaxLine = 64 * 1024;

bool ParseUint(absl::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(s, out);
}

absl::string_view Clip(absl::string_view s, size_t max) {
  return s.substr(0, max);
}

// A value of "pid=" or "name=": up to the next ", " (or the end), quotes
// removed.
absl::string_view TakeField(absl::string_view& rest) {
  size_t end = rest.find(", ");
  absl::string_view value = rest.substr(0, end);
  rest = end == absl::string_view::npos ? absl::string_view()
                                        : rest.substr(end + 2);
  value = absl::StripAsciiWhitespace(value);
  if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return value;
}

}  // namespace

KmsgRecord ParseKmsgRecord(absl::string_view text) {
  KmsgRecord r;
  // Only the first line is the message; the rest is the record's dictionary.
  absl::string_view line = text.substr(0, text.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t semi = line.find(';');
  // A header is "pri,seq,usec,flags[,more...]" with numeric first three.
  if (semi != absl::string_view::npos && semi < 128) {
    absl::string_view header = line.substr(0, semi);
    std::vector<absl::string_view> parts;
    size_t start = 0;
    while (parts.size() < 4) {
      size_t comma = header.find(',', start);
      parts.push_back(header.substr(
          start, comma == absl::string_view::npos ? comma : comma - start));
      if (comma == absl::string_view::npos) break;
      start = comma + 1;
    }
    uint64_t pri = 0, seq = 0, usec = 0;
    if (parts.size() >= 4 && ParseUint(parts[0], &pri) && pri < (1u << 20) &&
        ParseUint(parts[1], &seq) && ParseUint(parts[2], &usec)) {
      r.has_header = true;
      r.priority = static_cast<int>(pri);
      r.sequence = seq;
      r.timestamp_us = usec;
      line = line.substr(semi + 1);
    }
  }
  r.message = std::string(Clip(line, kMaxLine));
  return r;
}

std::optional<XidLine> ParseXidLine(absl::string_view message) {
  constexpr absl::string_view kMarker = "NVRM: Xid";
  size_t at = message.find(kMarker);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view s = message.substr(at + kMarker.size());
  s = absl::StripLeadingAsciiWhitespace(s);
  if (s.empty() || s.front() != '(') return std::nullopt;
  size_t close = s.find(')');
  if (close == absl::string_view::npos || close > 64) return std::nullopt;
  XidLine x;
  absl::string_view pci = absl::StripAsciiWhitespace(s.substr(1, close - 1));
  if (pci.size() >= 4 && absl::EqualsIgnoreCase(pci.substr(0, 4), "PCI:"))
    pci.remove_prefix(4);
  x.pci = std::string(Clip(pci, kMaxPciText));
  x.address = ParsePciAddress(pci);
  s = absl::StripLeadingAsciiWhitespace(s.substr(close + 1));
  if (s.empty() || s.front() != ':') return std::nullopt;
  s = absl::StripLeadingAsciiWhitespace(s.substr(1));
  size_t digits = 0;
  while (digits < s.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(s[digits]))) {
    ++digits;
  }
  // Real codes have at most 3 digits; 9 keeps any plausible future code
  // while staying far from int overflow.
  if (digits == 0 || digits > 9) return std::nullopt;
  uint64_t code = 0;
  if (!ParseUint(s.substr(0, digits), &code)) return std::nullopt;
  x.code = static_cast<int>(code);
  s.remove_prefix(digits);
  s = absl::StripLeadingAsciiWhitespace(s);
  if (!s.empty() && s.front() == ',')
    s = absl::StripLeadingAsciiWhitespace(s.substr(1));
  // Since driver 470 or so: "pid=<n>, name=<comm>, <text>"; older drivers go
  // straight to the text; some print pid without name.
  if (absl::StartsWith(s, "pid=")) {
    s.remove_prefix(4);
    x.pid = std::string(Clip(TakeField(s), kMaxPid));
    s = absl::StripLeadingAsciiWhitespace(s);
  }
  if (absl::StartsWith(s, "name=")) {
    s.remove_prefix(5);
    x.process_name = std::string(Clip(TakeField(s), kMaxName));
    s = absl::StripLeadingAsciiWhitespace(s);
  }
  x.text = std::string(Clip(absl::StripTrailingAsciiWhitespace(s), kMaxText));
  return x;
}

absl::string_view XidDescription(int code) {
  switch (code) {
    case 8:
      return "GPU stopped processing (channel timeout)";
    case 13:
      return "Graphics engine exception";
    case 31:
      return "GPU memory page fault";
    case 32:
      return "Invalid or corrupted push buffer stream";
    case 38:
      return "Driver firmware error";
    case 43:
      return "GPU stopped processing (a channel was reset after a fault)";
    case 45:
      return "Preemptive cleanup, due to previous errors";
    case 48:
      return "Double bit ECC error";
    case 56:
      return "Display engine error";
    case 57:
      return "Error programming video memory interface";
    case 61:
      return "Internal micro-controller breakpoint/warning";
    case 62:
      return "Internal micro-controller halt";
    case 63:
      return "ECC page retirement or row remapping recording event";
    case 64:
      return "ECC page retirement or row remapping recording failure";
    case 68:
      return "Video decoder exception";
    case 69:
      return "Graphics engine class error";
    case 74:
      return "NVLink error";
    case 79:
      return "GPU has fallen off the bus";
    case 92:
      return "High single-bit ECC error rate";
    case 94:
      return "Contained ECC error";
    case 95:
      return "Uncontained ECC error";
    case 119:
      return "GSP RPC timeout";
    case 120:
      return "GSP error";
    case 154:
      return "GPU recovery action changed";
    default:
      return "";
  }
}

// ---------------------------------------------------------------------------
// KmsgFollower

KmsgFollower::KmsgFollower(KmsgOptions options, Clock& clock, Callback callback)
    : options_(std::move(options)),
      callback_(std::move(callback)),
      timers_(clock) {}

KmsgFollower::~KmsgFollower() { Stop(); }

absl::Status KmsgFollower::Start() {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (running_) return absl::OkStatus();
    running_ = true;
    status = Open();
  }
  // The first poll right away: the current boot's records.
  ScheduleNext(status.ok() ? absl::ZeroDuration() : options_.reopen_interval);
  return status;
}

void KmsgFollower::Stop() {
  timers_.Close();
  absl::MutexLock lock(&mu_);
  running_ = false;
  Close();
}

uint64_t KmsgFollower::records() const {
  absl::MutexLock lock(&mu_);
  return records_;
}

uint64_t KmsgFollower::overruns() const {
  absl::MutexLock lock(&mu_);
  return overruns_;
}

void KmsgFollower::ScheduleNext(absl::Duration delay) {
  timers_.Schedule(delay, [this] {
    PollOnce();
    bool open;
    {
      absl::MutexLock lock(&mu_);
      if (!running_) return;
      open = fd_ >= 0;
    }
    ScheduleNext(open ? options_.poll_interval : options_.reopen_interval);
  });
}

absl::Status KmsgFollower::Open() {
  Close();
  int fd = ::open(options_.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot open kernel log ", options_.path, ": ", strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot stat ", options_.path));
  }
  fd_ = fd;
  is_device_ = S_ISCHR(st.st_mode);
  is_regular_ = S_ISREG(st.st_mode);
  inode_ = st.st_ino;
  offset_ = 0;
  partial_.clear();
  return absl::OkStatus();
}

void KmsgFollower::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  partial_.clear();
}

void KmsgFollower::PollOnce() {
  std::vector<KmsgRecord> out;
  {
    absl::MutexLock lock(&mu_);
    if (fd_ < 0 && !Open().ok()) return;
    if (is_device_) {
      ReadDevice();
    } else {
      ReadFile();
    }
    out.swap(pending_);
  }
  // Outside the lock: the callback may take its time or call back in.
  for (const KmsgRecord& r : out) callback_(r);
}

void KmsgFollower::Emit(absl::string_view text) {
  ++records_;
  pending_.push_back(ParseKmsgRecord(text));
}

void KmsgFollower::ReadDevice() {
  // Each read() of /dev/kmsg returns exactly one record; EAGAIN means we are
  // at the end; EPIPE means the ring buffer overwrote records we had not read
  // (the next read continues with the oldest one left).
  std::string buf(16 * 1024, '\0');
  size_t total = 0;
  while (total < options_.max_bytes_per_poll) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n > 0) {
      total += static_cast<size_t>(n);
      Emit(absl::string_view(buf.data(), static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) {
      ++overruns_;
      continue;
    }
    if (n < 0 && errno == EAGAIN) return;
    // EOF or an unexpected error: reopen next time.
    Close();
    return;
  }
}

void KmsgFollower::ReadFile() {
  // A plain file: notice rotation (a new inode at the path) and truncation
  // (smaller than what we read), and start over from its beginning.
  struct stat st;
  if (::stat(options_.path.c_str(), &st) != 0) {
    Close();
    return;
  }
  if (static_cast<uint64_t>(st.st_ino) != inode_) {
    // Rotated: a new file at the path.
    if (!Open().ok()) return;
  } else if (S_ISREG(st.st_mode) &&
             static_cast<uint64_t>(st.st_size) < offset_) {
    offset_ = 0;
    partial_.clear();
  }
  std::string buf(64 * 1024, '\0');
  size_t total = 0;
  while (total < options_.max_bytes_per_poll) {
    // A pipe has no offsets: read what is there.
    ssize_t n = is_regular_ ? ::pread(fd_, buf.data(), buf.size(),
                                      static_cast<off_t>(offset_))
                            : ::read(fd_, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    offset_ += static_cast<uint64_t>(n);
    total += static_cast<size_t>(n);
    partial_.append(buf.data(), static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      absl::string_view line(partial_.data() + start, nl - start);
      // Continuation lines (" KEY=value") belong to the record before.
      if (!line.empty() && line.front() != ' ') Emit(line);
    }
    partial_.erase(0, start);
    if (partial_.size() > kMaxLine) {
      Emit(partial_);
      partial_.clear();
    }
  }
}

}  // namespace navarch::agent
