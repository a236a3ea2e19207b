#include "navarch/health/evaluator.h"

#include "absl/strings/str_cat.h"
#include "navarch/api/names.h"

namespace navarch {
namespace {

int Rank(HealthStatus s) {
  switch (s) {
    case HEALTH_STATUS_UNHEALTHY:
      return 3;
    case HEALTH_STATUS_DEGRADED:
      return 2;
    default:
      return 1;  // HEALTHY; UNKNOWN counts as healthy, as upstream
  }
}

// Raises `*status` to `s` if worse, recording what decided it.
bool Raise(HealthStatus s, HealthStatus* status, std::string* by,
           std::string* msg, const std::string& what,
           const std::string& message) {
  if (Rank(s) <= Rank(*status)) return false;
  *status = s;
  *by = what;
  *msg = message;
  return true;
}

}  // namespace

PolicyEvaluator::PolicyEvaluator(std::shared_ptr<const Policy> policy)
    : policy_(std::move(policy)) {}

void PolicyEvaluator::SetPolicy(std::shared_ptr<const Policy> policy) {
  absl::MutexLock lock(&mu_);
  policy_ = std::move(policy);
}

std::shared_ptr<const Policy> PolicyEvaluator::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

std::string PolicyEvaluator::Name() const {
  auto p = policy();
  return absl::StrCat("policy:", p->name().empty() ? p->source() : p->name());
}

HealthEvaluation PolicyEvaluator::Evaluate(
    const NodeInfo& node, const ReportHealthRequest& report) const {
  std::shared_ptr<const Policy> policy = this->policy();
  HealthEvaluation out;
  out.message = "all checks passed";
  for (const auto& r : report.results()) {
    std::string msg =
        absl::StrCat("check ", r.check_name(), " is ", ShortName(r.status()),
                     r.message().empty() ? "" : ": ", r.message());
    Raise(r.status(), &out.check_status, &out.check_decided_by,
          &out.check_message, absl::StrCat("check:", r.check_name()), msg);
  }
  for (int i = 0; i < report.events_size(); ++i) {
    const HealthEvent& e = report.events(i);
    RuleMatch match = policy->Match(EventToCel(e));
    for (auto& [rule, error] : match.errors)
      out.errors.push_back({i, rule, error});
    EventVerdict v;
    v.event_index = i;
    if (match.rule != nullptr) {
      v.rule = match.rule->name;
      v.status = match.rule->result;
    }
    std::string type = PolicyName(e.event_type());
    std::string msg = absl::StrCat(
        "rule ", v.rule.empty() ? "(none)" : v.rule, " matched ",
        type.empty() ? "an" : absl::StrCat("a ", type), " event on ",
        e.gpu_index() < 0 ? std::string("the node")
                          : absl::StrCat("GPU ", e.gpu_index()));
    if (auto x = e.metrics().find("xid_code"); x != e.metrics().end()) {
      absl::StrAppend(&msg, " (XID ", x->second, ")");
    }
    if (!e.message().empty()) absl::StrAppend(&msg, ": ", e.message());
    Raise(v.status, &out.event_status, &out.event_decided_by,
          &out.event_message, absl::StrCat("rule:", v.rule), msg);
    out.verdicts.push_back(std::move(v));
  }
  // Overall: the worse of the two; events win ties (they carry the evidence).
  out.status = HEALTH_STATUS_HEALTHY;
  Raise(out.event_status, &out.status, &out.decided_by, &out.message,
        out.event_decided_by, out.event_message);
  Raise(out.check_status, &out.status, &out.decided_by, &out.message,
        out.check_decided_by, out.check_message);
  return out;
}

}  // namespace navarch
