#include "navarch/api/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace navarch {
namespace {

std::string Strip(const std::string& full, absl::string_view prefix) {
  std::string s = full;
  if (absl::StartsWith(s, prefix)) s = s.substr(prefix.size());
  return absl::AsciiStrToLower(s);
}

template <typename Enum, typename Descriptor, typename Parse>
absl::StatusOr<Enum> ParseEnum(absl::string_view name, absl::string_view prefix,
                               const Descriptor* desc, Parse parse,
                               absl::string_view what) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, prefix)) upper = absl::StrCat(prefix, upper);
  Enum value;
  if (parse(upper, &value) && static_cast<int>(value) != 0) return value;
  std::string valid;
  for (int i = 1; i < desc->value_count(); ++i) {
    absl::StrAppend(&valid, i > 1 ? ", " : "",
                    Strip(desc->value(i)->name(), prefix));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " \"", name, "\" (valid: ", valid, ")"));
}

}  // namespace

std::string ShortName(NodeStatus s) {
  return Strip(NodeStatus_Name(s), "NODE_STATUS_");
}
std::string ShortName(HealthStatus s) {
  return Strip(HealthStatus_Name(s), "HEALTH_STATUS_");
}
std::string ShortName(NodeCommandType t) {
  return Strip(NodeCommandType_Name(t), "NODE_COMMAND_TYPE_");
}
std::string ShortName(InstanceState s) {
  return Strip(InstanceState_Name(s), "INSTANCE_STATE_");
}

std::string PolicyName(HealthEventType t) {
  if (t == HEALTH_EVENT_TYPE_UNKNOWN) return "";
  return Strip(HealthEventType_Name(t), "HEALTH_EVENT_TYPE_");
}

std::string PolicyName(HealthWatchSystem s) {
  if (s == HEALTH_WATCH_SYSTEM_UNKNOWN) return "";
  return absl::StrCat(
      "DCGM_HEALTH_WATCH_",
      HealthWatchSystem_Name(s).substr(sizeof("HEALTH_WATCH_SYSTEM_") - 1));
}

absl::StatusOr<NodeStatus> ParseNodeStatus(absl::string_view name) {
  return ParseEnum<NodeStatus>(
      name, "NODE_STATUS_", NodeStatus_descriptor(),
      [](const std::string& n, NodeStatus* v) {
        return NodeStatus_Parse(n, v);
      },
      "node status");
}

absl::StatusOr<NodeCommandType> ParseCommandType(absl::string_view name) {
  return ParseEnum<NodeCommandType>(
      name, "NODE_COMMAND_TYPE_", NodeCommandType_descriptor(),
      [](const std::string& n, NodeCommandType* v) {
        return NodeCommandType_Parse(n, v);
      },
      "command type");
}

HealthStatus WorseHealth(HealthStatus a, HealthStatus b) {
  return a >= b ? a : b;
}

}  // namespace navarch
