#include "navarch/controlplane/pool_metrics.h"

#include <functional>
#include <vector>

namespace navarch {
namespace {

struct PoolGauge {
  const char* name;
  const char* help;
  std::function<double(const PoolStatus&)> value;
};

}  // namespace

void AddPoolMetrics(MetricsRegistry& registry, PoolManager& pools) {
  registry.AddCollector([&pools](MetricWriter& w) {
    static const std::vector<PoolGauge> kGauges = {
        {"navarch_pool_nodes",
         "Nodes of the pool: live nodes plus provisioned instances not "
         "registered yet.",
         [](const PoolStatus& s) { return s.current_nodes; }},
        {"navarch_pool_target_nodes", "The size the pool is driven towards.",
         [](const PoolStatus& s) { return s.target_nodes; }},
        {"navarch_pool_min_nodes", "The pool's lower limit.",
         [](const PoolStatus& s) { return s.min_nodes; }},
        {"navarch_pool_max_nodes", "The pool's upper limit.",
         [](const PoolStatus& s) { return s.max_nodes; }},
        {"navarch_pool_healthy_nodes", "Healthy nodes of the pool.",
         [](const PoolStatus& s) { return s.healthy_nodes; }},
        {"navarch_pool_unhealthy_nodes", "Unhealthy nodes of the pool.",
         [](const PoolStatus& s) { return s.unhealthy_nodes; }},
        {"navarch_pool_pending_instances",
         "Instances provisioned for the pool whose node has not registered.",
         [](const PoolStatus& s) { return s.pending_instances; }},
        {"navarch_pool_replacing_nodes", "Nodes being replaced.",
         [](const PoolStatus& s) { return s.replacing; }},
        {"navarch_pool_breaker_open",
         "1 while automatic replacement is stopped because too much of the "
         "pool is unhealthy.",
         [](const PoolStatus& s) { return s.breaker_open ? 1 : 0; }},
    };
    const std::vector<PoolStatus> status = pools.ListPools();
    for (const PoolGauge& g : kGauges) {
      w.Family(g.name, g.help, MetricType::kGauge, {"pool"});
      for (const PoolStatus& s : status) w.Sample({s.name}, g.value(s));
    }
    w.Family("navarch_pool_metrics_source_up",
             "1 when the pool's external metrics source answered at its last "
             "fetch; only pools with one.",
             MetricType::kGauge, {"pool", "source"});
    for (const PoolStatus& s : status) {
      if (s.metrics_source.empty()) continue;
      w.Sample({s.name, s.metrics_source}, s.metrics_source_up ? 1 : 0);
    }
    w.Family("navarch_provider_backoff_seconds",
             "Seconds a pool keeps away from a provider, region (\"*\": all "
             "of them) or zone (\"\": all of the region) after capacity or "
             "invalid-request errors, as of the pool's last tick.",
             MetricType::kGauge, {"pool", "provider", "region", "zone"});
    for (const PoolStatus& s : status) {
      for (const ProviderSelector::BackoffEntry& b : s.provider_backoffs) {
        w.Sample({s.name, b.provider, b.region, b.zone},
                 absl::ToDoubleSeconds(b.left));
      }
    }
    const PoolCounters c = pools.counters();
    WriteSplitCounter(w, "navarch_pool_scaling_actions_total",
                      "Scaling actions carried out, by direction (up, down).",
                      {"pool", "direction"}, c.scaling_actions);
    WriteSplitCounter(w, "navarch_provider_calls_total",
                      "Calls to providers by operation (provision, terminate, "
                      "list) and outcome code (ok, resource_exhausted, ...).",
                      {"provider", "operation", "code"}, c.provider_calls);
    WriteSplitCounter(w, "navarch_pool_replacements_total",
                      "Replacements of unhealthy nodes by stage: started, "
                      "provisioned (the new instance), completed (the old "
                      "node terminated).",
                      {"pool", "outcome"}, c.replacements);
    WriteSplitCounter(w, "navarch_pool_metrics_source_errors_total",
                      "Failed fetches of the pool's external metrics source.",
                      {"pool"}, c.metrics_source_errors);
    WriteSplitCounter(w, "navarch_instances_reconciled_total",
                      "What start-up reconciliation found, by kind (adopted, "
                      "unknown_terminated, unknown_reported, vanished, "
                      "terminated_again).",
                      {"kind"}, c.reconciled);
  });
}

}  // namespace navarch
