#include "navarch/cli/format.h"

#include <algorithm>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"

namespace navarch::cli {
namespace {

const char* Escape(Color c) {
  switch (c) {
    case Color::kGreen:
      return "\033[32m";
    case Color::kYellow:
      return "\033[33m";
    case Color::kRed:
      return "\033[31m";
    case Color::kDim:
      return "\033[2m";
    case Color::kNone:
      break;
  }
  return "";
}

std::string Capitalize(std::string s) {
  if (!s.empty()) s[0] = absl::ascii_toupper(static_cast<unsigned char>(s[0]));
  for (char& c : s) {
    if (c == '_') c = ' ';
  }
  return s;
}

void PrintPadded(std::ostream& out, const Cell& cell, size_t width,
                 bool color) {
  out << Paint(cell.text, cell.color, color);
  size_t w = DisplayWidth(cell.text);
  if (w < width) out << std::string(width - w, ' ');
}

// Drops a trailing ".0", so whole numbers print without decimals.
std::string Trim(std::string s) {
  if (s.size() > 2 && s.substr(s.size() - 2) == ".0") s.resize(s.size() - 2);
  return s;
}

// Whole units, truncated, as upstream prints them: 59s, 1m, 23h, 1d.
std::string Span(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<Cell> cells) {
  cells.resize(headers_.size(), Cell(""));
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out, bool color) const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) {
    widths[i] = DisplayWidth(headers_[i]);
    for (const auto& row : rows_) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i].text));
    }
  }
  auto line = [&](const std::vector<Cell>& cells) {
    std::ostringstream buf;
    for (size_t i = 0; i < cells.size(); ++i) {
      bool last = i + 1 == cells.size();
      PrintPadded(buf, cells[i], last ? 0 : widths[i], color);
      if (!last) buf << "   ";
    }
    // Empty trailing cells would leave blanks at the end of the line.
    std::string text = buf.str();
    text.erase(text.find_last_not_of(' ') + 1);
    out << text << "\n";
  };
  std::vector<Cell> header(headers_.begin(), headers_.end());
  line(header);
  for (const auto& row : rows_) line(row);
}

Fields& Fields::Add(std::string key, Cell value) {
  lines_.emplace_back(std::move(key), std::move(value));
  return *this;
}

void Fields::Print(std::ostream& out, bool color) const {
  size_t width = 0;
  for (const auto& [key, value] : lines_) {
    width = std::max(width, DisplayWidth(key) + 1);
  }
  for (const auto& [key, value] : lines_) {
    out << std::string(indent_, ' ') << key << ":";
    if (!value.text.empty()) {
      out << std::string(width - DisplayWidth(key), ' ')
          << Paint(value.text, value.color, color);
    }
    out << "\n";
  }
}

std::string Paint(absl::string_view text, Color color, bool enabled) {
  if (!enabled || color == Color::kNone || text.empty()) {
    return std::string(text);
  }
  return absl::StrCat(Escape(color), text, "\033[0m");
}

size_t DisplayWidth(absl::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++n;  // count lead bytes, not continuations
  }
  return n;
}

std::string Ago(absl::Time t, absl::Time now) {
  if (t == absl::InfinitePast() || t == absl::UnixEpoch()) return "Never";
  absl::Duration d = now - t;
  if (d < absl::ZeroDuration() && -d < absl::Minutes(1)) return "0s ago";
  bool future = d < absl::ZeroDuration();
  std::string span = Span(future ? -d : d);
  return future ? absl::StrCat("in ", span) : absl::StrCat(span, " ago");
}

std::string Ago(const google::protobuf::Timestamp& ts, absl::Time now) {
  if (!IsSet(ts)) return "Never";
  return Ago(FromTimestamp(ts), now);
}

std::string Absolute(const google::protobuf::Timestamp& ts) {
  if (!IsSet(ts)) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromTimestamp(ts),
                          absl::UTCTimeZone());
}

std::string When(const google::protobuf::Timestamp& ts, absl::Time now,
                 absl::string_view unset) {
  if (!IsSet(ts)) return std::string(unset);
  return absl::StrCat(Ago(ts, now), " (", Absolute(ts), ")");
}

std::string Title(NodeStatus s) { return Capitalize(ShortName(s)); }
std::string Title(HealthStatus s) { return Capitalize(ShortName(s)); }
std::string Title(InstanceState s) { return Capitalize(ShortName(s)); }

Color ColorOf(NodeStatus s) {
  switch (s) {
    case NODE_STATUS_ACTIVE:
      return Color::kGreen;
    case NODE_STATUS_CORDONED:
    case NODE_STATUS_DRAINING:
      return Color::kYellow;
    case NODE_STATUS_UNHEALTHY:
      return Color::kRed;
    case NODE_STATUS_TERMINATED:
      return Color::kDim;
    default:
      return Color::kNone;
  }
}

Color ColorOf(HealthStatus s) {
  switch (s) {
    case HEALTH_STATUS_HEALTHY:
      return Color::kGreen;
    case HEALTH_STATUS_DEGRADED:
      return Color::kYellow;
    case HEALTH_STATUS_UNHEALTHY:
      return Color::kRed;
    default:
      return Color::kNone;
  }
}

Color ColorOf(InstanceState s) {
  switch (s) {
    case INSTANCE_STATE_RUNNING:
      return Color::kGreen;
    case INSTANCE_STATE_PROVISIONING:
    case INSTANCE_STATE_PENDING_REGISTRATION:
    case INSTANCE_STATE_TERMINATING:
      return Color::kYellow;
    case INSTANCE_STATE_FAILED:
      return Color::kRed;
    case INSTANCE_STATE_TERMINATED:
      return Color::kDim;
    default:
      return Color::kNone;
  }
}

std::string Bytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int unit = -1;
  while (v >= 1024 && unit + 1 < 5) {
    v /= 1024;
    ++unit;
  }
  return absl::StrCat(Trim(absl::StrFormat("%.1f", v)), " ", kUnits[unit]);
}

std::string Percent(double p) {
  return absl::StrCat(Trim(absl::StrFormat("%.1f", p)), "%");
}

}  // namespace navarch::cli
