// A fatal XID, from the report to what the control plane does about it, read
// back from the control plane's own event log (ListEvents).
//
// For each node: the agent-side report time is the HealthEvent timestamp the
// bench sets when it sends (the health.event's time in the log); the decision
// is the node.status_changed event to UNHEALTHY; the replacement starts with
// the pool manager's pool.replacement_started (cordon and drain issued) and is
// provisioned at pool.replacement_provisioned, recorded once the provider's
// provision call has returned (both carry the old node's id; an event whose
// details say replaces=<node> counts as provisioned too). Bench and control
// plane share the machine, so their clocks are one.
//
// Replacements happen only for nodes of a pool with auto_replace (the bench
// labels its nodes pool=<pool>); without one the result says so
// (provisioned = 0) instead of waiting forever.
#ifndef NAVARCH_BENCH_XID_BENCH_H_
#define NAVARCH_BENCH_XID_BENCH_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/bench/histogram.h"
#include "navarch/bench/load.h"
#include "navarch/bench/workload.h"

namespace navarch::bench {

struct XidOptions {
  FleetShape shape;
  int64_t nodes = 20;  // nodes 0..nodes-1 report one XID each
  // Nodes registered (>= nodes): a pool's replacement breaker stops when too
  // large a share of it is unhealthy, so a pool needs healthy ones too.
  int64_t fleet = 0;  // 0: nodes
  bool register_nodes = true;
  int xid = 79;
  double rate = 20;  // reports per second; <= 0: all at once (closed loop)
  int concurrency = 64;
  // How long to wait, after the last report, for decisions and for
  // replacement events to appear in the log.
  absl::Duration decision_timeout = absl::Seconds(10);
  absl::Duration provision_timeout = absl::Seconds(3);
};

struct XidResult {
  int64_t nodes = 0;
  RunResult registration;
  // ReportHealth calls: latency is report -> acknowledgement (the decision
  // durable in the store).
  RunResult reports;
  int64_t decided = 0;      // nodes with a status change to UNHEALTHY
  int64_t started = 0;      // nodes whose replacement started
  int64_t provisioned = 0;  // nodes whose replacement was provisioned
  // Report sent -> node.status_changed (UNHEALTHY) as the log records it:
  // transport in, policy evaluation, the state machine.
  std::unique_ptr<LatencyHistogram> decision =
      std::make_unique<LatencyHistogram>();
  // Report sent -> pool.replacement_started.
  std::unique_ptr<LatencyHistogram> replacement_started =
      std::make_unique<LatencyHistogram>();
  // Report sent -> the replacement's provision event.
  std::unique_ptr<LatencyHistogram> provision =
      std::make_unique<LatencyHistogram>();
  std::string provision_kind;  // the kind of the first replacement event seen
  int64_t events_read = 0;
};

absl::StatusOr<XidResult> RunXidBench(Target& target, Clock& clock,
                                      const XidOptions& options);

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_XID_BENCH_H_
