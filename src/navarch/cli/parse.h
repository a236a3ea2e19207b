// Parsing of the values operators type into flags: enum names, label
// selectors, "how long ago". Errors name the flag's expectations, so they can
// be shown as usage errors as they are.
#ifndef NAVARCH_CLI_PARSE_H_
#define NAVARCH_CLI_PARSE_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/control_plane.pb.h"

namespace navarch::cli {

// Short or full enum names, any case: "healthy", "HEALTH_STATUS_HEALTHY";
// "running", "INSTANCE_STATE_RUNNING". "unknown" is a value like the others
// (a node that never reported is a thing to look for).
absl::StatusOr<HealthStatus> ParseHealthStatus(absl::string_view name);
absl::StatusOr<InstanceState> ParseInstanceState(absl::string_view name);

// `list --status`: as ParseNodeStatus, except that "unknown" means no filter
// (nullopt), as upstream's CLI has it.
absl::StatusOr<std::optional<NodeStatus>> ParseStatusFilter(
    absl::string_view name);

// `--label key=value` (the label has exactly that value) or `--label key`
// (the label is present). The value is nullopt for the second form.
struct LabelSelector {
  std::string key;
  std::optional<std::string> value;
};
absl::StatusOr<LabelSelector> ParseLabelSelector(absl::string_view text);
bool Matches(const LabelSelector& selector,
             const google::protobuf::Map<std::string, std::string>& labels);

// `--since`: a Go duration back from `now` ("90s", "1h30m") or an RFC 3339
// time ("2026-01-19T14:00:00Z").
absl::StatusOr<absl::Time> ParseSince(absl::string_view text, absl::Time now);

// `--timeout`: a positive Go duration.
absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text);

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_PARSE_H_
