#include "navarch/store/record_util.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace navarch {

int64_t TimeToNanos(absl::Time t) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (t <= absl::FromUnixNanos(kMin)) return kMin;
  if (t >= absl::FromUnixNanos(kMax)) return kMax;
  return absl::ToUnixNanos(t);
}

absl::Time NanosToTime(int64_t nanos) {
  if (nanos == std::numeric_limits<int64_t>::min()) return absl::InfinitePast();
  if (nanos == std::numeric_limits<int64_t>::max())
    return absl::InfiniteFuture();
  return absl::FromUnixNanos(nanos);
}

absl::Status CheckVersion(absl::string_view what, const std::string& id,
                          int64_t current, int64_t next) {
  if (next == current + 1) return absl::OkStatus();
  return absl::AbortedError(
      absl::StrCat(what, " ", id, ": version conflict (stored ", current,
                   ", write ", next, "); another writer changed it"));
}

namespace {

using google::protobuf::internal::WireFormatLite;

// Calls `field(number, begin, end)` for each top-level field of the wire
// format `bytes` (begin, end: the field's byte range, tag included); stops at
// the first field for which it returns false. INVALID_ARGUMENT when the
// framing is broken.
template <typename Fn>
absl::Status ForEachField(absl::string_view bytes, Fn field) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  while (in.CurrentPosition() < static_cast<int>(bytes.size())) {
    const int begin = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0 || !WireFormatLite::SkipField(&in, tag)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "node extras: malformed NodeInfo wire format at byte ", begin));
    }
    if (!field(WireFormatLite::GetTagFieldNumber(tag), begin,
               in.CurrentPosition())) {
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckNodeExtras(absl::string_view extras) {
  int forbidden = 0;
  NAVARCH_RETURN_IF_ERROR(ForEachField(extras, [&](int number, int, int) {
    switch (number) {
      case NodeInfo::kNodeIdFieldNumber:
      case NodeInfo::kPoolFieldNumber:
      case NodeInfo::kStatusFieldNumber:
      case NodeInfo::kHealthStatusFieldNumber:
      case NodeInfo::kLastHeartbeatFieldNumber:
        forbidden = number;
        return false;
      default:
        return true;
    }
  }));
  if (forbidden != 0) {
    const auto* field = NodeInfo::descriptor()->FindFieldByNumber(forbidden);
    return absl::InvalidArgumentError(
        absl::StrCat("node extras set ", field->name(),
                     ", which belongs in the node record itself"));
  }
  return absl::OkStatus();
}

absl::Status MergeNodeExtras(absl::string_view extras, NodeRecord& record) {
  if (extras.empty()) return absl::OkStatus();
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(extras.data()),
      static_cast<int>(extras.size()));
  if (!record.mutable_node()->MergeFromCodedStream(&in) ||
      !in.ConsumedEntireMessage()) {
    return absl::InternalError(
        absl::StrCat("corrupt extras of node ", record.node().node_id()));
  }
  return absl::OkStatus();
}

void AppendNodeExtras(absl::string_view extras, std::string& record_bytes) {
  if (extras.empty()) return;
  uint8_t header[16];
  uint8_t* p = WireFormatLite::WriteTagToArray(
      NodeRecord::kNodeFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED,
      header);
  p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(extras.size()), p);
  record_bytes.reserve(record_bytes.size() + (p - header) + extras.size());
  record_bytes.append(reinterpret_cast<const char*>(header), p - header);
  record_bytes.append(extras.data(), extras.size());
}

std::string WithoutNodeField(absl::string_view extras, int field) {
  std::string out;
  out.reserve(extras.size());
  ForEachField(extras, [&](int number, int begin, int end) {
    if (number != field) out.append(extras.data() + begin, end - begin);
    return true;
  }).IgnoreError();  // checked on commit
  return out;
}

absl::Status ValidateBatch(const WriteBatch& batch) {
  for (const auto& n : batch.nodes) {
    if (n.node().node_id().empty())
      return absl::InvalidArgumentError("node record without id");
    if (n.version() < 1)
      return absl::InvalidArgumentError("node record without version");
  }
  if (!batch.node_extras.empty()) {
    if (batch.node_extras.size() != batch.nodes.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch has ", batch.node_extras.size(), " node extras for ",
          batch.nodes.size(), " node records (must be none or one each)"));
    }
    for (size_t i = 0; i < batch.nodes.size(); ++i) {
      NAVARCH_RETURN_IF_ERROR(
          Annotate(CheckNodeExtras(batch.node_extras[i]),
                   absl::StrCat("node ", batch.nodes[i].node().node_id())));
    }
  }
  for (const auto& i : batch.instances) {
    if (i.instance().instance_id().empty()) {
      return absl::InvalidArgumentError("instance record without id");
    }
    if (i.version() < 1)
      return absl::InvalidArgumentError("instance record without version");
  }
  for (const auto& c : batch.commands) {
    if (c.command().command_id().empty()) {
      return absl::InvalidArgumentError("command record without id");
    }
    if (c.version() < 1)
      return absl::InvalidArgumentError("command record without version");
  }
  for (const auto& e : batch.events) {
    if (e.kind().empty())
      return absl::InvalidArgumentError("event without kind");
  }
  return absl::OkStatus();
}

absl::Status ValidateQuery(const EventQuery& query) {
  if (query.limit < 1)
    return absl::InvalidArgumentError("event query limit must be >= 1");
  if (query.after_id < 0)
    return absl::InvalidArgumentError("event cursor must be >= 0");
  return absl::OkStatus();
}

bool EventMatches(const EventQuery& query, const Event& event) {
  if (event.id() <= query.after_id) return false;
  if (!query.node_id.empty() && event.node_id() != query.node_id) return false;
  if (!query.pool.empty() && event.pool() != query.pool) return false;
  absl::Time t = FromTimestamp(event.time());
  if (t < query.since || t >= query.until) return false;
  if (query.kinds.empty()) return true;
  return std::any_of(
      query.kinds.begin(), query.kinds.end(),
      [&](const std::string& k) { return EventKindMatches(k, event.kind()); });
}

void SortCommands(std::vector<CommandRecord>& commands) {
  std::stable_sort(commands.begin(), commands.end(),
                   [](const CommandRecord& a, const CommandRecord& b) {
                     absl::Time ta = FromTimestamp(a.command().issued_at());
                     absl::Time tb = FromTimestamp(b.command().issued_at());
                     if (ta != tb) return ta < tb;
                     return a.command().command_id() < b.command().command_id();
                   });
}

bool IsPrunableInstance(const InstanceRecord& r, absl::Time before) {
  return (r.instance().state() == INSTANCE_STATE_TERMINATED ||
          r.instance().state() == INSTANCE_STATE_FAILED) &&
         IsSet(r.instance().terminated_at()) &&
         FromTimestamp(r.instance().terminated_at()) < before;
}

bool ApplyHeartbeat(const HeartbeatUpdate& update, NodeRecord& record) {
  NodeInfo* node = record.mutable_node();
  // A delayed flush must not replace newer metrics with older ones.
  const bool replace =
      update.metrics.has_value() &&
      update.last_heartbeat >= FromTimestamp(node->last_heartbeat());
  if (replace) *node->mutable_last_metrics() = *update.metrics;
  *node->mutable_last_heartbeat() =
      MaxTimestamp(node->last_heartbeat(), ToTimestamp(update.last_heartbeat));
  return replace;
}

absl::Status MergeLiveness(absl::Time flushed,
                           std::optional<absl::string_view> metrics,
                           NodeRecord& record) {
  NodeInfo& node = *record.mutable_node();
  if (flushed > FromTimestamp(node.last_heartbeat())) {
    *node.mutable_last_heartbeat() = ToTimestamp(flushed);
  }
  if (metrics.has_value() &&
      !node.mutable_last_metrics()->ParseFromArray(
          metrics->data(), static_cast<int>(metrics->size()))) {
    return absl::InternalError("corrupt node metrics record");
  }
  return absl::OkStatus();
}

}  // namespace navarch
