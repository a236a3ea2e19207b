// The load generator: unary calls against a control plane (or the echo
// server) through gRPC's callback client API, so one small client thread pool
// keeps thousands of calls in flight.
//
// Closed loop: `concurrency` calls in flight; each completion starts the next.
// Throughput is what the server sustains; latency is service time under that
// load.
// Open loop: calls start on a schedule, `rate` per second, whatever the
// server does. Latency runs from the time a call was due, not from when it
// was sent, so a stalled server or client is charged for every call it made
// late (no coordinated omission).
#ifndef NAVARCH_BENCH_LOAD_H_
#define NAVARCH_BENCH_LOAD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "navarch/base/clock.h"
#include "navarch/bench/histogram.h"
#include "navarch/bench/workload.h"
#include "navarch/control_plane.grpc.pb.h"

namespace navarch::bench {

struct TargetOptions {
  std::string address;
  // Sent as `authorization: Bearer <token>` when not empty.
  std::string token;
  // Separate HTTP/2 connections; calls are spread over them. A real fleet has
  // one per agent; a handful lets the server use all its pollers.
  int channels = 4;
  absl::Duration rpc_timeout = absl::Seconds(10);
};

// Channels to one server.
class Target {
 public:
  // `clock` sets the calls' deadlines; it must outlive the Target.
  Target(TargetOptions options, Clock& clock);

  const TargetOptions& options() const { return options_; }
  int channels() const { return static_cast<int>(stubs_.size()); }
  ControlPlaneService::Stub& stub(int i) { return *stubs_[i % stubs_.size()]; }
  // Sets the deadline and the token on a fresh context.
  void Prepare(grpc::ClientContext* ctx) const;
  // Waits until every channel is connected (or `timeout` passes).
  absl::Status WaitConnected(absl::Duration timeout);

 private:
  TargetOptions options_;
  Clock& clock_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<ControlPlaneService::Stub>> stubs_;
};

// Latency figures of a run, in one place for printing.
struct LatencySummary {
  int64_t count = 0;
  absl::Duration mean, p50, p90, p99, p999, max;
};
LatencySummary Summarize(const LatencyHistogram& h);

struct RunResult {
  int64_t requests = 0;  // completed in the measured window (errors included)
  int64_t errors = 0;
  absl::Duration window;      // the measured time
  double throughput_rps = 0;  // successful calls per second in the window
  // Open loop: the rate asked for, and calls still unanswered at the end.
  double target_rps = 0;
  int64_t unfinished = 0;
  int64_t max_in_flight = 0;
  std::map<std::string, int64_t> error_codes;  // "NOT_FOUND" -> count
  std::string first_error;
  std::unique_ptr<LatencyHistogram> latency =
      std::make_unique<LatencyHistogram>();
};

struct HeartbeatLoad {
  FleetShape shape;
  int64_t nodes = 1000;
  absl::Duration duration = absl::Seconds(10);
  // Completions in the first `warmup` are not measured (connections, caches,
  // the server's thread pools warming up).
  absl::Duration warmup = absl::ZeroDuration();
  int concurrency = 64;
  // > 0: open loop at this many calls per second (concurrency is then only a
  // cap on calls in flight, far above what a healthy run needs).
  double rate = 0;
  int64_t first_node = 0;  // round-robin starts here (runs continue a cycle)
};

// Sends heartbeats round-robin over nodes 0..nodes-1 of `shape`.
RunResult RunHeartbeats(Target& target, Clock& clock,
                        const HeartbeatLoad& load);

// Registers nodes [first, first + count) of `shape`, `concurrency` calls in
// flight. Every node is registered once; the window is the whole run.
RunResult RunRegistrations(Target& target, Clock& clock,
                           const FleetShape& shape, int64_t first,
                           int64_t count, int concurrency);

// Sends one heartbeat to every node [0, count), closed loop (fills the
// control plane's per-node metrics, as a fleet in steady state has them).
RunResult RunHeartbeatRound(Target& target, Clock& clock,
                            const FleetShape& shape, int64_t count,
                            int concurrency);

// Reports one XID `xid` per node [0, count) (node i's GPU i % gpus), each
// stamped with the time it is sent: open loop at `rate` per second, or closed
// loop with `concurrency` in flight when rate <= 0.
RunResult RunXidReports(Target& target, Clock& clock, const FleetShape& shape,
                        int64_t count, int xid, double rate, int concurrency);

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_LOAD_H_
