// Structured logs: one JSON object a line (time RFC 3339, level, msg, fields)
// for machines, or a compact human format for terminals.
#ifndef NAVARCH_BASE_LOGGING_H_
#define NAVARCH_BASE_LOGGING_H_

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kJson, kText };

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

struct LogField {
  using Value = std::variant<std::string, int64_t, double, bool>;

  LogField(std::string k, absl::string_view v)
      : key(std::move(k)), value(std::string(v)) {}
  LogField(std::string k, const std::string& v) : key(std::move(k)), value(v) {}
  LogField(std::string k, const char* v)
      : key(std::move(k)), value(std::string(v)) {}
  LogField(std::string k, bool v) : key(std::move(k)), value(v) {}
  LogField(std::string k, double v) : key(std::move(k)), value(v) {}
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  LogField(std::string k, T v)
      : key(std::move(k)), value(static_cast<int64_t>(v)) {}
  LogField(std::string k, absl::Duration v);
  LogField(std::string k, absl::Time v);
  LogField(std::string k, const absl::Status& v)
      : key(std::move(k)), value(v.ToString()) {}

  std::string key;
  Value value;
};

// How a sink limits a storm of identical lines (a full disk made every
// commit log the same error thousands of times a second). Lines are
// identical when level, message and every field are; the time is not
// compared. Of each such line at most `max_repeats` are written per
// `window`; the rest are counted, and once the window is over one line
// with the same message and fields plus `suppressed=N` says how many were
// left out (written with the next line the sink writes, or when the same
// line comes again). max_repeats <= 0 turns the limit off.
struct LogRateLimit {
  int max_repeats = 5;
  absl::Duration window = absl::Seconds(10);
  // Distinct lines remembered at once; past it new lines go unlimited until
  // a window ends, so a sink's memory stays bounded.
  size_t max_tracked = 1024;
};

// A sink shared by loggers; serialises lines. Thread-safe.
class LogSink {
 public:
  LogSink(std::ostream* out, LogFormat format, LogLevel min_level, Clock* clock,
          LogRateLimit limit = {});
  void Write(LogLevel level, absl::string_view msg,
             const std::vector<LogField>& base,
             std::initializer_list<LogField> fields);
  bool Enabled(LogLevel level) const { return level >= min_level_; }

 private:
  // One distinct line seen in the current window.
  struct Repeat {
    absl::Time window_end;
    int written = 0;
    int64_t suppressed = 0;
    LogLevel level = LogLevel::kInfo;
    std::string msg;
    std::vector<LogField> fields;
  };
  std::string Render(absl::Time now, LogLevel level, absl::string_view msg,
                     const std::vector<LogField>& fields) const;
  // Whether the line keyed `key` is written now (false: counted instead).
  bool AdmitLocked(const std::string& key, absl::Time now, LogLevel level,
                   absl::string_view msg, const std::vector<LogField>& fields)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets lines whose window ended, writing the suppressed counts.
  void SweepLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // Lines are written whole, one at a time: the stream is used under mu_.
  std::ostream* const out_ ABSL_PT_GUARDED_BY(mu_);
  LogFormat format_;
  LogLevel min_level_;
  Clock* clock_;
  const LogRateLimit limit_;
  absl::flat_hash_map<std::string, Repeat> repeats_ ABSL_GUARDED_BY(mu_);
  absl::Time next_sweep_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// A logger: a sink plus fields added to every line. Cheap to copy.
class Logger {
 public:
  explicit Logger(std::shared_ptr<LogSink> sink) : sink_(std::move(sink)) {}

  Logger With(std::initializer_list<LogField> fields) const;

  void Log(LogLevel level, absl::string_view msg,
           std::initializer_list<LogField> fields = {}) const;
  void Debug(absl::string_view msg,
             std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kDebug, msg, f);
  }
  void Info(absl::string_view msg,
            std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kInfo, msg, f);
  }
  void Warn(absl::string_view msg,
            std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kWarn, msg, f);
  }
  void Error(absl::string_view msg,
             std::initializer_list<LogField> f = {}) const {
    Log(LogLevel::kError, msg, f);
  }

 private:
  std::shared_ptr<LogSink> sink_;
  std::vector<LogField> base_;
};

// A logger that discards everything (tests that do not look at logs).
Logger NullLogger();

// Formats t as RFC 3339 in UTC with millisecond precision.
std::string FormatRfc3339(absl::Time t);

}  // namespace navarch

#endif  // NAVARCH_BASE_LOGGING_H_
