// Human output of the navarch CLI: aligned tables, "Key: value" blocks,
// relative times and status words. Pure functions of their inputs (the time
// "now" is passed in), so tests need no clock and no terminal.
#ifndef NAVARCH_CLI_FORMAT_H_
#define NAVARCH_CLI_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"
#include "navarch/control_plane.pb.h"

namespace navarch::cli {

enum class Color { kNone, kGreen, kYellow, kRed, kDim };

// One table cell: its text and how to paint it on a terminal.
struct Cell {
  Cell(std::string t) : text(std::move(t)) {}  // NOLINT: cells are strings
  Cell(const char* t) : text(t) {}             // NOLINT
  Cell(std::string t, Color c) : text(std::move(t)), color(c) {}
  std::string text;
  Color color = Color::kNone;
};

// Columns separated by three spaces and padded to the widest cell, measured in
// characters (not bytes, not escape codes); the last column is not padded so
// lines carry no trailing blanks. The header is printed as given.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<Cell> cells);
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out, bool color) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<Cell>> rows_;
};

// "Key: value" lines with the values aligned, as upstream's `navarch get`
// prints them; `indent` spaces before each key.
class Fields {
 public:
  explicit Fields(int indent = 0) : indent_(indent) {}
  Fields& Add(std::string key, Cell value);
  void Print(std::ostream& out, bool color) const;

 private:
  int indent_;
  std::vector<std::pair<std::string, Cell>> lines_;
};

// Wraps `text` in the ANSI sequence for `color` (only when `enabled`).
std::string Paint(absl::string_view text, Color color, bool enabled);

// Display width of UTF-8 text: code points, which is right for the Latin
// names and the °/µ signs we print.
size_t DisplayWidth(absl::string_view text);

// Upstream's relative times: "Never" for an unset time, "12s ago" under a
// minute, then "3m ago", "5h ago", "2d ago". A time slightly ahead of `now`
// (clock skew between client and server) reads "0s ago"; one far ahead reads
// "in 5m".
std::string Ago(absl::Time t, absl::Time now);
std::string Ago(const google::protobuf::Timestamp& ts, absl::Time now);

// "2026-01-19T14:00:00Z" (UTC, whole seconds), or "" for an unset time.
std::string Absolute(const google::protobuf::Timestamp& ts);

// Both, for detail views: "12s ago (2026-01-19T14:00:00Z)"; `unset` for an
// unset time.
std::string When(const google::protobuf::Timestamp& ts, absl::Time now,
                 absl::string_view unset = "Never");

// Upstream's status words: "Active", "Cordoned", ...; "Healthy", ...
std::string Title(NodeStatus s);
std::string Title(HealthStatus s);
std::string Title(InstanceState s);
Color ColorOf(NodeStatus s);
Color ColorOf(HealthStatus s);
Color ColorOf(InstanceState s);

// 85899345920 -> "80 GiB"; 1610612736 -> "1.5 GiB"; 512 -> "512 B".
std::string Bytes(int64_t bytes);
// 12.5 -> "12.5%"; 40 -> "40%".
std::string Percent(double p);

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_FORMAT_H_
