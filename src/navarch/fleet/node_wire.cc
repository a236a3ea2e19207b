#include "navarch/fleet/node_wire.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace navarch::fleet_internal {
namespace {

// The parts are NodeInfo wire format, written field by field straight from
// the messages (no copy into a NodeInfo first).
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

// Bytes of a length-delimited field `field` holding `size` bytes.
size_t FieldSize(int field, size_t size) {
  return CodedOutputStream::VarintSize32(WireFormatLite::MakeTag(
             field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) +
         CodedOutputStream::VarintSize32(static_cast<uint32_t>(size)) + size;
}

// Appends `m` as field `field` of `out`; ByteSizeLong() must have run on it.
void AppendField(int field, const google::protobuf::MessageLite& m,
                 std::string& out) {
  const int size = m.GetCachedSize();
  uint8_t header[16];
  uint8_t* p = WireFormatLite::WriteTagToArray(
      field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, header);
  p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size), p);
  out.append(reinterpret_cast<const char*>(header), p - header);
  const size_t at = out.size();
  out.resize(at + size);
  m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data()) +
                                    at);
}

std::string SerializeCold(
    const google::protobuf::RepeatedPtrField<GPUInfo>& gpus,
    const NodeMetadata* metadata) {
  size_t total = 0;
  for (const auto& g : gpus)
    total += FieldSize(NodeInfo::kGpusFieldNumber, g.ByteSizeLong());
  if (metadata != nullptr) {
    total +=
        FieldSize(NodeInfo::kMetadataFieldNumber, metadata->ByteSizeLong());
  }
  std::string out;
  out.reserve(total);
  for (const auto& g : gpus) AppendField(NodeInfo::kGpusFieldNumber, g, out);
  if (metadata != nullptr)
    AppendField(NodeInfo::kMetadataFieldNumber, *metadata, out);
  return out;
}

void SerializeMetrics(const NodeMetrics& metrics, std::string& out) {
  const size_t total =
      FieldSize(NodeInfo::kLastMetricsFieldNumber, metrics.ByteSizeLong());
  if (total > out.capacity()) {
    std::string fresh;
    fresh.reserve(total);
    out.swap(fresh);
  }
  out.clear();
  AppendField(NodeInfo::kLastMetricsFieldNumber, metrics, out);
}

}  // namespace

std::optional<double> MeanGpuUtilization(const NodeMetrics& metrics) {
  const auto& gpus = metrics.gpu_metrics();
  if (gpus.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& g : gpus) sum += g.utilization_percent();
  return sum / gpus.size();
}

void SetCold(NodeParts& parts,
             const google::protobuf::RepeatedPtrField<GPUInfo>& gpus,
             const NodeMetadata* metadata) {
  parts.cold = SerializeCold(gpus, metadata);
  parts.gpu_count = gpus.size();
}

void SetMetrics(NodeParts& parts, const NodeMetrics* metrics) {
  if (metrics == nullptr) {
    std::string().swap(parts.metrics);
    parts.gpu_utilization.reset();
    return;
  }
  SerializeMetrics(*metrics, parts.metrics);
  parts.gpu_utilization = MeanGpuUtilization(*metrics);
}

void Compact(NodeRecord& record, NodeParts& parts) {
  NodeInfo* node = record.mutable_node();
  SetCold(parts, node->gpus(),
          node->has_metadata() ? &node->metadata() : nullptr);
  SetMetrics(parts, node->has_last_metrics() ? &node->last_metrics() : nullptr);
  // Swapped out rather than cleared: a cleared repeated field keeps its
  // elements allocated for reuse.
  google::protobuf::RepeatedPtrField<GPUInfo>().Swap(node->mutable_gpus());
  node->clear_metadata();
  node->clear_last_metrics();
}

void ExpandNode(const std::string& cold, const std::string& metrics,
                NodeInfo* node) {
  // Both hold only fields the hot part lacks: merging sets them.
  (void)node->MergeFromString(cold);
  if (!metrics.empty()) (void)node->MergeFromString(metrics);
}

}  // namespace navarch::fleet_internal
