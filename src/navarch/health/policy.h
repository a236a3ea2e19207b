// Health policies: ordered CEL rules that classify hardware events
// (docs/health.md). File format as upstream (inventory §5.1):
//
//   version: v1
//   metadata: {name: ..., description: ...}
//   rules:
//     - name: fatal-xid
//       description: ...
//       condition: event.event_type == "xid" && event.metrics.xid_code in [48,
//       79] result: unhealthy
//
// Unlike upstream, every rule must compile: a policy with a broken rule is
// rejected whole, naming the file, the rule and the position. Read by the
// shared strict YAML reader (config/yaml_reader.h): unknown keys are errors,
// except under metadata (free-form, as upstream's).
#ifndef NAVARCH_HEALTH_POLICY_H_
#define NAVARCH_HEALTH_POLICY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/cel/program.h"
#include "navarch/cel/value.h"
#include "navarch/control_plane.pb.h"

namespace navarch {

struct PolicyRule {
  std::string name;
  std::string description;
  std::string condition;
  HealthStatus result = HEALTH_STATUS_HEALTHY;
  std::optional<cel::Program> program;  // set once compiled
  int line = 0;  // where the rule starts in its file (1-based; 0 if unknown)
};

// The verdict of a policy on one event.
struct RuleMatch {
  const PolicyRule* rule =
      nullptr;  // nullptr: no rule matched (counts as healthy)
  // Rules that failed while evaluating this event (rule name, error), in
  // order; they counted as no match.
  std::vector<std::pair<std::string, std::string>> errors;
};

class Policy {
 public:
  // Parses and compiles a policy. `filename` is used in error messages.
  static absl::StatusOr<std::shared_ptr<const Policy>> Parse(
      absl::string_view yaml, absl::string_view filename);
  static absl::StatusOr<std::shared_ptr<const Policy>> LoadFile(
      const std::string& path);
  // The built-in default policy (examples/health-policy.yaml, compiled in).
  static std::shared_ptr<const Policy> Default();
  static absl::string_view DefaultYaml();

  const std::string& name() const { return name_; }
  const std::string& source() const {
    return source_;
  }  // file name or "<builtin>"
  const std::vector<PolicyRule>& rules() const { return rules_; }

  // First matching rule for `event` (a CEL map value). A rule whose
  // evaluation fails, or yields a non-bool, does not match. Thread-safe.
  RuleMatch Match(const cel::Value& event) const;

 private:
  std::string name_;
  std::string source_;
  std::vector<PolicyRule> rules_;
};

// The `event` variable for a wire event (inventory §5.2): event_type,
// system, gpu_index, gpu_uuid, message, timestamp (RFC 3339) and metrics,
// whose string values are typed: integers as int, decimals as double,
// true/false as bool, anything else string.
cel::Value EventToCel(const HealthEvent& event);
// The same from JSON (tooling: `navarch policy test`); strings in `metrics`
// are typed as above, numbers kept, and keys the control plane always sets
// get its defaults when absent (event_type "unknown", gpu_index -1, "").
absl::StatusOr<cel::Value> EventJsonToCel(const std::string& json);

// "healthy" | "degraded" | "unhealthy".
absl::StatusOr<HealthStatus> ParsePolicyResult(absl::string_view s);

}  // namespace navarch

#endif  // NAVARCH_HEALTH_POLICY_H_
