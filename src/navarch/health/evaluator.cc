#include "navarch/health/evaluator.h"

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "navarch/api/names.h"

namespace navarch {
namespace {

std::optional<double> Metric(const HealthEvent& e, const std::string& key) {
  auto it = e.metrics().find(key);
  if (it == e.metrics().end()) return std::nullopt;
  double v;
  if (!absl::SimpleAtod(it->second, &v)) return std::nullopt;
  return v;
}

int Rank(HealthStatus s) {
  switch (s) {
    case HEALTH_STATUS_UNHEALTHY:
      return 3;
    case HEALTH_STATUS_DEGRADED:
      return 2;
    case HEALTH_STATUS_HEALTHY:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

const std::vector<int>& DefaultFatalXids() {
  static const auto* xids =
      new std::vector<int>{13, 31, 32, 43, 45, 48, 61, 62,  63,  64,
                           68, 69, 74, 79, 92, 94, 95, 100, 119, 120};
  return *xids;
}

EventVerdict BuiltinPolicyEvaluator::Classify(const HealthEvent& e) {
  const std::string type = PolicyName(e.event_type());
  const std::string system = PolicyName(e.system());
  auto verdict = [](const char* rule, HealthStatus s) {
    EventVerdict v;
    v.rule = rule;
    v.status = s;
    return v;
  };
  if (type == "xid") {
    auto code = Metric(e, "xid_code");
    const auto& fatal = DefaultFatalXids();
    if (code && std::find(fatal.begin(), fatal.end(),
                          static_cast<int>(*code)) != fatal.end()) {
      return verdict("fatal-xid", HEALTH_STATUS_UNHEALTHY);
    }
    return verdict("recoverable-xid", HEALTH_STATUS_DEGRADED);
  }
  auto dbe = Metric(e, "ecc_dbe_count");
  if (type == "ecc_dbe" ||
      (system == "DCGM_HEALTH_WATCH_MEM" && dbe && *dbe > 0)) {
    return verdict("ecc-dbe", HEALTH_STATUS_UNHEALTHY);
  }
  auto sbe = Metric(e, "ecc_sbe_count");
  if (type == "ecc_sbe" && sbe && *sbe > 100) {
    return verdict("ecc-sbe-high", HEALTH_STATUS_DEGRADED);
  }
  auto temp = Metric(e, "temperature");
  if (type == "thermal" && temp && *temp >= 95) {
    return verdict("thermal-critical", HEALTH_STATUS_UNHEALTHY);
  }
  if (type == "thermal" && temp && *temp >= 85) {
    return verdict("thermal-warning", HEALTH_STATUS_DEGRADED);
  }
  if (type == "nvlink" || system == "DCGM_HEALTH_WATCH_NVLINK") {
    return verdict("nvlink-error", HEALTH_STATUS_DEGRADED);
  }
  if (type == "pcie" || system == "DCGM_HEALTH_WATCH_PCIE") {
    return verdict("pcie-error", HEALTH_STATUS_DEGRADED);
  }
  if (type == "power" || system == "DCGM_HEALTH_WATCH_POWER") {
    return verdict("power-warning", HEALTH_STATUS_DEGRADED);
  }
  return verdict("default", HEALTH_STATUS_HEALTHY);
}

HealthEvaluation BuiltinPolicyEvaluator::Evaluate(
    const NodeInfo& node, const ReportHealthRequest& report) const {
  HealthEvaluation out;
  out.status = HEALTH_STATUS_HEALTHY;
  out.message = "all checks passed";
  for (const auto& r : report.results()) {
    if (Rank(r.status()) > Rank(out.status)) {
      out.status = r.status();
      out.decided_by = absl::StrCat("check:", r.check_name());
      out.message =
          absl::StrCat("check ", r.check_name(), " is ", ShortName(r.status()),
                       r.message().empty() ? "" : ": ", r.message());
    }
  }
  for (int i = 0; i < report.events_size(); ++i) {
    EventVerdict v = Classify(report.events(i));
    v.event_index = i;
    if (Rank(v.status) > Rank(out.status)) {
      const HealthEvent& e = report.events(i);
      out.status = v.status;
      out.decided_by = absl::StrCat("rule:", v.rule);
      out.message = absl::StrCat("rule ", v.rule, " matched a ",
                                 PolicyName(e.event_type()), " event on GPU ",
                                 e.gpu_index(), e.message().empty() ? "" : ": ",
                                 e.message());
    }
    out.verdicts.push_back(std::move(v));
  }
  return out;
}

}  // namespace navarch
