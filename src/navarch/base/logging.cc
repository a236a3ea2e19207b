#include "navarch/base/logging.h"

#include <algorithm>
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/duration.h"
#include "nlohmann/json.hpp"

namespace navarch {

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "debug") return LogLevel::kDebug;
  if (n == "info" || n.empty()) return LogLevel::kInfo;
  if (n == "warn" || n == "warning") return LogLevel::kWarn;
  if (n == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level \"", name, "\" (debug, info, warn, error)"));
}

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "json" || n.empty()) return LogFormat::kJson;
  if (n == "text") return LogFormat::kText;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log format \"", name, "\" (json, text)"));
}

LogField::LogField(std::string k, absl::Duration v)
    : key(std::move(k)), value(FormatGoDuration(v)) {}
LogField::LogField(std::string k, absl::Time v)
    : key(std::move(k)), value(FormatRfc3339(v)) {}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

LogSink::LogSink(std::ostream* out, LogFormat format, LogLevel min_level,
                 Clock* clock, LogRateLimit limit)
    : out_(out),
      format_(format),
      min_level_(min_level),
      clock_(clock),
      limit_(limit) {}

namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void AddJson(nlohmann::json& j, const LogField& f) {
  std::visit([&](const auto& v) { j[f.key] = v; }, f.value);
}

void AddText(std::string& line, const LogField& f) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          bool quote =
              v.empty() || v.find_first_of(" =\"") != std::string::npos;
          absl::StrAppend(&line, " ", f.key, "=",
                          quote ? nlohmann::json(v).dump() : v);
        } else if constexpr (std::is_same_v<T, bool>) {
          absl::StrAppend(&line, " ", f.key, "=", v ? "true" : "false");
        } else {
          absl::StrAppend(&line, " ", f.key, "=", v);
        }
      },
      f.value);
}

}  // namespace

std::string LogSink::Render(absl::Time now, LogLevel level,
                            absl::string_view msg,
                            const std::vector<LogField>& fields) const {
  std::string line;
  if (format_ == LogFormat::kJson) {
    nlohmann::json j = nlohmann::json::object();
    j["time"] = FormatRfc3339(now);
    j["level"] = LevelName(level);
    j["msg"] = std::string(msg);
    for (const auto& f : fields) AddJson(j, f);
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = absl::StrCat(FormatRfc3339(now), " ",
                        absl::AsciiStrToUpper(LevelName(level)), " ", msg);
    for (const auto& f : fields) AddText(line, f);
  }
  line.push_back('\n');
  return line;
}

void LogSink::Write(LogLevel level, absl::string_view msg,
                    const std::vector<LogField>& base,
                    std::initializer_list<LogField> fields) {
  if (!Enabled(level)) return;
  absl::Time now = clock_->Now();
  std::vector<LogField> all = base;
  all.insert(all.end(), fields.begin(), fields.end());
  std::string key;
  if (limit_.max_repeats > 0) {
    // The line as text without its time: identical lines, identical keys.
    key = absl::StrCat(LevelName(level), " ", msg);
    for (const auto& f : all) AddText(key, f);
  }
  std::string line = Render(now, level, msg, all);
  absl::MutexLock lock(&mu_);
  if (limit_.max_repeats > 0) {
    SweepLocked(now);
    if (!AdmitLocked(key, now, level, msg, all)) return;
  }
  EmitLocked(line);
}

bool LogSink::AdmitLocked(const std::string& key, absl::Time now,
                          LogLevel level, absl::string_view msg,
                          const std::vector<LogField>& fields) {
  auto it = repeats_.find(key);
  if (it == repeats_.end()) {
    if (repeats_.size() >= limit_.max_tracked) return true;
    Repeat r;
    r.window_end = now + limit_.window;
    r.written = 1;
    r.level = level;
    r.msg = std::string(msg);
    r.fields = fields;
    repeats_.emplace(key, std::move(r));
    next_sweep_ = std::min(next_sweep_, now + limit_.window);
    return true;
  }
  if (it->second.written < limit_.max_repeats) {
    ++it->second.written;
    return true;
  }
  ++it->second.suppressed;
  return false;
}

void LogSink::SweepLocked(absl::Time now) {
  if (now < next_sweep_) return;
  next_sweep_ = absl::InfiniteFuture();
  for (auto it = repeats_.begin(); it != repeats_.end();) {
    Repeat& r = it->second;
    if (now < r.window_end) {
      next_sweep_ = std::min(next_sweep_, r.window_end);
      ++it;
      continue;
    }
    if (r.suppressed > 0) {
      r.fields.emplace_back("suppressed", r.suppressed);
      r.fields.emplace_back("suppressed_over", limit_.window);
      EmitLocked(Render(now, r.level, r.msg, r.fields));
    }
    repeats_.erase(it++);
  }
}

void LogSink::EmitLocked(const std::string& line) {
  (*out_) << line;
  out_->flush();
}

Logger Logger::With(std::initializer_list<LogField> fields) const {
  Logger copy = *this;
  copy.base_.insert(copy.base_.end(), fields.begin(), fields.end());
  return copy;
}

void Logger::Log(LogLevel level, absl::string_view msg,
                 std::initializer_list<LogField> fields) const {
  if (sink_ == nullptr) return;
  sink_->Write(level, msg, base_, fields);
}

Logger NullLogger() { return Logger(nullptr); }

}  // namespace navarch
