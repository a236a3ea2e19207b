// How the control plane decides what a node's health report means.
//
// The fleet core calls a HealthEvaluator for every ReportHealth.
// PolicyEvaluator applies a CEL health policy (policy.h) to the report's
// hardware events and combines the verdicts with the check results.
#ifndef NAVARCH_HEALTH_EVALUATOR_H_
#define NAVARCH_HEALTH_EVALUATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/control_plane.pb.h"
#include "navarch/health/policy.h"

namespace navarch {

// The verdict for one hardware event.
struct EventVerdict {
  int event_index = -1;  // index into the report's events
  std::string rule;      // the first rule that matched ("" if none)
  HealthStatus status = HEALTH_STATUS_HEALTHY;
};

// A rule that failed while evaluating an event (it counted as no match).
struct RuleError {
  int event_index = -1;
  std::string rule;
  std::string message;
};

struct HealthEvaluation {
  // Worst of the check results and the event verdicts: the health status the
  // node shows now.
  HealthStatus status = HEALTH_STATUS_HEALTHY;
  // Events are evidence: an UNHEALTHY verdict takes the node out at once.
  HealthStatus event_status = HEALTH_STATUS_HEALTHY;
  // Checks are measurements: UNHEALTHY counts towards `unhealthy_after`.
  HealthStatus check_status = HEALTH_STATUS_HEALTHY;
  // What decided `status`: "rule:<name>" or "check:<name>" (the first to
  // reach the worst level), for the event log and `navarch explain`.
  std::string decided_by;
  std::string message;
  // What decided `event_status` and `check_status`, in the same form.
  std::string event_decided_by, event_message;
  std::string check_decided_by, check_message;
  std::vector<EventVerdict> verdicts;  // one per event, in report order
  std::vector<RuleError> errors;
};

class HealthEvaluator {
 public:
  virtual ~HealthEvaluator() = default;
  // Pure function of its inputs and the current policy. Thread-safe.
  virtual HealthEvaluation Evaluate(
      const NodeInfo& node, const ReportHealthRequest& report) const = 0;
  virtual std::string Name() const = 0;
};

// Applies a health policy: per event, the first matching rule decides (no
// match counts as healthy); across events and checks, the worst wins. Check
// results count as their status (UNKNOWN as healthy).
class PolicyEvaluator final : public HealthEvaluator {
 public:
  explicit PolicyEvaluator(
      std::shared_ptr<const Policy> policy = Policy::Default());

  HealthEvaluation Evaluate(const NodeInfo& node,
                            const ReportHealthRequest& report) const override;
  std::string Name() const override;

  // Replaces the policy atomically (SIGHUP reload): evaluations already
  // running finish with the old one. Thread-safe.
  void SetPolicy(std::shared_ptr<const Policy> policy);
  std::shared_ptr<const Policy> policy() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Policy> policy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch

#endif  // NAVARCH_HEALTH_EVALUATOR_H_
