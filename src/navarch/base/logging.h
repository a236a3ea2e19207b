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

// A sink shared by loggers; serialises lines. Thread-safe.
class LogSink {
 public:
  LogSink(std::ostream* out, LogFormat format, LogLevel min_level,
          Clock* clock);
  void Write(LogLevel level, absl::string_view msg,
             const std::vector<LogField>& base,
             std::initializer_list<LogField> fields);
  bool Enabled(LogLevel level) const { return level >= min_level_; }

 private:
  absl::Mutex mu_;
  // Lines are written whole, one at a time: the stream is used under mu_.
  std::ostream* const out_ ABSL_PT_GUARDED_BY(mu_);
  LogFormat format_;
  LogLevel min_level_;
  Clock* clock_;
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
