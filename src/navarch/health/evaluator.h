// How the control plane decides what a node's health report means.
//
// The fleet core calls a HealthEvaluator for every ReportHealth. The CEL
// policy engine (cel/, its own issue) implements this interface; until it is
// configured, BuiltinPolicyEvaluator applies upstream's default policy.
#ifndef NAVARCH_HEALTH_EVALUATOR_H_
#define NAVARCH_HEALTH_EVALUATOR_H_

#include <string>
#include <vector>

#include "navarch/control_plane.pb.h"

namespace navarch {

// The verdict for one hardware event.
struct EventVerdict {
  int event_index = -1;  // index into the report's events
  std::string rule;      // the first rule that matched ("" if none)
  HealthStatus status = HEALTH_STATUS_HEALTHY;
};

struct HealthEvaluation {
  // Worst of the check results and the event verdicts.
  HealthStatus status = HEALTH_STATUS_HEALTHY;
  // The rule and event that decided `status` (first to reach the worst level),
  // or the failing check's name; for the event log and `navarch explain`.
  std::string decided_by;
  std::string message;
  std::vector<EventVerdict> verdicts;  // one per event, in report order
};

class HealthEvaluator {
 public:
  virtual ~HealthEvaluator() = default;
  // Pure function of its inputs. Thread-safe.
  virtual HealthEvaluation Evaluate(
      const NodeInfo& node, const ReportHealthRequest& report) const = 0;
  virtual std::string Name() const = 0;
};

// Upstream's default policy (inventory §5.4) in C++: fatal XIDs and ECC double
// bit errors are unhealthy, thermal >= 95 °C unhealthy and >= 85 °C degraded,
// other XIDs, frequent single-bit ECC, NVLink, PCIe and power events degraded.
// Check results count as their status (UNKNOWN as healthy).
class BuiltinPolicyEvaluator final : public HealthEvaluator {
 public:
  HealthEvaluation Evaluate(const NodeInfo& node,
                            const ReportHealthRequest& report) const override;
  std::string Name() const override { return "builtin-default"; }

  // The verdict of the default policy for one event.
  static EventVerdict Classify(const HealthEvent& event);
};

// XID codes that upstream's default policy treats as fatal.
const std::vector<int>& DefaultFatalXids();

}  // namespace navarch

#endif  // NAVARCH_HEALTH_EVALUATOR_H_
