// A node's packed parts: the hand-written wire encoding the fleet index keeps
// a node's cold and bulky fields in.
//
// Memory (issue 8, target 3): what a node registered with (its GPU inventory
// and host metadata: read only by GetNode/ListNodes and written whole by
// commits) and its last heartbeat's metrics are kept serialized, ~1.3 KB
// instead of ~4.5 KB of protobuf objects (8 GPUInfo with five heap strings
// each, 8 GPUMetrics). The rest of the record (the hot part every call reads)
// stays a NodeRecord; ExpandNode() puts the whole node together again for
// reads, and commits hand the serialized parts to the store as they are
// (WriteBatch::node_extras).
#ifndef NAVARCH_FLEET_NODE_WIRE_H_
#define NAVARCH_FLEET_NODE_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "navarch/control_plane.pb.h"
#include "navarch/internal/records.pb.h"

namespace navarch::fleet_internal {

using ::navarch::internal::NodeRecord;

struct NodeParts {
  // NodeInfo wire format holding only gpus (field 9) and metadata (10).
  std::string cold;
  // NodeInfo wire format holding only last_metrics (13); empty: none.
  std::string metrics;
  // For NodeSummary: the last metrics' mean GPU utilization (unset without
  // GPU metrics), the number of GPUs registered. Set with `cold` and
  // `metrics` (SetCold, SetMetrics).
  std::optional<double> gpu_utilization;
  int32_t gpu_count = 0;
};

// Mean utilization of a heartbeat's GPU metrics; unset without GPU metrics.
std::optional<double> MeanGpuUtilization(const NodeMetrics& metrics);

// Serializes `gpus` and `metadata` (if not null) into parts.cold, exactly
// sized, and sets the GPU count.
void SetCold(NodeParts& parts,
             const google::protobuf::RepeatedPtrField<GPUInfo>& gpus,
             const NodeMetadata* metadata);
// Serializes `metrics` into parts.metrics (none: cleared) and sets the
// utilization. Reuses the buffer: a heartbeat allocates nothing unless its
// metrics are larger than any before.
void SetMetrics(NodeParts& parts, const NodeMetrics* metrics);
// Moves gpus, metadata and last_metrics out of `record` into `parts`;
// `record` keeps the hot part only.
void Compact(NodeRecord& record, NodeParts& parts);
// Adds the serialized parts to `node` (a hot copy of the node).
void ExpandNode(const std::string& cold, const std::string& metrics,
                NodeInfo* node);

}  // namespace navarch::fleet_internal

#endif  // NAVARCH_FLEET_NODE_WIRE_H_
