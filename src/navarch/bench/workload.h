// What a fleet of GPU nodes sends the control plane, for load generation:
// registrations of 8-GPU HGX H100 machines, heartbeats with per-GPU metrics,
// and fatal XID reports, shaped like the node agent's (agent/agent.cc).
// Deterministic: node i always has the same GPUs, UUIDs and addresses, so a
// second run (or another process) can refer to them.
#ifndef NAVARCH_BENCH_WORKLOAD_H_
#define NAVARCH_BENCH_WORKLOAD_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "navarch/control_plane.pb.h"

namespace navarch::bench {

struct FleetShape {
  std::string node_prefix = "bench-node-";  // node i is <prefix><i>
  std::string pool = "bench";               // the `pool` label; empty: no label
  int gpus_per_node = 8;
};

std::string NodeId(const FleetShape& shape, int64_t i);

// Node i's registration: provider, region (one of four, round-robin), zone,
// instance type, host metadata, and its GPUs with NVML-shaped names, UUIDs,
// PCI bus ids, memory and driver versions.
void FillRegister(const FleetShape& shape, int64_t i, RegisterNodeRequest* req);

// A heartbeat of node i: host CPU and memory, and one GPUMetrics per GPU with
// values that vary with `seq`. Reuses `req`'s storage when called again on it.
void FillHeartbeat(const FleetShape& shape, int64_t i, int64_t seq,
                   absl::Time now, HeartbeatRequest* req);

// A report with one XID event on node i's GPU `gpu` at `at`, as the agent's
// kernel-log source sends it (metrics xid_code, pci_bus_id; the NVRM line as
// the message).
void FillXidReport(const FleetShape& shape, int64_t i, int gpu, int xid,
                   absl::Time at, ReportHealthRequest* req);

// The UUID of node i's GPU g: "GPU-" and a version-4-shaped UUID.
std::string GpuUuid(int64_t i, int g);

// The regions nodes are spread over (FillRegister), for partitioned listing.
inline constexpr const char* kRegions[] = {"us-east-1", "us-west-2",
                                           "eu-west-1", "ap-northeast-1"};

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_WORKLOAD_H_
