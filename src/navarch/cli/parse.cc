#include "navarch/cli/parse.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "navarch/api/names.h"
#include "navarch/base/duration.h"

namespace navarch::cli {
namespace {

// Looks `name` up in `desc`, with or without `prefix`, ignoring case. The
// error lists the short names.
absl::StatusOr<int> ParseEnum(absl::string_view name, absl::string_view prefix,
                              const google::protobuf::EnumDescriptor* desc,
                              absl::string_view what) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, prefix)) upper = absl::StrCat(prefix, upper);
  if (const auto* v = desc->FindValueByName(upper); v != nullptr) {
    return v->number();
  }
  std::vector<std::string> valid;
  for (int i = 0; i < desc->value_count(); ++i) {
    valid.push_back(
        absl::AsciiStrToLower(desc->value(i)->name().substr(prefix.size())));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " \"", name,
                   "\" (valid: ", absl::StrJoin(valid, ", "), ")"));
}

}  // namespace

absl::StatusOr<HealthStatus> ParseHealthStatus(absl::string_view name) {
  auto v = ParseEnum(name, "HEALTH_STATUS_", HealthStatus_descriptor(),
                     "health status");
  if (!v.ok()) return v.status();
  return static_cast<HealthStatus>(*v);
}

absl::StatusOr<InstanceState> ParseInstanceState(absl::string_view name) {
  auto v = ParseEnum(name, "INSTANCE_STATE_", InstanceState_descriptor(),
                     "instance state");
  if (!v.ok()) return v.status();
  return static_cast<InstanceState>(*v);
}

absl::StatusOr<std::optional<NodeStatus>> ParseStatusFilter(
    absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (upper == "UNKNOWN" || upper == "NODE_STATUS_UNKNOWN") {
    return std::optional<NodeStatus>();
  }
  auto s = ParseNodeStatus(name);
  if (!s.ok()) return s.status();
  return std::optional<NodeStatus>(*s);
}

absl::StatusOr<LabelSelector> ParseLabelSelector(absl::string_view text) {
  LabelSelector sel;
  size_t eq = text.find('=');
  sel.key = std::string(text.substr(0, eq));
  if (eq != absl::string_view::npos) {
    sel.value = std::string(text.substr(eq + 1));
  }
  if (sel.key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid label selector \"", text, "\" (want key=value or key)"));
  }
  return sel;
}

bool Matches(const LabelSelector& selector,
             const google::protobuf::Map<std::string, std::string>& labels) {
  auto it = labels.find(selector.key);
  if (it == labels.end()) return false;
  return !selector.value.has_value() || it->second == *selector.value;
}

absl::StatusOr<absl::Time> ParseSince(absl::string_view text, absl::Time now) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  auto d = ParseGoDuration(text);
  if (d.ok() && *d >= absl::ZeroDuration()) return now - *d;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid time \"", text,
                   "\" (want a duration back from now such as 90s or 1h30m, "
                   "or an RFC 3339 time such as 2026-01-19T14:00:00Z)"));
}

absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text) {
  auto d = ParseGoDuration(text);
  if (!d.ok() || *d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid timeout \"", text,
                     "\" (want a positive duration such as 30s)"));
  }
  return *d;
}

}  // namespace navarch::cli
