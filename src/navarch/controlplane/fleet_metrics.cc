#include "navarch/controlplane/fleet_metrics.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "navarch/api/names.h"

namespace navarch {
namespace {

void Counter(MetricWriter& w, const char* name, const char* help,
             int64_t value) {
  w.Family(name, help, MetricType::kCounter, {});
  w.Sample({}, static_cast<double>(value));
}

// Upstream's gauge values for navarch_node_health_status.
double HealthValue(HealthStatus s) {
  switch (s) {
    case HEALTH_STATUS_HEALTHY:
      return 1.0;
    case HEALTH_STATUS_DEGRADED:
      return 0.5;
    default:
      return 0.0;
  }
}

void CollectNodes(MetricWriter& w, FleetService& fleet) {
  // Summaries, not ListNodes: a scrape of 100,000 nodes must not rebuild
  // every node's GPU inventory.
  const std::vector<NodeSummary> nodes = fleet.ListNodeSummaries();
  // Every status is present, zero or not, so that an alert on
  // navarch_nodes_total{status="unhealthy"} > 0 never sees "no data".
  std::map<std::string, int64_t> by_status;
  for (NodeStatus s :
       {NODE_STATUS_ACTIVE, NODE_STATUS_CORDONED, NODE_STATUS_DRAINING,
        NODE_STATUS_UNHEALTHY, NODE_STATUS_TERMINATED}) {
    by_status[ShortName(s)] = 0;
  }
  std::map<std::string, int64_t> gpus_by_provider;
  for (const NodeSummary& n : nodes) {
    ++by_status[ShortName(n.status)];
    // A terminated node's GPUs are gone; its health is history.
    if (n.status == NODE_STATUS_TERMINATED) continue;
    gpus_by_provider[n.provider.empty() ? "unknown" : n.provider] +=
        n.gpu_count;
  }
  // Upstream's names end in _total although they are gauges; promtool
  // rejects a gauge named so, and "untyped" keeps the names (and every query
  // on them) unchanged.
  w.Family("navarch_nodes_total", "Nodes by node status.", MetricType::kUntyped,
           {"status"});
  for (const auto& [status, count] : by_status) {
    w.Sample({status}, static_cast<double>(count));
  }
  w.Family("navarch_gpus_total",
           "GPUs of nodes that are not terminated, by provider.",
           MetricType::kUntyped, {"provider"});
  for (const auto& [provider, count] : gpus_by_provider) {
    w.Sample({provider}, static_cast<double>(count));
  }
  w.Family("navarch_node_health_status",
           "Health of each node that is not terminated: 1 healthy, 0.5 "
           "degraded, 0 unhealthy or unknown; the status label names it.",
           MetricType::kGauge, {"node_id", "status"});
  for (const NodeSummary& n : nodes) {
    if (n.status == NODE_STATUS_TERMINATED) continue;
    w.Sample({n.node_id, ShortName(n.health_status)},
             HealthValue(n.health_status));
  }
}

void CollectStats(MetricWriter& w, FleetService& fleet) {
  const FleetStats s = fleet.stats();
  Counter(w, "navarch_heartbeats_received_total",
          "Heartbeats accepted from node agents.", s.heartbeats);
  Counter(w, "navarch_health_reports_total",
          "Health reports accepted from node agents.", s.health_reports);
  WriteSplitCounter(
      w, "navarch_health_events_total",
      "Hardware health events reported by agents, by event type and "
      "XID code (empty for events that are not XIDs).",
      {"type", "xid"}, s.health_events);
  WriteSplitCounter(w, "navarch_policy_rule_matches_total",
                    "Health events decided by each policy rule (first match).",
                    {"rule"}, s.rule_matches);
  WriteSplitCounter(w, "navarch_policy_rule_errors_total",
                    "Policy rule evaluations that failed, by rule.", {"rule"},
                    s.rule_errors);
  WriteSplitCounter(w, "navarch_commands_issued_total",
                    "Commands issued to nodes, by command type.", {"type"},
                    s.commands_issued);
  WriteSplitCounter(
      w, "navarch_command_outcomes_total",
      "Command deliveries and results, by command type and outcome "
      "(delivered, succeeded, failed, cancelled).",
      {"type", "outcome"}, s.command_outcomes);
  WriteSplitCounter(w, "navarch_node_status_changes_total",
                    "Node status transitions, by old and new status.",
                    {"from", "to"}, s.status_changes);
  Counter(w, "navarch_store_commit_failures_total",
          "Changes the store failed to commit (the callers saw an error).",
          s.commit_failures);
}

}  // namespace

void AddFleetMetrics(MetricsRegistry& registry, FleetService& fleet) {
  registry.AddCollector([&fleet](MetricWriter& w) {
    CollectNodes(w, fleet);
    CollectStats(w, fleet);
  });
}

}  // namespace navarch
