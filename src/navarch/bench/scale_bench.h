// The control plane at fleet scale, as a process: memory per registered node
// and recovery from kill -9.
//
// Starts `control-plane` on a fresh SQLite database, reads its VmRSS empty,
// registers N nodes (8 GPUs each), sends each one heartbeat (so every node
// carries metrics, as in steady state), waits for the heartbeat flush, and
// reads VmRSS again. Then kill -9, start it again on the same database, and
// time (from the new process's start) the ready file, the first GetNode of
// the last node registered, and ListNodes returning all N.
#ifndef NAVARCH_BENCH_SCALE_BENCH_H_
#define NAVARCH_BENCH_SCALE_BENCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/bench/load.h"
#include "navarch/bench/workload.h"

namespace navarch::bench {

struct ScaleOptions {
  std::string control_plane;  // the binary
  // A config file to use; empty: one is written (SQLite in work_dir, gRPC and
  // HTTP on free loopback ports, log level warn).
  std::string config;
  // Database, config, ready and log files; empty: a fresh temporary folder,
  // removed afterwards.
  std::string work_dir;
  FleetShape shape;
  int64_t nodes = 100000;
  int concurrency = 256;
  bool restart = true;
  std::string token;
  absl::Duration start_timeout = absl::Seconds(120);
};

struct ScaleResult {
  int64_t nodes = 0;
  int64_t rss_empty_bytes = 0;
  int64_t rss_registered_bytes = 0;  // after registration
  int64_t rss_steady_bytes = 0;      // after one heartbeat per node
  double rss_per_node_bytes = 0;     // (steady - empty) / nodes
  RunResult registration;
  RunResult heartbeats;
  int64_t database_bytes = 0;  // the SQLite file and its WAL
  // After kill -9, from the new process's start:
  absl::Duration restart_ready;       // the ready file is written
  absl::Duration restart_first_get;   // GetNode(last node) succeeded
  absl::Duration restart_all_listed;  // ListNodes has returned all N
  int64_t listed_nodes = 0;
  int64_t rss_restarted_bytes = 0;
  std::string work_dir;
};

absl::StatusOr<ScaleResult> RunScaleBench(Clock& clock,
                                          const ScaleOptions& options);

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_SCALE_BENCH_H_
