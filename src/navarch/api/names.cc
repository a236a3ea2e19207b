#include "navarch/api/names.h"

#include <string>
#include <vector>

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

// The names of an enum's values 0..`max`, computed once: ShortName and
// PolicyName run several times on every health report. Values outside the
// table (unknown ones from a newer peer) get the slow path.
template <typename Enum, typename Make>
std::string Named(Enum v, int max, Make make) {
  static const std::vector<std::string>* const table = [&] {
    auto* t = new std::vector<std::string>();
    for (int i = 0; i <= max; ++i) t->push_back(make(static_cast<Enum>(i)));
    return t;
  }();
  const int i = static_cast<int>(v);
  return i >= 0 && i <= max ? (*table)[i] : make(v);
}

}  // namespace

std::string ShortName(NodeStatus s) {
  return Named(s, NodeStatus_MAX, [](NodeStatus v) {
    return Strip(NodeStatus_Name(v), "NODE_STATUS_");
  });
}
std::string ShortName(HealthStatus s) {
  return Named(s, HealthStatus_MAX, [](HealthStatus v) {
    return Strip(HealthStatus_Name(v), "HEALTH_STATUS_");
  });
}
std::string ShortName(NodeCommandType t) {
  return Named(t, NodeCommandType_MAX, [](NodeCommandType v) {
    return Strip(NodeCommandType_Name(v), "NODE_COMMAND_TYPE_");
  });
}
std::string ShortName(InstanceState s) {
  return Named(s, InstanceState_MAX, [](InstanceState v) {
    return Strip(InstanceState_Name(v), "INSTANCE_STATE_");
  });
}

std::string PolicyName(HealthEventType t) {
  return Named(t, HealthEventType_MAX, [](HealthEventType v) -> std::string {
    if (v == HEALTH_EVENT_TYPE_UNKNOWN) return "";
    return Strip(HealthEventType_Name(v), "HEALTH_EVENT_TYPE_");
  });
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
