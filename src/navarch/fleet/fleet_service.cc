#include "navarch/fleet/fleet_service.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/ids.h"
#include "navarch/base/status.h"
#include "navarch/fleet/node_state.h"
#include "navarch/fleet/validation.h"
#include "navarch/store/record_util.h"

namespace navarch {

using internal::CommandState;

// Runs `then` exactly once, after both the store has answered and the
// submitter has released the fleet lock — whichever comes last.
class FleetService::PendingCommit {
 public:
  explicit PendingCommit(std::function<void(absl::Status)> then)
      : then_(std::move(then)) {}

  void Complete(absl::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (!released_) {
        result_ = std::move(status);
        has_result_ = true;
        return;
      }
    }
    then_(std::move(status));
  }

  void Release() {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      released_ = true;
      if (!has_result_) return;
      status = std::move(result_);
    }
    then_(std::move(status));
  }

 private:
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool has_result_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status result_ ABSL_GUARDED_BY(mu_);
  std::function<void(absl::Status)> then_;
};

namespace {

absl::Status NodeNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("node ", id, " not found"));
}

bool IsLive(NodeStatus s) {
  return s == NODE_STATUS_ACTIVE || s == NODE_STATUS_CORDONED ||
         s == NODE_STATUS_DRAINING;
}

std::string PoolOf(const NodeMetadata& metadata) {
  auto it = metadata.labels().find("pool");
  return it == metadata.labels().end() ? "" : it->second;
}

// Mean utilization of a heartbeat's GPU metrics (NodeSummary); unset without
// GPU metrics.
std::optional<double> MeanGpuUtilization(const NodeMetrics& metrics) {
  const auto& gpus = metrics.gpu_metrics();
  if (gpus.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& g : gpus) sum += g.utilization_percent();
  return sum / gpus.size();
}

// NodeEntry's serialized parts are NodeInfo wire format, written field by
// field straight from the messages (no copy into a NodeInfo first).
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

// NodeEntry::cold: `gpus` and `metadata` (if not null), exactly sized.
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

// NodeEntry::metrics, reusing `out`'s buffer: a heartbeat allocates nothing
// unless its metrics are larger than any before.
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

// Wraps a typed `done` so that it receives `value` on success.
template <typename T>
std::function<void(absl::Status)> Reply(Done<T> done, T value) {
  return [done = std::move(done),
          value = std::move(value)](absl::Status s) mutable {
    if (s.ok()) {
      done(std::move(value));
    } else {
      done(std::move(s));
    }
  };
}

}  // namespace

FleetService::FleetService(Store& store, Clock& clock,
                           const HealthEvaluator& evaluator, Logger log,
                           FleetOptions options)
    : store_(store),
      clock_(clock),
      evaluator_(evaluator),
      log_(log.With({{"component", "fleet"}})),
      options_(std::move(options)),
      rng_(options_.seed != 0
               ? options_.seed
               : static_cast<uint64_t>(absl::ToUnixNanos(clock.Now()))) {}

FleetService::~FleetService() { Stop(); }

absl::Status FleetService::Start() {
  auto snap = store_.Load();
  if (!snap.ok())
    return Annotate(snap.status(), "loading state from the store");
  absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("fleet already started");
    // The index's entries are allocated first, one after the other, and
    // compacted after: entries that lie close together keep lookups in
    // cache (BM_SendHeartbeat at 100,000 nodes loaded: 0.7-0.86 -> 0.42 us).
    for (auto& n : snap->nodes) {
      NodeEntry& entry = InsertLocked(n.node().node_id());
      // Liveness restarts with a full grace period: we may have been down.
      entry.alive_at = std::max(now, FromTimestamp(n.node().last_heartbeat()));
      entry.record = std::move(n);
    }
    for (auto& [id, entry] : nodes_) {
      Compact(std::move(entry.record), entry);
      SyncLiveLocked(entry);
    }
    for (auto& i : snap->instances)
      instances_[i.instance().instance_id()] = std::move(i);
    for (auto& c : snap->open_commands) {
      auto it = nodes_.find(c.node_id());
      if (it != nodes_.end())
        it->second.open_commands.push_back(c.command().command_id());
      commands_[c.command().command_id()] = std::move(c);
    }
    started_ = true;
  }
  log_.Info(
      "fleet state loaded",
      {{"nodes", static_cast<int64_t>(snap->nodes.size())},
       {"instances", static_cast<int64_t>(snap->instances.size())},
       {"open_commands", static_cast<int64_t>(snap->open_commands.size())},
       {"store", store_.Name()}});
  ScheduleFlush();
  return absl::OkStatus();
}

void FleetService::ScheduleFlush() {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  flush_timer_ = clock_.Schedule(options_.heartbeat_flush_interval, [this] {
    absl::Status s = FlushHeartbeats();
    if (!s.ok()) log_.Warn("heartbeat flush failed", {{"error", s}});
    ScheduleFlush();
  });
}

void FleetService::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || !started_) {
      stopped_ = true;
      return;
    }
    stopped_ = true;
    clock_.Cancel(flush_timer_);
  }
  absl::Status s = FlushHeartbeats();
  if (!s.ok()) log_.Warn("final heartbeat flush failed", {{"error", s}});
  CloseWatchers();
}

void FleetService::CloseWatchers() {
  std::vector<std::function<void()>> closers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, w] : watchers_) closers.push_back(std::move(w.closed));
    watchers_.clear();
  }
  for (auto& c : closers) {
    if (c) c();
  }
}

std::shared_ptr<FleetService::PendingCommit> FleetService::SubmitLocked(
    WriteBatch batch, std::function<void(absl::Status)> then) {
  std::vector<std::string> ids;
  for (const auto& n : batch.nodes) ids.push_back(n.node().node_id());
  std::vector<Event> events;
  if (options_.on_events_committed) events = batch.events;
  auto pending = std::make_shared<PendingCommit>(
      [this, ids = std::move(ids), events = std::move(events),
       then = std::move(then)](absl::Status s) mutable {
        // Runs once (PendingCommit): the events can go to the observer.
        if (s.ok() && !events.empty())
          options_.on_events_committed(std::move(events));
        if (!s.ok()) {
          {
            absl::MutexLock lock(&mu_);
            ++stats_.commit_failures;
          }
          log_.Error("commit failed; reloading affected nodes from the store",
                     {{"error", s}});
          Resync(ids);
        }
        then(std::move(s));
      });
  if (batch.empty()) {
    pending->Complete(absl::OkStatus());
  } else {
    store_.Commit(std::move(batch), [pending](absl::Status s) {
      pending->Complete(std::move(s));
    });
  }
  return pending;
}

void FleetService::Resync(const std::vector<std::string>& node_ids) {
  for (const auto& id : node_ids) {
    auto stored = store_.GetNode(id);
    if (!stored.ok()) {
      log_.Error("resync read failed",
                 {{"node_id", id}, {"error", stored.status()}});
      continue;
    }
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) continue;
    if (!stored->has_value()) {
      EraseLocked(it);
    } else {
      Compact(std::move(**stored), it->second);
      SyncLiveLocked(it->second);
    }
  }
}

Event FleetService::NewEvent(const std::string& kind, const NodeInfo* node,
                             const Actor& actor, std::string message) {
  Event e;
  *e.mutable_time() = ToTimestamp(clock_.Now());
  e.set_kind(kind);
  if (node != nullptr) {
    e.set_node_id(node->node_id());
    e.set_pool(node->pool());
  }
  e.set_actor(actor.name);
  e.set_message(std::move(message));
  return e;
}

NodeRecord FleetService::NextVersion(const NodeEntry& entry) const {
  NodeRecord r = entry.record;
  r.set_version(r.version() + 1);
  return r;
}

void FleetService::StageLocked(NodeEntry& entry, NodeRecord hot,
                               WriteBatch& batch) {
  // The serialized parts go to the store as they are (WriteBatch::
  // node_extras): a commit parses nothing. Every node of a batch comes
  // through here, so there is one extras entry per record.
  batch.nodes.push_back(hot);
  std::string& extras = batch.node_extras.emplace_back();
  extras.reserve(entry.cold.size() + entry.metrics.size());
  extras.append(entry.cold).append(entry.metrics);
  entry.record = std::move(hot);
  SyncLiveLocked(entry);
}

FleetService::NodeEntry* FleetService::FindLocked(absl::string_view id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

FleetService::NodeEntry& FleetService::InsertLocked(const std::string& id) {
  auto [it, inserted] = nodes_.try_emplace(id);
  if (inserted) by_id_[it->first] = &it->second;
  return it->second;
}

void FleetService::EraseLocked(std::map<std::string, NodeEntry>::iterator it) {
  RemoveLiveLocked(it->second);
  by_id_.erase(it->first);
  nodes_.erase(it);
}

void FleetService::SyncLiveLocked(NodeEntry& entry) {
  if (!IsLive(entry.record.node().status())) {
    RemoveLiveLocked(entry);
  } else if (entry.live_slot < 0) {
    entry.live_slot = static_cast<int32_t>(live_.size());
    live_.push_back(LiveSlot{
        entry.vouched ? absl::InfiniteFuture() : entry.alive_at, &entry});
  }
}

void FleetService::RemoveLiveLocked(NodeEntry& entry) {
  if (entry.live_slot < 0) return;
  LiveSlot& slot = live_[entry.live_slot];
  if (&slot != &live_.back()) {
    slot = live_.back();
    slot.entry->live_slot = entry.live_slot;
  }
  live_.pop_back();
  entry.live_slot = -1;
}

void FleetService::TouchLocked(NodeEntry& entry, absl::Time alive_at) {
  entry.alive_at = alive_at;
  if (entry.live_slot >= 0) {
    live_[entry.live_slot].alive_at =
        entry.vouched ? absl::InfiniteFuture() : alive_at;
  }
}

void FleetService::Compact(NodeRecord record, NodeEntry& entry) {
  NodeInfo* node = record.mutable_node();
  SetCold(entry, node->gpus(),
          node->has_metadata() ? &node->metadata() : nullptr);
  SetMetrics(entry, node->has_last_metrics() ? &node->last_metrics() : nullptr);
  // Swapped out rather than cleared: a cleared repeated field keeps its
  // elements allocated for reuse.
  google::protobuf::RepeatedPtrField<GPUInfo>().Swap(node->mutable_gpus());
  node->clear_metadata();
  node->clear_last_metrics();
  entry.record = std::move(record);
}

void FleetService::SetCold(
    NodeEntry& entry, const google::protobuf::RepeatedPtrField<GPUInfo>& gpus,
    const NodeMetadata* metadata) {
  entry.cold = SerializeCold(gpus, metadata);
  entry.gpu_count = gpus.size();
}

void FleetService::SetMetrics(NodeEntry& entry, const NodeMetrics* metrics) {
  if (metrics == nullptr) {
    std::string().swap(entry.metrics);
    entry.gpu_utilization.reset();
    return;
  }
  SerializeMetrics(*metrics, entry.metrics);
  entry.gpu_utilization = MeanGpuUtilization(*metrics);
}

void FleetService::Expand(const std::string& cold, const std::string& metrics,
                          NodeInfo* node) {
  // Both hold only fields the hot part lacks: merging sets them.
  (void)node->MergeFromString(cold);
  if (!metrics.empty()) (void)node->MergeFromString(metrics);
}

void FleetService::ChangeStatusLocked(NodeRecord& record, NodeStatus to,
                                      const std::string& reason,
                                      const Actor& actor, WriteBatch& batch) {
  NodeInfo* node = record.mutable_node();
  NodeStatus from = node->status();
  if (from == to) return;
  node->set_status(to);
  node->set_status_reason(reason);
  ++stats_.status_changes[absl::StrCat(ShortName(from), "|", ShortName(to))];
  *record.mutable_status_changed_at() = ToTimestamp(clock_.Now());
  Event e = NewEvent(
      "node.status_changed", node, actor,
      absl::StrCat(ShortName(from), " -> ", ShortName(to), ": ", reason));
  (*e.mutable_details())["from"] = NodeStatus_Name(from);
  (*e.mutable_details())["to"] = NodeStatus_Name(to);
  (*e.mutable_details())["reason"] = reason;
  batch.events.push_back(std::move(e));
  log_.Info("node status changed", {{"node_id", node->node_id()},
                                    {"from", ShortName(from)},
                                    {"to", ShortName(to)},
                                    {"reason", reason},
                                    {"actor", actor.name}});
}

// ---------------------------------------------------------------------------
// Node agent RPCs

void FleetService::RegisterNode(const RegisterNodeRequest& req,
                                Done<RegisterNodeResponse> done) {
  if (absl::Status s = ValidateRegister(req); !s.ok()) return done(s);
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_.Now();
    WriteBatch batch;
    NodeRecord rec;
    NodeEntry* found = FindLocked(req.node_id());
    bool known = found != nullptr;
    if (known) {
      if (found->record.node().status() == NODE_STATUS_TERMINATED) {
        return done(absl::FailedPreconditionError(absl::StrCat(
            "node ", req.node_id(),
            " was terminated; a replacement must register under a new id")));
      }
      rec = NextVersion(*found);
    } else {
      rec.set_version(1);
      rec.mutable_node()->set_status(NODE_STATUS_ACTIVE);
      rec.mutable_node()->set_status_reason("registered");
      rec.mutable_node()->set_health_status(HEALTH_STATUS_UNKNOWN);
      *rec.mutable_node()->mutable_registered_at() = ToTimestamp(now);
      *rec.mutable_status_changed_at() = ToTimestamp(now);
    }
    NodeInfo* node = rec.mutable_node();
    node->set_node_id(req.node_id());
    node->set_provider(req.provider());
    node->set_region(req.region());
    node->set_zone(req.zone());
    node->set_instance_type(req.instance_type());
    // gpus and metadata: NodeEntry::cold, below.
    node->set_pool(PoolOf(req.metadata()));
    Event e = NewEvent(
        known ? "node.reregistered" : "node.registered", node, Actor{"node"},
        known ? absl::StrCat("agent registered again; status stays ",
                             ShortName(node->status()))
              : absl::StrCat("registered with ", req.gpus_size(), " GPUs"));
    (*e.mutable_details())["gpus"] = absl::StrCat(req.gpus_size());
    (*e.mutable_details())["provider"] = req.provider();
    (*e.mutable_details())["instance_type"] = req.instance_type();
    batch.events.push_back(std::move(e));

    // The instance this node runs on, if a pool provisioned it (instance id ==
    // node id, as upstream assumes), is now running.
    if (auto inst = instances_.find(req.node_id()); inst != instances_.end()) {
      InstanceState st = inst->second.instance().state();
      if (st == INSTANCE_STATE_PROVISIONING ||
          st == INSTANCE_STATE_PENDING_REGISTRATION) {
        InstanceRecord ir = inst->second;
        ir.set_version(ir.version() + 1);
        ir.mutable_instance()->set_state(INSTANCE_STATE_RUNNING);
        ir.mutable_instance()->set_node_id(req.node_id());
        *ir.mutable_instance()->mutable_ready_at() = ToTimestamp(now);
        ir.mutable_instance()->set_status_message("node registered");
        batch.events.push_back(NewEvent("instance.running", node, Actor{"node"},
                                        "the instance's node registered"));
        batch.instances.push_back(ir);
        inst->second = std::move(ir);
      }
    }

    NodeEntry& entry = known ? *found : InsertLocked(req.node_id());
    SetCold(entry, req.gpus(), &req.metadata());
    entry.vouched = false;  // a new agent vouches for itself
    StageLocked(entry, std::move(rec), batch);
    TouchLocked(entry, now);

    RegisterNodeResponse resp;
    resp.set_success(true);
    resp.set_message("registration successful");
    NodeConfig* config = resp.mutable_config();
    config->set_heartbeat_interval_seconds(static_cast<int32_t>(
        absl::ToInt64Seconds(options_.heartbeat_interval)));
    config->set_health_check_interval_seconds(static_cast<int32_t>(
        absl::ToInt64Seconds(options_.health_check_interval)));
    for (const auto& c : options_.enabled_health_checks)
      config->add_enabled_health_checks(c);
    config->set_commands_ack_supported(true);
    log_.Info(known ? "node re-registered" : "node registered",
              {{"node_id", req.node_id()},
               {"gpus", req.gpus_size()},
               {"status", ShortName(node->status())}});
    pending =
        SubmitLocked(std::move(batch), Reply(std::move(done), std::move(resp)));
  }
  pending->Release();
}

void FleetService::SendHeartbeat(const HeartbeatRequest& req,
                                 Done<HeartbeatResponse> done) {
  if (absl::Status s = ValidateHeartbeat(req); !s.ok()) return done(s);
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(req.node_id());
    if (found == nullptr) return done(NodeNotFound(req.node_id()));
    NodeEntry& entry = *found;
    if (entry.record.node().status() == NODE_STATUS_TERMINATED) {
      return done(absl::FailedPreconditionError(
          absl::StrCat("node ", req.node_id(), " is terminated")));
    }
    // Liveness uses our clock, not the node's: node clocks drift.
    absl::Time now = clock_.Now();
    NodeInfo* node = entry.record.mutable_node();
    *node->mutable_last_heartbeat() = ToTimestamp(now);
    if (req.has_metrics()) SetMetrics(entry, &req.metrics());
    TouchLocked(entry, std::max(entry.alive_at, now));
    if (!entry.heartbeat_dirty) {
      entry.heartbeat_dirty = true;
      dirty_.push_back(req.node_id());
    }
    ++stats_.heartbeats;
  }
  HeartbeatResponse resp;
  resp.set_acknowledged(true);
  done(std::move(resp));
}

bool FleetService::VouchLiveness(absl::string_view node_id, bool vouched) {
  absl::MutexLock lock(&mu_);
  NodeEntry* entry = FindLocked(node_id);
  if (entry == nullptr) return false;
  entry->vouched = vouched;
  TouchLocked(*entry, entry->alive_at);
  return true;
}

void FleetService::ReportHealth(const ReportHealthRequest& req,
                                Done<ReportHealthResponse> done) {
  if (absl::Status s = ValidateReportHealth(req); !s.ok()) return done(s);
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(req.node_id());
    if (found == nullptr) return done(NodeNotFound(req.node_id()));
    NodeEntry& entry = *found;
    const NodeInfo& current = entry.record.node();
    if (current.status() == NODE_STATUS_TERMINATED) {
      return done(absl::FailedPreconditionError(
          absl::StrCat("node ", req.node_id(), " is terminated")));
    }
    absl::Time now = clock_.Now();
    // `current` is the hot part (no gpus, metadata or last metrics): the
    // policy reads only the report, and expanding it on every report would
    // cost the routine path more than the rest of it.
    HealthEvaluation eval = evaluator_.Evaluate(current, req);
    ++stats_.health_reports;
    for (const auto& v : eval.verdicts) {
      const HealthEvent& he = req.events(v.event_index);
      std::string xid;
      if (he.event_type() == HEALTH_EVENT_TYPE_XID) {
        if (auto x = he.metrics().find("xid_code"); x != he.metrics().end())
          xid = x->second;
      }
      ++stats_
            .health_events[absl::StrCat(PolicyName(he.event_type()), "|", xid)];
      if (!v.rule.empty()) ++stats_.rule_matches[v.rule];
    }

    // The common case, a routine clean report that changes nothing but the
    // time of the last check, needs no copy of the record and no write.
    if (eval.verdicts.empty() && eval.errors.empty() &&
        eval.status == current.health_status() &&
        eval.check_status != HEALTH_STATUS_UNHEALTHY &&
        eval.event_status != HEALTH_STATUS_UNHEALTHY &&
        entry.record.consecutive_unhealthy() == 0) {
      ReportHealthResponse resp;
      resp.set_acknowledged(true);
      resp.set_node_status(current.status());
      resp.set_health_status(current.health_status());
      *entry.record.mutable_node()->mutable_last_health_check() =
          ToTimestamp(now);
      pending =
          SubmitLocked(WriteBatch(), Reply(std::move(done), std::move(resp)));
    } else {
      pending =
          ReportHealthChangeLocked(req, entry, eval, now, std::move(done));
    }
  }
  pending->Release();
}

std::shared_ptr<FleetService::PendingCommit>
FleetService::ReportHealthChangeLocked(const ReportHealthRequest& req,
                                       NodeEntry& entry,
                                       const HealthEvaluation& eval,
                                       absl::Time now,
                                       Done<ReportHealthResponse> done) {
  NodeRecord rec = NextVersion(entry);
  NodeInfo* node = rec.mutable_node();
  WriteBatch batch;
  HealthStatus before = node->health_status();
  node->set_health_status(eval.status);
  *node->mutable_last_health_check() = ToTimestamp(now);
  // Checks are measurements: only `unhealthy_after` in a row count. Events
  // are evidence and act at once (below).
  int consecutive = eval.check_status == HEALTH_STATUS_UNHEALTHY
                        ? rec.consecutive_unhealthy() + 1
                        : 0;
  bool counter_changed = consecutive != rec.consecutive_unhealthy();
  rec.set_consecutive_unhealthy(consecutive);
  int threshold = options_.unhealthy_after;
  if (auto t = options_.unhealthy_after_by_pool.find(node->pool());
      t != options_.unhealthy_after_by_pool.end()) {
    threshold = t->second;
  }
  threshold = std::max(threshold, 1);

  for (const auto& v : eval.verdicts) {
    const HealthEvent& he = req.events(v.event_index);
    Event e = NewEvent(
        "health.event", node, Actor{"node"},
        he.message().empty() ? PolicyName(he.event_type()) : he.message());
    auto& d = *e.mutable_details();
    d["event_type"] = PolicyName(he.event_type());
    if (he.system() != HEALTH_WATCH_SYSTEM_UNKNOWN)
      d["system"] = PolicyName(he.system());
    d["gpu_index"] = absl::StrCat(he.gpu_index());
    if (!he.gpu_uuid().empty()) d["gpu_uuid"] = he.gpu_uuid();
    d["rule"] = v.rule;
    d["result"] = ShortName(v.status);
    for (const auto& [k, val] : he.metrics())
      d[absl::StrCat("metric.", k)] = val;
    if (IsSet(he.timestamp())) {
      *e.mutable_time() = he.timestamp();
      d["received_at"] = FormatRfc3339(now);
    }
    batch.events.push_back(std::move(e));
  }
  for (const auto& err : eval.errors) {
    ++stats_.rule_errors[err.rule];
    Event e =
        NewEvent("policy.rule_error", node, Actor{"policy"},
                 absl::StrCat("rule ", err.rule, " failed: ", err.message));
    (*e.mutable_details())["rule"] = err.rule;
    (*e.mutable_details())["error"] = err.message;
    (*e.mutable_details())["event_index"] = absl::StrCat(err.event_index);
    batch.events.push_back(std::move(e));
    log_.Warn("health policy rule failed", {{"node_id", node->node_id()},
                                            {"rule", err.rule},
                                            {"error", err.message}});
  }
  if (before != eval.status) {
    Event e =
        NewEvent("node.health_changed", node, Actor{"policy"},
                 absl::StrCat(ShortName(before), " -> ", ShortName(eval.status),
                              ": ", eval.message));
    (*e.mutable_details())["from"] = HealthStatus_Name(before);
    (*e.mutable_details())["to"] = HealthStatus_Name(eval.status);
    (*e.mutable_details())["decided_by"] = eval.decided_by;
    (*e.mutable_details())["evaluator"] = evaluator_.Name();
    batch.events.push_back(std::move(e));
  }
  std::string why;
  if (eval.event_status == HEALTH_STATUS_UNHEALTHY) {
    why = eval.event_message;
  } else if (consecutive >= threshold) {
    why = absl::StrCat(eval.check_message, " (", consecutive,
                       " unhealthy check results in a row; ",
                       "unhealthy_after ", threshold, ")");
  }
  if (!why.empty()) {
    auto next =
        NextStatus(node->node_id(), node->status(), NodeTrigger::kUnhealthy);
    if (next.ok() && *next != node->status()) {
      ChangeStatusLocked(rec, *next, why, Actor{"policy"}, batch);
      Event& changed = batch.events.back();
      (*changed.mutable_details())["decided_by"] =
          eval.event_status == HEALTH_STATUS_UNHEALTHY ? eval.event_decided_by
                                                       : eval.check_decided_by;
      (*changed.mutable_details())["consecutive_unhealthy_checks"] =
          absl::StrCat(consecutive);
      (*changed.mutable_details())["unhealthy_after"] = absl::StrCat(threshold);
      (*changed.mutable_details())["evaluator"] = evaluator_.Name();
    }
  }

  ReportHealthResponse resp;
  resp.set_acknowledged(true);
  resp.set_node_status(node->status());
  resp.set_health_status(node->health_status());
  if (batch.events.empty() && !counter_changed) {
    // Nothing worth a write: a routine clean report.
    *entry.record.mutable_node()->mutable_last_health_check() =
        ToTimestamp(now);
    return SubmitLocked(WriteBatch(), Reply(std::move(done), std::move(resp)));
  }
  StageLocked(entry, std::move(rec), batch);
  return SubmitLocked(std::move(batch),
                      Reply(std::move(done), std::move(resp)));
}

void FleetService::MarkDeliveredLocked(CommandRecord& c, absl::Time now,
                                       WriteBatch& batch) {
  c.set_state(internal::COMMAND_STATE_DELIVERED);
  c.set_version(c.version() + 1);
  *c.mutable_updated_at() = ToTimestamp(now);
  batch.commands.push_back(c);
  ++stats_.command_outcomes[absl::StrCat(ShortName(c.command().type()),
                                         "|delivered")];
}

void FleetService::GetNodeCommands(const GetNodeCommandsRequest& req,
                                   Done<GetNodeCommandsResponse> done) {
  if (absl::Status s = ValidateId("node_id", req.node_id()); !s.ok())
    return done(s);
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    GetNodeCommandsResponse resp;
    WriteBatch batch;
    NodeEntry* found = FindLocked(req.node_id());
    if (found != nullptr) {
      absl::Time now = clock_.Now();
      for (const auto& id : found->open_commands) {
        CommandRecord& c = commands_[id];
        if (c.state() != internal::COMMAND_STATE_PENDING) continue;
        MarkDeliveredLocked(c, now, batch);
        *resp.add_commands() = c.command();
        Event e = NewEvent(
            "command.delivered", &found->record.node(), Actor{"node"},
            absl::StrCat(ShortName(c.command().type()), " delivered by poll"));
        (*e.mutable_details())["command_id"] = id;
        batch.events.push_back(std::move(e));
      }
    }
    pending =
        SubmitLocked(std::move(batch), Reply(std::move(done), std::move(resp)));
  }
  pending->Release();
}

void FleetService::AckCommand(const AckCommandRequest& req,
                              Done<AckCommandResponse> done) {
  if (absl::Status s = ValidateAckCommand(req); !s.ok()) return done(s);
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    AckCommandResponse resp;
    resp.set_acknowledged(true);
    NodeEntry* found = FindLocked(req.node_id());
    if (found == nullptr) return done(NodeNotFound(req.node_id()));
    auto it = commands_.find(req.command_id());
    if (it == commands_.end() || it->second.node_id() != req.node_id()) {
      // Finished commands leave the index; a repeated ack of one is fine.
      auto stored = store_.GetCommand(req.command_id());
      if (stored.ok() && stored->has_value() &&
          (*stored)->node_id() == req.node_id()) {
        return done(resp);
      }
      return done(absl::NotFoundError(absl::StrCat("command ", req.command_id(),
                                                   " not found for node ",
                                                   req.node_id())));
    }
    CommandRecord c = it->second;
    bool ok = req.outcome() == COMMAND_OUTCOME_SUCCEEDED;
    c.set_state(ok ? internal::COMMAND_STATE_SUCCEEDED
                   : internal::COMMAND_STATE_FAILED);
    c.set_version(c.version() + 1);
    *c.mutable_updated_at() = ToTimestamp(clock_.Now());
    c.set_result_message(req.message());
    ++stats_.command_outcomes[absl::StrCat(ShortName(c.command().type()), "|",
                                           ok ? "succeeded" : "failed")];
    WriteBatch batch;
    Event e = NewEvent(
        ok ? "command.succeeded" : "command.failed", &found->record.node(),
        Actor{"node"},
        absl::StrCat(ShortName(c.command().type()),
                     ok ? " succeeded" : " failed",
                     req.message().empty() ? "" : ": ", req.message()));
    (*e.mutable_details())["command_id"] = req.command_id();
    batch.events.push_back(std::move(e));
    batch.commands.push_back(c);
    auto& open = found->open_commands;
    open.erase(std::remove(open.begin(), open.end(), req.command_id()),
               open.end());
    commands_.erase(it);
    pending =
        SubmitLocked(std::move(batch), Reply(std::move(done), std::move(resp)));
  }
  pending->Release();
}

// ---------------------------------------------------------------------------
// Operator RPCs

void FleetService::IssueCommand(const IssueCommandRequest& req,
                                const Actor& actor,
                                Done<IssueCommandResponse> done) {
  if (absl::Status s = ValidateIssueCommand(req); !s.ok()) return done(s);
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(req.node_id());
    if (found == nullptr) return done(NodeNotFound(req.node_id()));
    NodeEntry& entry = *found;
    const NodeInfo& current = entry.record.node();
    absl::Time now = clock_.Now();
    WriteBatch batch;
    std::string reason;
    if (auto r = req.parameters().find("reason"); r != req.parameters().end())
      reason = r->second;

    std::optional<NodeTrigger> trigger;
    switch (req.command_type()) {
      case NODE_COMMAND_TYPE_CORDON:
        trigger = NodeTrigger::kCordon;
        break;
      case NODE_COMMAND_TYPE_UNCORDON:
        trigger = NodeTrigger::kUncordon;
        break;
      case NODE_COMMAND_TYPE_DRAIN:
        trigger = NodeTrigger::kDrain;
        break;
      default:
        if (current.status() == NODE_STATUS_TERMINATED) {
          return done(absl::FailedPreconditionError(
              absl::StrCat("node ", req.node_id(), " is terminated")));
        }
    }
    NodeRecord rec = NextVersion(entry);
    bool status_changed = false;
    if (trigger) {
      auto next = NextStatus(req.node_id(), current.status(), *trigger);
      if (!next.ok()) return done(next.status());
      if (*next != current.status()) {
        std::string why =
            absl::StrCat(TriggerName(*trigger), " requested by ", actor.name,
                         reason.empty() ? "" : ": ", reason);
        if (current.status() == NODE_STATUS_UNHEALTHY) {
          why = absl::StrCat("operator override of unhealthy status: ", why);
        }
        ChangeStatusLocked(rec, *next, why, actor, batch);
        status_changed = true;
      }
    }
    if (static_cast<int>(entry.open_commands.size()) >=
        options_.max_open_commands_per_node) {
      return done(absl::ResourceExhaustedError(absl::StrCat(
          "node ", req.node_id(), " has ", entry.open_commands.size(),
          " unfinished commands; the limit is ",
          options_.max_open_commands_per_node)));
    }

    CommandRecord c;
    NodeCommand* cmd = c.mutable_command();
    cmd->set_command_id(NewUuid(rng_));
    cmd->set_type(req.command_type());
    *cmd->mutable_parameters() = req.parameters();
    *cmd->mutable_issued_at() = ToTimestamp(now);
    c.set_node_id(req.node_id());
    c.set_issued_by(actor.name);
    c.set_version(1);
    *c.mutable_updated_at() = ToTimestamp(now);
    std::function<void(const NodeCommand&)> deliver;
    if (auto w = watchers_.find(req.node_id()); w != watchers_.end()) {
      deliver = w->second.deliver;
      c.set_state(internal::COMMAND_STATE_DELIVERED);
      ++stats_.command_outcomes[absl::StrCat(ShortName(req.command_type()),
                                             "|delivered")];
    } else {
      c.set_state(internal::COMMAND_STATE_PENDING);
    }
    ++stats_.commands_issued[ShortName(req.command_type())];
    Event e = NewEvent("command.issued", &current, actor,
                       absl::StrCat(ShortName(req.command_type()), " issued",
                                    reason.empty() ? "" : ": ", reason));
    (*e.mutable_details())["command_id"] = cmd->command_id();
    (*e.mutable_details())["type"] = NodeCommandType_Name(req.command_type());
    if (!reason.empty()) (*e.mutable_details())["reason"] = reason;
    batch.events.push_back(std::move(e));
    batch.commands.push_back(c);
    entry.open_commands.push_back(cmd->command_id());
    commands_[cmd->command_id()] = c;
    if (status_changed) StageLocked(entry, std::move(rec), batch);
    IssueCommandResponse resp;
    resp.set_command_id(cmd->command_id());
    *resp.mutable_issued_at() = cmd->issued_at();
    NodeCommand sent = *cmd;
    pending = SubmitLocked(
        std::move(batch),
        [done = std::move(done), resp = std::move(resp),
         deliver = std::move(deliver), sent = std::move(sent)](absl::Status s) {
          if (!s.ok()) return done(s);
          if (deliver) deliver(sent);
          done(resp);
        });
  }
  pending->Release();
}

absl::StatusOr<ListNodesResponse> FleetService::ListNodes(
    const ListNodesRequest& req) {
  if (!NodeStatus_IsValid(req.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown status ", req.status()));
  }
  if (req.page_size() < 0 || req.page_size() > kMaxNodesPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be 1..", kMaxNodesPageSize,
                     " (0: every node in one answer), got ", req.page_size()));
  }
  if (req.page_size() == 0 && !req.page_token().empty()) {
    return absl::InvalidArgumentError("page_token needs a page_size");
  }
  ListNodesResponse resp;
  // The serialized parts are copied under the lock and expanded after it.
  std::vector<std::pair<std::string, std::string>> parts;
  {
    absl::MutexLock lock(&mu_);
    // The token is the last node id of the previous page: the next page
    // starts after it, even if that node was removed since.
    auto it = req.page_token().empty() ? nodes_.begin()
                                       : nodes_.upper_bound(req.page_token());
    for (; it != nodes_.end(); ++it) {
      const NodeInfo& n = it->second.record.node();
      if (!req.provider().empty() && n.provider() != req.provider()) continue;
      if (!req.region().empty() && n.region() != req.region()) continue;
      if (req.status() != NODE_STATUS_UNKNOWN && n.status() != req.status())
        continue;
      if (req.page_size() > 0 && resp.nodes_size() == req.page_size()) {
        resp.set_next_page_token(resp.nodes(resp.nodes_size() - 1).node_id());
        break;
      }
      *resp.add_nodes() = n;
      parts.emplace_back(it->second.cold, it->second.metrics);
    }
  }
  for (int i = 0; i < resp.nodes_size(); ++i)
    Expand(parts[i].first, parts[i].second, resp.mutable_nodes(i));
  return resp;
}

std::vector<NodeSummary> FleetService::ListNodeSummaries() {
  constexpr size_t kChunk = 4096;
  std::vector<NodeSummary> out;
  std::string last;  // the last id copied
  for (bool more = true; more;) {
    absl::MutexLock lock(&mu_);
    if (out.empty()) out.reserve(nodes_.size());
    auto it = out.empty() ? nodes_.begin() : nodes_.upper_bound(last);
    for (size_t n = 0; it != nodes_.end() && n < kChunk; ++it, ++n) {
      const NodeEntry& entry = it->second;
      const NodeInfo& node = entry.record.node();
      NodeSummary& s = out.emplace_back();
      s.node_id = it->first;
      s.pool = node.pool();
      s.provider = node.provider();
      s.status = node.status();
      s.health_status = node.health_status();
      s.status_reason = node.status_reason();
      s.registered_at = FromTimestamp(node.registered_at());
      s.gpu_count = entry.gpu_count;
      s.gpu_utilization = entry.gpu_utilization;
    }
    more = it != nodes_.end();
    if (more) last = out.back().node_id;
  }
  return out;
}

absl::StatusOr<GetNodeResponse> FleetService::GetNode(
    const GetNodeRequest& req) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", req.node_id()));
  GetNodeResponse resp;
  std::string cold, metrics;
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(req.node_id());
    if (found == nullptr) return NodeNotFound(req.node_id());
    *resp.mutable_node() = found->record.node();
    cold = found->cold;
    metrics = found->metrics;
  }
  Expand(cold, metrics, resp.mutable_node());
  return resp;
}

absl::StatusOr<ListInstancesResponse> FleetService::ListInstances(
    const ListInstancesRequest& req) {
  if (!InstanceState_IsValid(req.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown state ", req.state()));
  }
  ListInstancesResponse resp;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, rec] : instances_) {
    const InstanceInfo& i = rec.instance();
    if (!req.provider().empty() && i.provider() != req.provider()) continue;
    if (!req.region().empty() && i.region() != req.region()) continue;
    if (!req.pool_name().empty() && i.pool_name() != req.pool_name()) continue;
    if (req.state() != INSTANCE_STATE_UNKNOWN && i.state() != req.state())
      continue;
    *resp.add_instances() = i;
  }
  return resp;
}

std::vector<InstanceInfo> FleetService::ListUnsettledInstances() {
  std::vector<InstanceInfo> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, rec] : instances_) {
    const InstanceInfo& i = rec.instance();
    if (i.state() == INSTANCE_STATE_PROVISIONING ||
        i.state() == INSTANCE_STATE_PENDING_REGISTRATION ||
        (i.state() == INSTANCE_STATE_FAILED && !i.has_terminated_at())) {
      out.push_back(i);
    }
  }
  return out;
}

std::vector<std::string> FleetService::ListInstanceIds() {
  std::vector<std::string> out;
  absl::MutexLock lock(&mu_);
  out.reserve(instances_.size());
  for (const auto& [id, rec] : instances_) out.push_back(id);
  return out;
}

absl::StatusOr<GetInstanceResponse> FleetService::GetInstance(
    const GetInstanceRequest& req) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("instance_id", req.instance_id()));
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(req.instance_id());
  if (it == instances_.end()) {
    return absl::NotFoundError(
        absl::StrCat("instance ", req.instance_id(), " not found"));
  }
  GetInstanceResponse resp;
  *resp.mutable_instance() = it->second.instance();
  return resp;
}

absl::StatusOr<ListEventsResponse> FleetService::ListEvents(
    const ListEventsRequest& req) {
  EventQuery q;
  if (!req.node_id().empty())
    NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", req.node_id()));
  q.node_id = req.node_id();
  q.pool = req.pool();
  q.kinds.assign(req.kinds().begin(), req.kinds().end());
  if (req.has_since()) q.since = FromTimestamp(req.since());
  if (req.has_until()) q.until = FromTimestamp(req.until());
  if (req.page_size() < 0)
    return absl::InvalidArgumentError("page_size must not be negative");
  q.limit = req.page_size() == 0 ? 100 : std::min(req.page_size(), 1000);
  if (!req.page_token().empty() &&
      !absl::SimpleAtoi(req.page_token(), &q.after_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid page_token \"", req.page_token(), "\""));
  }
  NAVARCH_ASSIGN_OR_RETURN(EventPage page, store_.ListEvents(q));
  ListEventsResponse resp;
  for (auto& e : page.events) *resp.add_events() = std::move(e);
  if (page.more && resp.events_size() > 0) {
    resp.set_next_page_token(
        absl::StrCat(resp.events(resp.events_size() - 1).id()));
  }
  return resp;
}

// ---------------------------------------------------------------------------
// Command streams

absl::StatusOr<uint64_t> FleetService::Watch(
    const std::string& node_id, std::function<void(const NodeCommand&)> deliver,
    std::function<void()> closed) {
  NAVARCH_RETURN_IF_ERROR(ValidateId("node_id", node_id));
  std::function<void()> old_closed;
  std::shared_ptr<PendingCommit> pending;
  uint64_t handle;
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(node_id);
    if (found == nullptr) return NodeNotFound(node_id);
    if (found->record.node().status() == NODE_STATUS_TERMINATED) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", node_id, " is terminated"));
    }
    if (auto w = watchers_.find(node_id); w != watchers_.end()) {
      old_closed = std::move(w->second.closed);
    }
    handle = next_watch_handle_++;
    watchers_[node_id] = Watcher{handle, deliver, std::move(closed)};
    WriteBatch batch;
    std::vector<NodeCommand> backlog;
    absl::Time now = clock_.Now();
    for (const auto& id : found->open_commands) {
      CommandRecord& c = commands_[id];
      if (c.state() == internal::COMMAND_STATE_PENDING) {
        MarkDeliveredLocked(c, now, batch);
      }
      backlog.push_back(c.command());
    }
    pending = SubmitLocked(
        std::move(batch),
        [deliver, backlog = std::move(backlog)](absl::Status s) {
          if (!s.ok())
            return;  // still PENDING in the store; delivered on the next watch
          for (const auto& c : backlog) deliver(c);
        });
  }
  if (old_closed) old_closed();
  pending->Release();
  return handle;
}

void FleetService::Unwatch(const std::string& node_id, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(node_id);
  if (it != watchers_.end() && it->second.handle == handle) watchers_.erase(it);
}

// ---------------------------------------------------------------------------
// Controllers

int FleetService::CheckHeartbeats() {
  std::shared_ptr<PendingCommit> pending;
  int declared = 0;
  {
    absl::MutexLock lock(&mu_);
    absl::Time now = clock_.Now();
    WriteBatch batch;
    // The silent ones, from the dense live_ (not a walk of the index), in
    // id order as the event log has always had them.
    std::vector<NodeEntry*> silent_nodes;
    for (const LiveSlot& slot : live_) {
      if (now - slot.alive_at > options_.heartbeat_timeout)
        silent_nodes.push_back(slot.entry);
    }
    std::sort(silent_nodes.begin(), silent_nodes.end(),
              [](const NodeEntry* a, const NodeEntry* b) {
                return a->record.node().node_id() < b->record.node().node_id();
              });
    for (NodeEntry* e : silent_nodes) {
      NodeEntry& entry = *e;
      absl::Duration silent = now - entry.alive_at;
      NodeRecord rec = NextVersion(entry);
      rec.mutable_node()->set_health_status(HEALTH_STATUS_UNHEALTHY);
      ChangeStatusLocked(
          rec, NODE_STATUS_UNHEALTHY,
          absl::StrCat("no heartbeat for ",
                       FormatGoDuration(absl::Trunc(silent, absl::Seconds(1))),
                       " (timeout ",
                       FormatGoDuration(options_.heartbeat_timeout), ")"),
          Actor{"heartbeat-monitor"}, batch);
      StageLocked(entry, std::move(rec), batch);
      ++declared;
    }
    if (declared == 0) return 0;
    pending = SubmitLocked(std::move(batch), [this](absl::Status s) {
      if (!s.ok())
        log_.Error("heartbeat monitor commit failed", {{"error", s}});
    });
  }
  pending->Release();
  return declared;
}

absl::Status FleetService::FlushHeartbeats() {
  absl::MutexLock flush_lock(&flush_mu_);
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids.swap(dirty_);
  }
  if (ids.empty()) return absl::OkStatus();
  // Copied out a chunk at a time, so RPCs wait for at most one chunk's
  // copies, not for a walk of the whole fleet (p99 under load).
  constexpr size_t kChunk = 512;
  std::vector<HeartbeatUpdate> updates;
  std::vector<std::string> metrics;  // serialized, parsed after the lock
  updates.reserve(ids.size());
  metrics.reserve(ids.size());
  for (size_t start = 0; start < ids.size(); start += kChunk) {
    absl::MutexLock lock(&mu_);
    const size_t end = std::min(ids.size(), start + kChunk);
    for (size_t i = start; i < end; ++i) {
      NodeEntry* found = FindLocked(ids[i]);
      if (found == nullptr || !found->heartbeat_dirty) continue;
      NodeEntry& entry = *found;
      entry.heartbeat_dirty = false;
      const NodeInfo& n = entry.record.node();
      HeartbeatUpdate u;
      u.node_id = ids[i];
      u.last_heartbeat = FromTimestamp(n.last_heartbeat());
      updates.push_back(std::move(u));
      metrics.push_back(entry.metrics);
    }
  }
  if (updates.empty()) return absl::OkStatus();
  for (size_t i = 0; i < updates.size(); ++i) {
    if (metrics[i].empty()) continue;
    NodeInfo m;
    if (m.ParseFromString(metrics[i]))
      updates[i].metrics = std::move(*m.mutable_last_metrics());
  }
  absl::Status s = store_.UpdateHeartbeats(updates);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    for (const auto& u : updates) {
      auto it = nodes_.find(u.node_id);
      if (it == nodes_.end() || it->second.heartbeat_dirty) continue;
      it->second.heartbeat_dirty = true;
      dirty_.push_back(u.node_id);
    }
  }
  return s;
}

void FleetService::UpsertInstance(const InstanceInfo& instance,
                                  const Actor& actor, Done<InstanceInfo> done) {
  if (absl::Status s = ValidateId("instance_id", instance.instance_id());
      !s.ok()) {
    return done(s);
  }
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    InstanceRecord rec;
    auto it = instances_.find(instance.instance_id());
    InstanceState before = INSTANCE_STATE_UNKNOWN;
    if (it != instances_.end()) {
      rec = it->second;
      before = rec.instance().state();
    }
    rec.set_version(rec.version() + 1);
    *rec.mutable_instance() = instance;
    WriteBatch batch;
    if (before != instance.state()) {
      Event e = NewEvent(absl::StrCat("instance.", ShortName(instance.state())),
                         nullptr, actor, instance.status_message());
      e.set_node_id(instance.node_id().empty() ? instance.instance_id()
                                               : instance.node_id());
      e.set_pool(instance.pool_name());
      (*e.mutable_details())["instance_id"] = instance.instance_id();
      batch.events.push_back(std::move(e));
    }
    batch.instances.push_back(rec);
    instances_[instance.instance_id()] = rec;
    pending = SubmitLocked(std::move(batch), Reply(std::move(done), instance));
  }
  pending->Release();
}

void FleetService::MarkTerminated(const std::string& node_id,
                                  const std::string& reason, const Actor& actor,
                                  Done<NodeInfo> done) {
  std::shared_ptr<PendingCommit> pending;
  std::function<void()> closed;
  {
    absl::MutexLock lock(&mu_);
    NodeEntry* found = FindLocked(node_id);
    if (found == nullptr) return done(NodeNotFound(node_id));
    NodeRecord rec = NextVersion(*found);
    WriteBatch batch;
    ChangeStatusLocked(rec, NODE_STATUS_TERMINATED, reason, actor, batch);
    absl::Time now = clock_.Now();
    for (const auto& id : found->open_commands) {
      CommandRecord c = commands_[id];
      c.set_state(internal::COMMAND_STATE_CANCELLED);
      c.set_version(c.version() + 1);
      *c.mutable_updated_at() = ToTimestamp(now);
      c.set_result_message("node terminated");
      batch.commands.push_back(std::move(c));
      commands_.erase(id);
    }
    found->open_commands.clear();
    if (auto w = watchers_.find(node_id); w != watchers_.end()) {
      closed = std::move(w->second.closed);
      watchers_.erase(w);
    }
    StageLocked(*found, std::move(rec), batch);
    NodeInfo result = batch.nodes.back().node();
    Expand(found->cold, found->metrics, &result);
    pending = SubmitLocked(std::move(batch),
                           Reply(std::move(done), std::move(result)));
  }
  if (closed) closed();
  pending->Release();
}

void FleetService::RecordEvent(
    const std::string& kind, const std::string& node_id,
    const std::string& pool, const Actor& actor, const std::string& message,
    const std::map<std::string, std::string>& details, Done<Event> done) {
  if (kind.empty()) return done(absl::InvalidArgumentError("kind is empty"));
  std::shared_ptr<PendingCommit> pending;
  {
    absl::MutexLock lock(&mu_);
    Event e = NewEvent(kind, nullptr, actor, message);
    e.set_node_id(node_id);
    e.set_pool(pool);
    for (const auto& [k, v] : details) (*e.mutable_details())[k] = v;
    WriteBatch batch;
    batch.events.push_back(e);
    pending = SubmitLocked(std::move(batch), Reply(std::move(done), e));
  }
  pending->Release();
}

absl::StatusOr<int64_t> FleetService::PruneHistory(
    const PruneRequest& request) {
  absl::StatusOr<int64_t> pruned = store_.Prune(request);
  if (!pruned.ok()) return pruned;
  absl::MutexLock lock(&mu_);
  // The store's own rule, so the index forgets exactly what it pruned.
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (IsPrunableInstance(it->second, request.instances_before)) {
      it = instances_.erase(it);
    } else {
      ++it;
    }
  }
  return pruned;
}

FleetStats FleetService::stats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

size_t FleetService::node_count() {
  absl::MutexLock lock(&mu_);
  return nodes_.size();
}

}  // namespace navarch
