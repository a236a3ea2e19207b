#include "navarch/base/duration.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace navarch {
namespace {

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid duration \"", text, "\": ", why));
}

}  // namespace

absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text) {
  absl::string_view s = text;
  if (s.empty()) return Invalid(text, "empty");
  bool negative = false;
  if (s[0] == '-' || s[0] == '+') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return absl::ZeroDuration();
  if (s.empty()) return Invalid(text, "no number");
  absl::Duration total;
  while (!s.empty()) {
    // Number: digits, optional fraction.
    uint64_t whole = 0;
    size_t i = 0;
    bool any = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (whole > (UINT64_MAX - 9) / 10) return Invalid(text, "overflow");
      whole = whole * 10 + (s[i] - '0');
      ++i;
      any = true;
    }
    double fraction = 0;
    if (i < s.size() && s[i] == '.') {
      ++i;
      double scale = 0.1;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        fraction += (s[i] - '0') * scale;
        scale /= 10;
        ++i;
        any = true;
      }
    }
    if (!any) return Invalid(text, "expected a number");
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && !(s[u] >= '0' && s[u] <= '9') && s[u] != '.') ++u;
    absl::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    absl::Duration unit_d;
    if (unit == "ns") {
      unit_d = absl::Nanoseconds(1);
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      unit_d = absl::Microseconds(1);
    } else if (unit == "ms") {
      unit_d = absl::Milliseconds(1);
    } else if (unit == "s") {
      unit_d = absl::Seconds(1);
    } else if (unit == "m") {
      unit_d = absl::Minutes(1);
    } else if (unit == "h") {
      unit_d = absl::Hours(1);
    } else if (unit.empty()) {
      return Invalid(text, "missing unit (use ns, us, ms, s, m or h)");
    } else {
      return Invalid(text, absl::StrCat("unknown unit \"", unit, "\""));
    }
    total += unit_d * static_cast<int64_t>(whole) + unit_d * fraction;
    if (total > absl::Hours(2562047)) return Invalid(text, "overflow");
  }
  return negative ? -total : total;
}

std::string FormatGoDuration(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return "inf";
  if (d == -absl::InfiniteDuration()) return "-inf";
  if (d == absl::ZeroDuration()) return "0s";
  std::string out;
  if (d < absl::ZeroDuration()) {
    out = "-";
    d = -d;
  }
  if (d < absl::Seconds(1)) {
    int64_t ns = absl::ToInt64Nanoseconds(d);
    if (ns % 1000000 == 0) return absl::StrCat(out, ns / 1000000, "ms");
    if (ns % 1000 == 0) return absl::StrCat(out, ns / 1000, "us");
    if (ns >= 1000000)
      return absl::StrCat(out, absl::FDivDuration(d, absl::Milliseconds(1)),
                          "ms");
    return absl::StrCat(out, ns, "ns");
  }
  int64_t hours = absl::IDivDuration(d, absl::Hours(1), &d);
  int64_t minutes = absl::IDivDuration(d, absl::Minutes(1), &d);
  if (hours > 0) absl::StrAppend(&out, hours, "h");
  if (minutes > 0) absl::StrAppend(&out, minutes, "m");
  if (d > absl::ZeroDuration()) {
    // Seconds with up to nanosecond precision, trailing zeros trimmed.
    int64_t ns = absl::ToInt64Nanoseconds(d);
    std::string frac = absl::StrCat(ns % 1000000000 + 1000000000).substr(1);
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    absl::StrAppend(&out, ns / 1000000000, frac.empty() ? "" : ".", frac, "s");
  }
  return out;
}

}  // namespace navarch
