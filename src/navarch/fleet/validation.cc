#include "navarch/fleet/validation.h"

#include "absl/strings/str_cat.h"
#include "navarch/base/ids.h"
#include "navarch/base/status.h"

namespace navarch {
namespace {

absl::Status Short(absl::string_view what, const std::string& s) {
  return ValidateText(what, s, kMaxShortString);
}

absl::Status Map(absl::string_view what,
                 const google::protobuf::Map<std::string, std::string>& m,
                 size_t max_value) {
  if (m.size() > static_cast<size_t>(kMaxMapEntries)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", m.size(), " entries; the limit is ", kMaxMapEntries));
  }
  for (const auto& [k, v] : m) {
    if (k.empty())
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has an empty key"));
    // The names for the message only when there is one to write: a report
    // carries a few maps, and most requests are valid.
    if (!ValidateText("", k, kMaxShortString).ok())
      return ValidateText(absl::StrCat(what, " key"), k, kMaxShortString);
    if (!ValidateText("", v, max_value).ok())
      return ValidateText(absl::StrCat(what, "[", k, "]"), v, max_value);
  }
  return absl::OkStatus();
}

absl::Status Count(absl::string_view what, int n, int max) {
  if (n <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("too many ", what, ": ", n, " (the limit is ", max, ")"));
}

}  // namespace

absl::Status ValidateRegister(const RegisterNodeRequest& r) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", r.node_id()));
  NAVARCH_RETURN_IF_ERROR(Short("provider", r.provider()));
  NAVARCH_RETURN_IF_ERROR(Short("region", r.region()));
  NAVARCH_RETURN_IF_ERROR(Short("zone", r.zone()));
  NAVARCH_RETURN_IF_ERROR(Short("instance_type", r.instance_type()));
  NAVARCH_RETURN_IF_ERROR(Count("gpus", r.gpus_size(), kMaxGpusPerNode));
  for (const auto& g : r.gpus()) {
    if (g.index() < 0 || g.index() >= kMaxGpusPerNode) {
      return absl::InvalidArgumentError(absl::StrCat("gpu index ", g.index(),
                                                     " is out of range 0..",
                                                     kMaxGpusPerNode - 1));
    }
    if (g.memory_total() < 0)
      return absl::InvalidArgumentError("gpu memory_total is negative");
    for (const auto* s : {&g.uuid(), &g.name(), &g.pci_bus_id(),
                          &g.driver_version(), &g.cuda_version()}) {
      NAVARCH_RETURN_IF_ERROR(Short("gpu field", *s));
    }
  }
  const auto& m = r.metadata();
  for (const auto* s : {&m.hostname(), &m.internal_ip(), &m.external_ip(),
                        &m.kernel_version()}) {
    NAVARCH_RETURN_IF_ERROR(Short("metadata field", *s));
  }
  return Map("metadata.labels", m.labels(), kMaxShortString);
}

absl::Status ValidateHeartbeat(const HeartbeatRequest& r) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", r.node_id()));
  NAVARCH_RETURN_IF_ERROR(
      Count("gpu_metrics", r.metrics().gpu_metrics_size(), kMaxGpusPerNode));
  return absl::OkStatus();
}

absl::Status ValidateReportHealth(const ReportHealthRequest& r) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", r.node_id()));
  NAVARCH_RETURN_IF_ERROR(
      Count("results", r.results_size(), kMaxResultsPerReport));
  NAVARCH_RETURN_IF_ERROR(
      Count("events", r.events_size(), kMaxEventsPerReport));
  for (const auto& res : r.results()) {
    NAVARCH_RETURN_IF_ERROR(Short("check_name", res.check_name()));
    NAVARCH_RETURN_IF_ERROR(
        ValidateText("result message", res.message(), kMaxLongString));
    NAVARCH_RETURN_IF_ERROR(
        Map("result details", res.details(), kMaxLongString));
    if (!HealthStatus_IsValid(res.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown health status ", res.status()));
    }
  }
  for (const auto& e : r.events()) {
    if (!HealthEventType_IsValid(e.event_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown event_type ", e.event_type()));
    }
    if (!HealthWatchSystem_IsValid(e.system())) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown system ", e.system()));
    }
    if (e.gpu_index() < -1 || e.gpu_index() >= kMaxGpusPerNode) {
      return absl::InvalidArgumentError(
          absl::StrCat("event gpu_index ", e.gpu_index(),
                       " is out of range -1..", kMaxGpusPerNode - 1));
    }
    NAVARCH_RETURN_IF_ERROR(Short("gpu_uuid", e.gpu_uuid()));
    NAVARCH_RETURN_IF_ERROR(
        ValidateText("event message", e.message(), kMaxLongString));
    NAVARCH_RETURN_IF_ERROR(Map("event metrics", e.metrics(), kMaxShortString));
  }
  return absl::OkStatus();
}

absl::Status ValidateIssueCommand(const IssueCommandRequest& r) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", r.node_id()));
  if (r.command_type() == NODE_COMMAND_TYPE_UNKNOWN) {
    return absl::InvalidArgumentError("command_type is required");
  }
  if (!NodeCommandType_IsValid(r.command_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command_type ", r.command_type()));
  }
  return Map("parameters", r.parameters(), kMaxLongString);
}

absl::Status ValidateAckCommand(const AckCommandRequest& r) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", r.node_id()));
  NAVARCH_RETURN_IF_ERROR(ValidateId("command_id", r.command_id()));
  if (r.outcome() != COMMAND_OUTCOME_SUCCEEDED &&
      r.outcome() != COMMAND_OUTCOME_FAILED) {
    return absl::InvalidArgumentError("outcome must be SUCCEEDED or FAILED");
  }
  return ValidateText("message", r.message(), kMaxLongString);
}

}  // namespace navarch
