#include "navarch/fleet/fleet_service.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/ids.h"
#include "navarch/base/status.h"
#include "navarch/fleet/node_state.h"
#include "navarch/fleet/validation.h"
#include "navarch/store/record_util.h"

namespace navarch {

using fleet_internal::CommandBook;
using fleet_internal::ExpandNode;
using fleet_internal::NodeEntry;
using fleet_internal::SetCold;
using fleet_internal::SetMetrics;
using fleet_internal::Watcher;

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

absl::Status Terminated(const std::string& id) {
  return absl::FailedPreconditionError(
      absl::StrCat("node ", id, " is terminated"));
}

std::string PoolOf(const NodeMetadata& metadata) {
  auto it = metadata.labels().find("pool");
  return it == metadata.labels().end() ? "" : it->second;
}

// Checks a page_size and page_token of a list that pages by id.
absl::Status ValidatePage(int page_size, const std::string& page_token, int max,
                          absl::string_view what) {
  if (page_size < 0 || page_size > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be 1..", max, " (0: every ", what,
                     " in one answer), got ", page_size));
  }
  if (page_size == 0 && !page_token.empty()) {
    return absl::InvalidArgumentError("page_token needs a page_size");
  }
  return absl::OkStatus();
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
  const size_t nodes = snap->nodes.size();
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("fleet already started");
    // Liveness restarts with a full grace period: we may have been down.
    index_.Load(std::move(snap->nodes), now);
    for (auto& i : snap->instances)
      instances_[i.instance().instance_id()] = std::move(i);
    for (auto& c : snap->open_commands) {
      bool known = index_.Find(c.node_id()) != nullptr;
      book_.Add(std::move(c), known);
    }
    started_ = true;
  }
  log_.Info(
      "fleet state loaded",
      {{"nodes", static_cast<int64_t>(nodes)},
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
  std::vector<Watcher> ended;
  {
    absl::MutexLock lock(&mu_);
    ended = book_.TakeAllWatchers();
  }
  for (auto& w : ended) {
    if (w.closed) w.closed();
  }
}

bool FleetService::LockHeldForTest() {
  if (!mu_.TryLock()) return true;
  mu_.Unlock();
  return false;
}

template <typename T>
void FleetService::Mutate(
    Done<T> done, absl::FunctionRef<absl::StatusOr<Staged<T>>()> change) {
  std::shared_ptr<PendingCommit> pending;
  // Built in place by `change` (not assigned: heartbeats come here).
  absl::StatusOr<Staged<T>> staged = [&] {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Staged<T>> s = change();
    if (s.ok() && s->effects != nullptr && !s->effects->batch.empty()) {
      Effects<T>& fx = *s->effects;
      pending = SubmitLocked(
          std::move(fx.batch),
          [done = std::move(done), reply = std::move(s->reply),
           on_committed = std::move(fx.on_committed)](absl::Status st) mutable {
            if (!st.ok()) return done(std::move(st));
            if (on_committed) on_committed();
            done(std::move(reply));
          });
    }
    return s;
  }();
  // mu_ is released: from here on callbacks may call back into the fleet.
  if (!staged.ok()) return done(staged.status());
  if (Effects<T>* fx = staged->effects.get(); fx != nullptr) {
    if (fx->on_unlocked) fx->on_unlocked();
    if (pending != nullptr) return pending->Release();
    if (fx->reply_unlocked) return done(fx->reply_unlocked());
    if (fx->on_committed) fx->on_committed();
  }
  done(std::move(staged->reply));
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
    NodeEntry* entry = index_.Find(id);
    if (entry == nullptr) continue;
    if (!stored->has_value()) {
      index_.Erase(id);
    } else {
      index_.Replace(*entry, std::move(**stored));
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

NodeRecord FleetService::NextVersion(const NodeEntry& entry) {
  NodeRecord r = entry.record;
  r.set_version(r.version() + 1);
  return r;
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
  Mutate<RegisterNodeResponse>(
      std::move(done),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return RegisterLocked(req); });
}

absl::StatusOr<FleetService::Staged<RegisterNodeResponse>>
FleetService::RegisterLocked(const RegisterNodeRequest& req) {
  absl::Time now = clock_.Now();
  Staged<RegisterNodeResponse> staged;
  WriteBatch& batch = staged.batch();
  NodeRecord rec;
  NodeEntry* found = index_.Find(req.node_id());
  bool known = found != nullptr;
  if (known) {
    if (found->record.node().status() == NODE_STATUS_TERMINATED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", req.node_id(),
          " was terminated; a replacement must register under a new id"));
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
  // gpus and metadata: the entry's packed parts, below.
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
  InstanceRunningLocked(*node, now, batch);
  log_.Info(known ? "node re-registered" : "node registered",
            {{"node_id", req.node_id()},
             {"gpus", req.gpus_size()},
             {"status", ShortName(node->status())}});

  NodeEntry& entry = known ? *found : index_.Insert(req.node_id());
  SetCold(entry.parts, req.gpus(), &req.metadata());
  index_.SetVouched(entry, false);  // a new agent vouches for itself
  index_.Stage(entry, std::move(rec), batch);
  index_.Touch(entry, now);
  staged.reply = RegisterResponse();
  return staged;
}

void FleetService::InstanceRunningLocked(const NodeInfo& node, absl::Time now,
                                         WriteBatch& batch) {
  auto inst = instances_.find(node.node_id());
  if (inst == instances_.end()) return;
  InstanceState st = inst->second.instance().state();
  if (st != INSTANCE_STATE_PROVISIONING &&
      st != INSTANCE_STATE_PENDING_REGISTRATION) {
    return;
  }
  InstanceRecord ir = inst->second;
  ir.set_version(ir.version() + 1);
  ir.mutable_instance()->set_state(INSTANCE_STATE_RUNNING);
  ir.mutable_instance()->set_node_id(node.node_id());
  *ir.mutable_instance()->mutable_ready_at() = ToTimestamp(now);
  ir.mutable_instance()->set_status_message("node registered");
  batch.events.push_back(NewEvent("instance.running", &node, Actor{"node"},
                                  "the instance's node registered"));
  batch.instances.push_back(ir);
  inst->second = std::move(ir);
}

RegisterNodeResponse FleetService::RegisterResponse() const {
  RegisterNodeResponse resp;
  resp.set_success(true);
  resp.set_message("registration successful");
  NodeConfig* config = resp.mutable_config();
  config->set_heartbeat_interval_seconds(
      static_cast<int32_t>(absl::ToInt64Seconds(options_.heartbeat_interval)));
  config->set_health_check_interval_seconds(static_cast<int32_t>(
      absl::ToInt64Seconds(options_.health_check_interval)));
  for (const auto& c : options_.enabled_health_checks)
    config->add_enabled_health_checks(c);
  config->set_commands_ack_supported(true);
  return resp;
}

void FleetService::SendHeartbeat(const HeartbeatRequest& req,
                                 Done<HeartbeatResponse> done) {
  if (absl::Status s = ValidateHeartbeat(req); !s.ok()) return done(s);
  Mutate<HeartbeatResponse>(std::move(done),
                            [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                              return HeartbeatLocked(req);
                            });
}

absl::StatusOr<FleetService::Staged<HeartbeatResponse>>
FleetService::HeartbeatLocked(const HeartbeatRequest& req) {
  NodeEntry* found = index_.Find(req.node_id());
  if (found == nullptr) return NodeNotFound(req.node_id());
  NodeEntry& entry = *found;
  if (entry.record.node().status() == NODE_STATUS_TERMINATED)
    return Terminated(req.node_id());
  // Liveness uses our clock, not the node's: node clocks drift.
  absl::Time now = clock_.Now();
  NodeInfo* node = entry.record.mutable_node();
  *node->mutable_last_heartbeat() = ToTimestamp(now);
  if (req.has_metrics()) SetMetrics(entry.parts, &req.metrics());
  index_.Touch(entry, std::max(entry.alive_at, now));
  // Liveness data, not state: buffered, written by FlushHeartbeats.
  index_.MarkDirty(entry, req.node_id());
  ++stats_.heartbeats;
  Staged<HeartbeatResponse> staged;
  staged.reply.set_acknowledged(true);
  return staged;
}

bool FleetService::VouchLiveness(absl::string_view node_id, bool vouched) {
  absl::MutexLock lock(&mu_);
  NodeEntry* entry = index_.Find(node_id);
  if (entry == nullptr) return false;
  index_.SetVouched(*entry, vouched);
  return true;
}

void FleetService::ReportHealth(const ReportHealthRequest& req,
                                Done<ReportHealthResponse> done) {
  if (absl::Status s = ValidateReportHealth(req); !s.ok()) return done(s);
  Mutate<ReportHealthResponse>(std::move(done),
                               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                 return ReportHealthLocked(req);
                               });
}

absl::StatusOr<FleetService::Staged<ReportHealthResponse>>
FleetService::ReportHealthLocked(const ReportHealthRequest& req) {
  NodeEntry* found = index_.Find(req.node_id());
  if (found == nullptr) return NodeNotFound(req.node_id());
  NodeEntry& entry = *found;
  const NodeInfo& current = entry.record.node();
  if (current.status() == NODE_STATUS_TERMINATED)
    return Terminated(req.node_id());
  absl::Time now = clock_.Now();
  // `current` is the hot part (no gpus, metadata or last metrics): the
  // policy reads only the report, and expanding it on every report would
  // cost the routine path more than the rest of it.
  HealthEvaluation eval = evaluator_.Evaluate(current, req);
  CountHealthEventsLocked(req, eval);
  // The common case, a routine clean report that changes nothing but the
  // time of the last check, needs no copy of the record and no write.
  if (eval.verdicts.empty() && eval.errors.empty() &&
      eval.status == current.health_status() &&
      eval.check_status != HEALTH_STATUS_UNHEALTHY &&
      eval.event_status != HEALTH_STATUS_UNHEALTHY &&
      entry.record.consecutive_unhealthy() == 0) {
    Staged<ReportHealthResponse> staged;
    staged.reply.set_acknowledged(true);
    staged.reply.set_node_status(current.status());
    staged.reply.set_health_status(current.health_status());
    *entry.record.mutable_node()->mutable_last_health_check() =
        ToTimestamp(now);
    return staged;
  }
  return ReportHealthChangeLocked(req, entry, eval, now);
}

void FleetService::CountHealthEventsLocked(const ReportHealthRequest& req,
                                           const HealthEvaluation& eval) {
  ++stats_.health_reports;
  for (const auto& v : eval.verdicts) {
    const HealthEvent& he = req.events(v.event_index);
    std::string xid;
    if (he.event_type() == HEALTH_EVENT_TYPE_XID) {
      if (auto x = he.metrics().find("xid_code"); x != he.metrics().end())
        xid = x->second;
    }
    ++stats_.health_events[absl::StrCat(PolicyName(he.event_type()), "|", xid)];
    if (!v.rule.empty()) ++stats_.rule_matches[v.rule];
  }
}

FleetService::Staged<ReportHealthResponse>
FleetService::ReportHealthChangeLocked(const ReportHealthRequest& req,
                                       NodeEntry& entry,
                                       const HealthEvaluation& eval,
                                       absl::Time now) {
  NodeRecord rec = NextVersion(entry);
  NodeInfo* node = rec.mutable_node();
  Staged<ReportHealthResponse> staged;
  WriteBatch& batch = staged.batch();
  HealthStatus before = node->health_status();
  node->set_health_status(eval.status);
  *node->mutable_last_health_check() = ToTimestamp(now);
  // Checks are measurements: only `unhealthy_after` in a row count. Events
  // are evidence and act at once (ApplyUnhealthyLocked).
  int consecutive = eval.check_status == HEALTH_STATUS_UNHEALTHY
                        ? rec.consecutive_unhealthy() + 1
                        : 0;
  bool counter_changed = consecutive != rec.consecutive_unhealthy();
  rec.set_consecutive_unhealthy(consecutive);
  AddHealthEventsLocked(req, eval, *node, before, now, batch);
  ApplyUnhealthyLocked(eval, consecutive, rec, batch);

  staged.reply.set_acknowledged(true);
  staged.reply.set_node_status(node->status());
  staged.reply.set_health_status(node->health_status());
  if (batch.events.empty() && !counter_changed) {
    // Nothing worth a write: a routine clean report.
    *entry.record.mutable_node()->mutable_last_health_check() =
        ToTimestamp(now);
    return staged;
  }
  index_.Stage(entry, std::move(rec), batch);
  return staged;
}

void FleetService::AddHealthEventsLocked(const ReportHealthRequest& req,
                                         const HealthEvaluation& eval,
                                         const NodeInfo& node,
                                         HealthStatus before, absl::Time now,
                                         WriteBatch& batch) {
  for (const auto& v : eval.verdicts) {
    const HealthEvent& he = req.events(v.event_index);
    Event e = NewEvent(
        "health.event", &node, Actor{"node"},
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
        NewEvent("policy.rule_error", &node, Actor{"policy"},
                 absl::StrCat("rule ", err.rule, " failed: ", err.message));
    (*e.mutable_details())["rule"] = err.rule;
    (*e.mutable_details())["error"] = err.message;
    (*e.mutable_details())["event_index"] = absl::StrCat(err.event_index);
    batch.events.push_back(std::move(e));
    log_.Warn("health policy rule failed", {{"node_id", node.node_id()},
                                            {"rule", err.rule},
                                            {"error", err.message}});
  }
  if (before != eval.status) {
    Event e =
        NewEvent("node.health_changed", &node, Actor{"policy"},
                 absl::StrCat(ShortName(before), " -> ", ShortName(eval.status),
                              ": ", eval.message));
    (*e.mutable_details())["from"] = HealthStatus_Name(before);
    (*e.mutable_details())["to"] = HealthStatus_Name(eval.status);
    (*e.mutable_details())["decided_by"] = eval.decided_by;
    (*e.mutable_details())["evaluator"] = evaluator_.Name();
    batch.events.push_back(std::move(e));
  }
}

void FleetService::ApplyUnhealthyLocked(const HealthEvaluation& eval,
                                        int consecutive, NodeRecord& rec,
                                        WriteBatch& batch) {
  NodeInfo* node = rec.mutable_node();
  int threshold = options_.unhealthy_after;
  if (auto t = options_.unhealthy_after_by_pool.find(node->pool());
      t != options_.unhealthy_after_by_pool.end()) {
    threshold = t->second;
  }
  threshold = std::max(threshold, 1);
  std::string why;
  if (eval.event_status == HEALTH_STATUS_UNHEALTHY) {
    why = eval.event_message;
  } else if (consecutive >= threshold) {
    why = absl::StrCat(eval.check_message, " (", consecutive,
                       " unhealthy check results in a row; ",
                       "unhealthy_after ", threshold, ")");
  }
  if (why.empty()) return;
  auto next =
      NextStatus(node->node_id(), node->status(), NodeTrigger::kUnhealthy);
  if (!next.ok() || *next == node->status()) return;
  ChangeStatusLocked(rec, *next, why, Actor{"policy"}, batch);
  auto& d = *batch.events.back().mutable_details();
  d["decided_by"] = eval.event_status == HEALTH_STATUS_UNHEALTHY
                        ? eval.event_decided_by
                        : eval.check_decided_by;
  d["consecutive_unhealthy_checks"] = absl::StrCat(consecutive);
  d["unhealthy_after"] = absl::StrCat(threshold);
  d["evaluator"] = evaluator_.Name();
}

void FleetService::MarkDeliveredLocked(CommandRecord& c, absl::Time now,
                                       WriteBatch& batch) {
  CommandBook::MarkDelivered(c, now);
  batch.commands.push_back(c);
  ++stats_.command_outcomes[absl::StrCat(ShortName(c.command().type()),
                                         "|delivered")];
}

void FleetService::GetNodeCommands(const GetNodeCommandsRequest& req,
                                   Done<GetNodeCommandsResponse> done) {
  if (absl::Status s = ValidateId("node_id", req.node_id()); !s.ok())
    return done(s);
  Mutate<GetNodeCommandsResponse>(std::move(done),
                                  [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                    return PollCommandsLocked(req);
                                  });
}

absl::StatusOr<FleetService::Staged<GetNodeCommandsResponse>>
FleetService::PollCommandsLocked(const GetNodeCommandsRequest& req) {
  Staged<GetNodeCommandsResponse> staged;
  NodeEntry* found = index_.Find(req.node_id());
  if (found == nullptr) return staged;  // unknown node: nothing to deliver
  absl::Time now = clock_.Now();
  for (const auto& id : book_.Open(req.node_id())) {
    CommandRecord* c = book_.Find(id);
    if (c == nullptr || c->state() != internal::COMMAND_STATE_PENDING) continue;
    MarkDeliveredLocked(*c, now, staged.batch());
    *staged.reply.add_commands() = c->command();
    Event e = NewEvent(
        "command.delivered", &found->record.node(), Actor{"node"},
        absl::StrCat(ShortName(c->command().type()), " delivered by poll"));
    (*e.mutable_details())["command_id"] = id;
    staged.batch().events.push_back(std::move(e));
  }
  return staged;
}

void FleetService::AckCommand(const AckCommandRequest& req,
                              Done<AckCommandResponse> done) {
  if (absl::Status s = ValidateAckCommand(req); !s.ok()) return done(s);
  Mutate<AckCommandResponse>(
      std::move(done),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return AckLocked(req); });
}

absl::StatusOr<FleetService::Staged<AckCommandResponse>>
FleetService::AckLocked(const AckCommandRequest& req) {
  Staged<AckCommandResponse> staged;
  staged.reply.set_acknowledged(true);
  NodeEntry* found = index_.Find(req.node_id());
  if (found == nullptr) return NodeNotFound(req.node_id());
  CommandRecord* open = book_.Find(req.command_id());
  if (open == nullptr || open->node_id() != req.node_id()) {
    // Finished commands leave the book; a repeated ack of one is fine. The
    // store is read once the fleet lock is released.
    staged.fx().reply_unlocked =
        [this, node_id = req.node_id(), command_id = req.command_id(),
         reply = staged.reply]() -> absl::StatusOr<AckCommandResponse> {
      auto stored = store_.GetCommand(command_id);
      if (stored.ok() && stored->has_value() &&
          (*stored)->node_id() == node_id) {
        return reply;
      }
      return absl::NotFoundError(absl::StrCat("command ", command_id,
                                              " not found for node ", node_id));
    };
    return staged;
  }
  CommandRecord c = *open;
  bool ok = req.outcome() == COMMAND_OUTCOME_SUCCEEDED;
  c.set_state(ok ? internal::COMMAND_STATE_SUCCEEDED
                 : internal::COMMAND_STATE_FAILED);
  c.set_version(c.version() + 1);
  *c.mutable_updated_at() = ToTimestamp(clock_.Now());
  c.set_result_message(req.message());
  ++stats_.command_outcomes[absl::StrCat(ShortName(c.command().type()), "|",
                                         ok ? "succeeded" : "failed")];
  Event e = NewEvent(
      ok ? "command.succeeded" : "command.failed", &found->record.node(),
      Actor{"node"},
      absl::StrCat(ShortName(c.command().type()), ok ? " succeeded" : " failed",
                   req.message().empty() ? "" : ": ", req.message()));
  (*e.mutable_details())["command_id"] = req.command_id();
  staged.batch().events.push_back(std::move(e));
  staged.batch().commands.push_back(std::move(c));
  book_.Finish(req.command_id());
  return staged;
}

// ---------------------------------------------------------------------------
// Operator RPCs

void FleetService::IssueCommand(const IssueCommandRequest& req,
                                const Actor& actor,
                                Done<IssueCommandResponse> done) {
  if (absl::Status s = ValidateIssueCommand(req); !s.ok()) return done(s);
  Mutate<IssueCommandResponse>(std::move(done),
                               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                 return IssueLocked(req, actor);
                               });
}

absl::StatusOr<bool> FleetService::CommandStatusLocked(
    const IssueCommandRequest& req, const Actor& actor, const NodeInfo& current,
    NodeRecord& rec, WriteBatch& batch) {
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
      if (current.status() == NODE_STATUS_TERMINATED)
        return Terminated(req.node_id());
      return false;
  }
  NAVARCH_ASSIGN_OR_RETURN(
      NodeStatus next, NextStatus(req.node_id(), current.status(), *trigger));
  if (next == current.status()) return false;
  std::string reason;
  if (auto r = req.parameters().find("reason"); r != req.parameters().end())
    reason = r->second;
  std::string why =
      absl::StrCat(TriggerName(*trigger), " requested by ", actor.name,
                   reason.empty() ? "" : ": ", reason);
  if (current.status() == NODE_STATUS_UNHEALTHY)
    why = absl::StrCat("operator override of unhealthy status: ", why);
  ChangeStatusLocked(rec, next, why, actor, batch);
  return true;
}

absl::StatusOr<FleetService::Staged<IssueCommandResponse>>
FleetService::IssueLocked(const IssueCommandRequest& req, const Actor& actor) {
  NodeEntry* found = index_.Find(req.node_id());
  if (found == nullptr) return NodeNotFound(req.node_id());
  NodeEntry& entry = *found;
  const NodeInfo& current = entry.record.node();
  absl::Time now = clock_.Now();
  Staged<IssueCommandResponse> staged;
  WriteBatch& batch = staged.batch();
  NodeRecord rec = NextVersion(entry);
  NAVARCH_ASSIGN_OR_RETURN(
      bool status_changed,
      CommandStatusLocked(req, actor, current, rec, batch));
  const size_t open = book_.Open(req.node_id()).size();
  if (static_cast<int>(open) >= options_.max_open_commands_per_node) {
    return absl::ResourceExhaustedError(
        absl::StrCat("node ", req.node_id(), " has ", open,
                     " unfinished commands; the limit is ",
                     options_.max_open_commands_per_node));
  }
  std::string reason;
  if (auto r = req.parameters().find("reason"); r != req.parameters().end())
    reason = r->second;
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
  c.set_state(internal::COMMAND_STATE_PENDING);
  if (const Watcher* w = book_.FindWatcher(req.node_id()); w != nullptr) {
    // Handed to the stream once committed.
    c.set_state(internal::COMMAND_STATE_DELIVERED);
    ++stats_.command_outcomes[absl::StrCat(ShortName(req.command_type()),
                                           "|delivered")];
    staged.fx().on_committed = [deliver = w->deliver, sent = *cmd] {
      deliver(sent);
    };
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
  staged.reply.set_command_id(cmd->command_id());
  *staged.reply.mutable_issued_at() = cmd->issued_at();
  book_.Add(std::move(c));
  if (status_changed) index_.Stage(entry, std::move(rec), batch);
  return staged;
}

absl::StatusOr<ListNodesResponse> FleetService::ListNodes(
    const ListNodesRequest& req) {
  if (!NodeStatus_IsValid(req.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown status ", req.status()));
  }
  NAVARCH_RETURN_IF_ERROR(ValidatePage(req.page_size(), req.page_token(),
                                       kMaxNodesPageSize, "node"));
  ListNodesResponse resp;
  // The serialized parts are copied under the lock and expanded after it.
  std::vector<std::pair<std::string, std::string>> parts;
  {
    absl::MutexLock lock(&mu_);
    // The token is the last node id of the previous page: the next page
    // starts after it, even if that node was removed since.
    auto it = req.page_token().empty() ? index_.begin()
                                       : index_.after(req.page_token());
    for (; it != index_.end(); ++it) {
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
      parts.emplace_back(it->second.parts.cold, it->second.parts.metrics);
    }
  }
  for (int i = 0; i < resp.nodes_size(); ++i)
    ExpandNode(parts[i].first, parts[i].second, resp.mutable_nodes(i));
  return resp;
}

std::vector<NodeSummary> FleetService::ListNodeSummaries() {
  constexpr size_t kChunk = 4096;
  std::vector<NodeSummary> out;
  std::string last;  // the last id copied
  for (bool more = true; more;) {
    absl::MutexLock lock(&mu_);
    if (out.empty()) out.reserve(index_.size());
    auto it = out.empty() ? index_.begin() : index_.after(last);
    for (size_t n = 0; it != index_.end() && n < kChunk; ++it, ++n) {
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
      s.gpu_count = entry.parts.gpu_count;
      s.gpu_utilization = entry.parts.gpu_utilization;
    }
    more = it != index_.end();
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
    NodeEntry* found = index_.Find(req.node_id());
    if (found == nullptr) return NodeNotFound(req.node_id());
    *resp.mutable_node() = found->record.node();
    cold = found->parts.cold;
    metrics = found->parts.metrics;
  }
  ExpandNode(cold, metrics, resp.mutable_node());
  return resp;
}

absl::StatusOr<ListInstancesResponse> FleetService::ListInstances(
    const ListInstancesRequest& req) {
  if (!InstanceState_IsValid(req.state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown state ", req.state()));
  }
  NAVARCH_RETURN_IF_ERROR(ValidatePage(req.page_size(), req.page_token(),
                                       kMaxInstancesPageSize, "instance"));
  ListInstancesResponse resp;
  absl::MutexLock lock(&mu_);
  // The token is the last instance id of the previous page, as ListNodes'.
  auto it = req.page_token().empty() ? instances_.begin()
                                     : instances_.upper_bound(req.page_token());
  for (; it != instances_.end(); ++it) {
    const InstanceInfo& i = it->second.instance();
    if (!req.provider().empty() && i.provider() != req.provider()) continue;
    if (!req.region().empty() && i.region() != req.region()) continue;
    if (!req.pool_name().empty() && i.pool_name() != req.pool_name()) continue;
    if (req.state() != INSTANCE_STATE_UNKNOWN && i.state() != req.state())
      continue;
    if (req.page_size() > 0 && resp.instances_size() == req.page_size()) {
      resp.set_next_page_token(
          resp.instances(resp.instances_size() - 1).instance_id());
      break;
    }
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

std::vector<InstanceInfo> FleetService::FindInstancesByLabel(
    const std::string& key, const std::string& value) {
  std::vector<InstanceInfo> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, rec] : instances_) {
    auto it = rec.instance().labels().find(key);
    if (it != rec.instance().labels().end() && it->second == value) {
      out.push_back(rec.instance());
    }
  }
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
  absl::Status error;
  uint64_t handle = 0;
  // A failed commit leaves the backlog PENDING in the store: it is delivered
  // on the next watch. The handle stands either way.
  Mutate<std::monostate>(
      // Nothing waits for the commit (it may complete after Watch returns,
      // on the store's thread): the change's own error is kept below.
      [](absl::StatusOr<std::monostate>) {},
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto staged =
            WatchLocked(node_id, std::move(deliver), std::move(closed), handle);
        if (!staged.ok()) error = staged.status();
        return staged;
      });
  if (handle == 0) return error;
  return handle;
}

absl::StatusOr<FleetService::Staged<std::monostate>> FleetService::WatchLocked(
    const std::string& node_id, std::function<void(const NodeCommand&)> deliver,
    std::function<void()> closed, uint64_t& handle) {
  NodeEntry* found = index_.Find(node_id);
  if (found == nullptr) return NodeNotFound(node_id);
  if (found->record.node().status() == NODE_STATUS_TERMINATED)
    return Terminated(node_id);
  Staged<std::monostate> staged;
  Watcher replaced;
  handle = book_.Watch(node_id, deliver, std::move(closed), &replaced);
  staged.fx().on_unlocked = std::move(replaced.closed);
  std::vector<NodeCommand> backlog;
  absl::Time now = clock_.Now();
  for (const auto& id : book_.Open(node_id)) {
    CommandRecord* c = book_.Find(id);
    if (c == nullptr) continue;
    if (c->state() == internal::COMMAND_STATE_PENDING)
      MarkDeliveredLocked(*c, now, staged.batch());
    backlog.push_back(c->command());
  }
  staged.fx().on_committed = [deliver = std::move(deliver),
                              backlog = std::move(backlog)] {
    for (const auto& c : backlog) deliver(c);
  };
  return staged;
}

void FleetService::Unwatch(const std::string& node_id, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  book_.Unwatch(node_id, handle);
}

// ---------------------------------------------------------------------------
// Controllers

int FleetService::CheckHeartbeats() {
  int declared = 0;
  Mutate<std::monostate>(
      [this](absl::StatusOr<std::monostate> r) {
        if (!r.ok()) {
          log_.Error("heartbeat monitor commit failed",
                     {{"error", r.status()}});
        }
      },
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return absl::StatusOr<Staged<std::monostate>>(
            CheckHeartbeatsLocked(declared));
      });
  return declared;
}

FleetService::Staged<std::monostate> FleetService::CheckHeartbeatsLocked(
    int& declared) {
  absl::Time now = clock_.Now();
  Staged<std::monostate> staged;
  // The silent ones, from the dense live set (not a walk of the index).
  for (NodeEntry* e : index_.Silent(now, options_.heartbeat_timeout)) {
    NodeEntry& entry = *e;
    absl::Duration silent = now - entry.alive_at;
    NodeRecord rec = NextVersion(entry);
    rec.mutable_node()->set_health_status(HEALTH_STATUS_UNHEALTHY);
    ChangeStatusLocked(
        rec, NODE_STATUS_UNHEALTHY,
        absl::StrCat("no heartbeat for ",
                     FormatGoDuration(absl::Trunc(silent, absl::Seconds(1))),
                     " (timeout ", FormatGoDuration(options_.heartbeat_timeout),
                     ")"),
        Actor{"heartbeat-monitor"}, staged.batch());
    index_.Stage(entry, std::move(rec), staged.batch());
    ++declared;
  }
  return staged;
}

absl::Status FleetService::FlushHeartbeats() {
  absl::MutexLock flush_lock(&flush_mu_);
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids = index_.TakeDirty();
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
      NodeEntry* found = index_.Find(ids[i]);
      if (found == nullptr || !found->heartbeat_dirty) continue;
      found->heartbeat_dirty = false;
      HeartbeatUpdate& u = updates.emplace_back();
      u.node_id = ids[i];
      u.last_heartbeat = FromTimestamp(found->record.node().last_heartbeat());
      metrics.push_back(found->parts.metrics);
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
      NodeEntry* entry = index_.Find(u.node_id);
      if (entry != nullptr) index_.MarkDirty(*entry, u.node_id);
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
  Mutate<InstanceInfo>(
      std::move(done),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
          mu_) -> absl::StatusOr<Staged<InstanceInfo>> {
        Staged<InstanceInfo> staged;
        InstanceRecord& rec = instances_[instance.instance_id()];
        InstanceState before = rec.instance().state();  // new: UNKNOWN
        rec.set_version(rec.version() + 1);
        const bool had_bootstrap = rec.instance().has_bootstrap();
        InstanceBootstrap bootstrap = rec.instance().bootstrap();
        *rec.mutable_instance() = instance;
        if (had_bootstrap) {
          *rec.mutable_instance()->mutable_bootstrap() = std::move(bootstrap);
        } else {
          rec.mutable_instance()->clear_bootstrap();
        }
        if (before != instance.state()) {
          Event e =
              NewEvent(absl::StrCat("instance.", ShortName(instance.state())),
                       nullptr, actor, instance.status_message());
          e.set_node_id(instance.node_id().empty() ? instance.instance_id()
                                                   : instance.node_id());
          e.set_pool(instance.pool_name());
          (*e.mutable_details())["instance_id"] = instance.instance_id();
          staged.batch().events.push_back(std::move(e));
        }
        staged.batch().instances.push_back(rec);
        staged.reply = rec.instance();
        return staged;
      });
}

namespace {

const char* BootstrapEventKind(BootstrapState state) {
  switch (state) {
    case BOOTSTRAP_STATE_RUNNING:
      return "instance.bootstrap_started";
    case BOOTSTRAP_STATE_SUCCEEDED:
      return "instance.bootstrap_succeeded";
    default:
      return "instance.bootstrap_failed";
  }
}

}  // namespace

void FleetService::RecordBootstrap(const std::string& instance_id,
                                   const InstanceBootstrap& bootstrap,
                                   const std::string& pin_host_key,
                                   const Actor& actor,
                                   Done<InstanceInfo> done) {
  if (absl::Status s = ValidateId("instance_id", instance_id); !s.ok()) {
    return done(s);
  }
  Mutate<InstanceInfo>(
      std::move(done),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
          mu_) -> absl::StatusOr<Staged<InstanceInfo>> {
        auto it = instances_.find(instance_id);
        if (it == instances_.end()) {
          return absl::NotFoundError(
              absl::StrCat("instance ", instance_id, " not found"));
        }
        Staged<InstanceInfo> staged;
        InstanceRecord& rec = it->second;
        rec.set_version(rec.version() + 1);
        *rec.mutable_instance()->mutable_bootstrap() = bootstrap;
        if (!pin_host_key.empty() && rec.ssh_host_key().empty()) {
          rec.set_ssh_host_key(pin_host_key);
        }
        const InstanceInfo& inst = rec.instance();
        std::string message =
            bootstrap.state() == BOOTSTRAP_STATE_FAILED
                ? absl::StrCat("bootstrap failed: ", bootstrap.error())
                : absl::StrCat("bootstrap ",
                               bootstrap.state() == BOOTSTRAP_STATE_RUNNING
                                   ? "started on "
                                   : "succeeded on ",
                               bootstrap.host());
        Event e = NewEvent(BootstrapEventKind(bootstrap.state()), nullptr,
                           actor, message);
        e.set_node_id(inst.instance_id());
        e.set_pool(inst.pool_name());
        auto& d = *e.mutable_details();
        d["instance_id"] = inst.instance_id();
        d["host"] = bootstrap.host();
        if (bootstrap.state() != BOOTSTRAP_STATE_RUNNING) {
          d["steps"] = absl::StrCat(bootstrap.steps_size());
        }
        if (!bootstrap.host_key_fingerprint().empty()) {
          d["host_key"] = bootstrap.host_key_fingerprint();
        }
        staged.batch().events.push_back(std::move(e));
        staged.batch().instances.push_back(rec);
        staged.reply = inst;
        return staged;
      });
}

std::string FleetService::PinnedHostKey(const std::string& instance_id) {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(instance_id);
  return it == instances_.end() ? "" : it->second.ssh_host_key();
}

void FleetService::MarkTerminated(const std::string& node_id,
                                  const std::string& reason, const Actor& actor,
                                  Done<NodeInfo> done) {
  Mutate<NodeInfo>(std::move(done), [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return TerminateLocked(node_id, reason, actor);
  });
}

absl::StatusOr<FleetService::Staged<NodeInfo>> FleetService::TerminateLocked(
    const std::string& node_id, const std::string& reason, const Actor& actor) {
  NodeEntry* found = index_.Find(node_id);
  if (found == nullptr) return NodeNotFound(node_id);
  Staged<NodeInfo> staged;
  NodeRecord rec = NextVersion(*found);
  ChangeStatusLocked(rec, NODE_STATUS_TERMINATED, reason, actor,
                     staged.batch());
  for (auto& c : book_.CancelAll(node_id, clock_.Now(), "node terminated"))
    staged.batch().commands.push_back(std::move(c));
  staged.fx().on_unlocked = book_.TakeWatcher(node_id).closed;
  index_.Stage(*found, std::move(rec), staged.batch());
  staged.reply = staged.batch().nodes.back().node();
  ExpandNode(found->parts.cold, found->parts.metrics, &staged.reply);
  return staged;
}

void FleetService::RecordEvent(
    const std::string& kind, const std::string& node_id,
    const std::string& pool, const Actor& actor, const std::string& message,
    const std::map<std::string, std::string>& details, Done<Event> done) {
  if (kind.empty()) return done(absl::InvalidArgumentError("kind is empty"));
  Mutate<Event>(std::move(done), [&]() -> absl::StatusOr<Staged<Event>> {
    Staged<Event> staged;
    Event e = NewEvent(kind, nullptr, actor, message);
    e.set_node_id(node_id);
    e.set_pool(pool);
    for (const auto& [k, v] : details) (*e.mutable_details())[k] = v;
    staged.batch().events.push_back(e);
    staged.reply = std::move(e);
    return staged;
  });
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
  return index_.size();
}

}  // namespace navarch
