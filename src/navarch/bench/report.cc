#include "navarch/bench/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace navarch::bench {
namespace {

// Three decimals are enough and keep the JSON readable.
double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

nlohmann::json Latency(const LatencyHistogram& h) {
  LatencySummary s = Summarize(h);
  return {{"count", s.count},
          {"p50_ms", Round3(Ms(s.p50))},
          {"p90_ms", Round3(Ms(s.p90))},
          {"p99_ms", Round3(Ms(s.p99))},
          {"p999_ms", Round3(Ms(s.p999))},
          {"max_ms", Round3(Ms(s.max))},
          {"mean_ms", Round3(Ms(s.mean))}};
}

std::string LatencyText(const LatencyHistogram& h) {
  LatencySummary s = Summarize(h);
  return absl::StrFormat(
      "p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms",
      Ms(s.p50), Ms(s.p90), Ms(s.p99), Ms(s.p999), Ms(s.max));
}

}  // namespace

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

nlohmann::json ToJson(const RunResult& r) {
  nlohmann::json j = {
      {"requests", r.requests},
      {"errors", r.errors},
      {"throughput_rps", Round3(r.throughput_rps)},
      {"window_s", Round3(absl::ToDoubleSeconds(r.window))},
      {"max_in_flight", r.max_in_flight},
  };
  nlohmann::json lat = Latency(*r.latency);
  for (auto& [k, v] : lat.items()) {
    if (k != "count") j[k] = v;
  }
  if (r.target_rps > 0) {
    j["target_rps"] = r.target_rps;
    j["unfinished"] = r.unfinished;
  }
  if (r.errors > 0) {
    j["error_codes"] = r.error_codes;
    j["first_error"] = r.first_error;
  }
  return j;
}

nlohmann::json ToJson(const XidResult& r) {
  nlohmann::json j = {
      {"nodes", r.nodes},
      {"reports", ToJson(r.reports)},
      {"decided", r.decided},
      {"decision", Latency(*r.decision)},
      {"provisioned", r.provisioned},
      {"events_read", r.events_read},
  };
  if (r.registration.requests > 0) j["registration"] = ToJson(r.registration);
  j["replacement_started"] = r.started;
  if (r.started > 0) j["replacement_start"] = Latency(*r.replacement_started);
  if (r.provisioned > 0) {
    j["provision"] = Latency(*r.provision);
    j["provision_kind"] = r.provision_kind;
  } else {
    j["provision"] = nullptr;
  }
  // The headline (the target 5): report -> the replacement's
  // provision when the log has them, else report -> decision.
  const char* headline = r.provisioned > 0 ? "provision" : "decision";
  j["headline"] = headline;
  j["p50_ms"] = j[headline]["p50_ms"];
  j["p99_ms"] = j[headline]["p99_ms"];
  return j;
}

nlohmann::json ToJson(const ScaleResult& r) {
  constexpr double kMiB = 1024.0 * 1024.0;
  return {
      {"nodes", r.nodes},
      {"rss_empty_mib", Round3(static_cast<double>(r.rss_empty_bytes) / kMiB)},
      {"rss_registered_mib",
       Round3(static_cast<double>(r.rss_registered_bytes) / kMiB)},
      {"rss_steady_mib",
       Round3(static_cast<double>(r.rss_steady_bytes) / kMiB)},
      {"rss_per_node_bytes", std::round(r.rss_per_node_bytes)},
      {"database_mib", Round3(static_cast<double>(r.database_bytes) / kMiB)},
      {"registration", ToJson(r.registration)},
      {"heartbeats", ToJson(r.heartbeats)},
      {"restart_ready_ms", Round3(Ms(r.restart_ready))},
      {"restart_first_get_ms", Round3(Ms(r.restart_first_get))},
      {"restart_all_listed_ms", Round3(Ms(r.restart_all_listed))},
      {"listed_nodes", r.listed_nodes},
      {"rss_restarted_mib",
       Round3(static_cast<double>(r.rss_restarted_bytes) / kMiB)},
  };
}

std::string ToText(const std::string& title, const RunResult& r) {
  std::string out = absl::StrFormat(
      "%s: %d requests, %d errors in %.2f s: %.0f/s\n  %s\n", title, r.requests,
      r.errors, absl::ToDoubleSeconds(r.window), r.throughput_rps,
      LatencyText(*r.latency));
  if (r.target_rps > 0) {
    absl::StrAppendFormat(&out, "  open loop at %.0f/s; %d unfinished\n",
                          r.target_rps, r.unfinished);
  }
  if (r.errors > 0)
    absl::StrAppend(&out, "  first error: ", r.first_error, "\n");
  return out;
}

std::string ToText(const XidResult& r) {
  std::string out = ToText("XID reports (report -> ack)", r.reports);
  absl::StrAppendFormat(&out,
                        "decisions: %d of %d nodes UNHEALTHY in the event log\n"
                        "  report -> decision: %s\n",
                        r.decided, r.nodes, LatencyText(*r.decision));
  if (r.started > 0) {
    absl::StrAppendFormat(&out,
                          "replacements started: %d\n  report -> start: %s\n",
                          r.started, LatencyText(*r.replacement_started));
  }
  if (r.provisioned > 0) {
    absl::StrAppendFormat(
        &out, "replacements (%s): %d\n  report -> provision: %s\n",
        r.provision_kind, r.provisioned, LatencyText(*r.provision));
  } else {
    absl::StrAppend(&out,
                    "replacements: none recorded (the nodes' pool has no "
                    "auto_replace, or there is no such pool)\n");
  }
  return out;
}

std::string ToText(const ScaleResult& r) {
  constexpr double kMiB = 1024.0 * 1024.0;
  std::string out = ToText("registration", r.registration);
  absl::StrAppend(&out, ToText("one heartbeat per node", r.heartbeats));
  absl::StrAppendFormat(
      &out,
      "RSS: empty %.1f MiB, %d nodes registered %.1f MiB, with metrics %.1f "
      "MiB: %.0f bytes per node\n",
      r.rss_empty_bytes / kMiB, r.nodes, r.rss_registered_bytes / kMiB,
      r.rss_steady_bytes / kMiB, r.rss_per_node_bytes);
  if (r.database_bytes > 0)
    absl::StrAppendFormat(&out, "database: %.1f MiB\n",
                          r.database_bytes / kMiB);
  if (r.listed_nodes > 0 || r.restart_ready > absl::ZeroDuration()) {
    absl::StrAppendFormat(
        &out,
        "after kill -9: ready %.0f ms, first GetNode %.0f ms, all %d nodes "
        "listed %.0f ms; RSS %.1f MiB\n",
        Ms(r.restart_ready), Ms(r.restart_first_get), r.listed_nodes,
        Ms(r.restart_all_listed), r.rss_restarted_bytes / kMiB);
  }
  return out;
}

}  // namespace navarch::bench
