#include "navarch/pool/pool_manager.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"

namespace navarch {
namespace {

bool Pending(const InstanceInfo& i) {
  return i.state() == INSTANCE_STATE_PROVISIONING ||
         i.state() == INSTANCE_STATE_PENDING_REGISTRATION;
}

// Mean GPU utilisation of a node's latest heartbeat; unset without GPUs.
std::optional<double> NodeUtilization(const NodeInfo& n) {
  const auto& gpus = n.last_metrics().gpu_metrics();
  if (gpus.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& g : gpus) sum += g.utilization_percent();
  return sum / gpus.size();
}

// Below this a node counts as idle when choosing what to scale down.
constexpr double kIdlePercent = 5.0;

}  // namespace

PoolManager::PoolManager(FleetService& fleet, const ProviderRegistry& providers,
                         Notifier& notifier, Clock& clock, const Config& config,
                         PoolManagerOptions options)
    : fleet_(fleet),
      providers_(providers),
      notifier_(notifier),
      clock_(clock),
      config_(config),
      options_(std::move(options)) {}

absl::Status PoolManager::Init() {
  for (const auto& [name, pc] : config_.pools) {
    auto pool = std::make_unique<Pool>();
    pool->config = pc;
    if (pc.autoscaling) pool->autoscaler = MakeAutoscaler(*pc.autoscaling);
    std::vector<SelectorCandidate> candidates;
    for (const PoolProvider& pp : pc.providers) {
      Provider* p = providers_.Get(pp.name);
      if (p == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pool ", name, ": provider ", pp.name, " is not configured"));
      }
      SelectorCandidate c;
      c.provider = p;
      if (auto it = config_.providers.find(pp.name);
          it != config_.providers.end()) {
        c.type = it->second.type;
      }
      c.priority = pp.priority;
      c.weight = pp.weight;
      c.regions = pp.regions;
      c.instance_type = pp.instance_type;
      candidates.push_back(std::move(c));
    }
    SelectorOptions so;
    so.strategy = pc.strategy;
    so.region = pc.region;
    so.instance_type = pc.instance_type;
    so.zones = pc.zones;
    pool->selector = std::make_unique<ProviderSelector>(clock_, std::move(so),
                                                        std::move(candidates));
    pools_[name] = std::move(pool);
  }
  return absl::OkStatus();
}

void PoolManager::Emit(const std::string& kind, const std::string& pool,
                       const std::string& node_id, const std::string& message,
                       std::map<std::string, std::string> details) {
  // The event log is an explanation, not state: a failed append is not
  // worth failing the tick for.
  (void)Await<Event>([&](auto done) {
    fleet_.RecordEvent(kind, node_id, pool, actor_, message, details, done);
  });
}

void PoolManager::Upsert(const InstanceInfo& instance) {
  (void)Await<InstanceInfo>(
      [&](auto done) { fleet_.UpsertInstance(instance, actor_, done); });
}

void PoolManager::Tick() {
  absl::MutexLock tick(&tick_mu_);
  absl::StatusOr<ListNodesResponse> listed = fleet_.ListNodes({});
  absl::StatusOr<ListInstancesResponse> listed_instances =
      fleet_.ListInstances({});
  if (!listed.ok() || !listed_instances.ok()) return;
  std::map<std::string, NodeInfo> nodes;
  for (const NodeInfo& n : listed->nodes()) nodes[n.node_id()] = n;
  std::map<std::string, InstanceInfo> instances;
  for (const InstanceInfo& i : listed_instances->instances()) {
    instances[i.instance_id()] = i;
  }
  ManageInstances(nodes, instances);
  for (auto& [name, pool] : pools_) TickPool(*pool, nodes, instances);
}

void PoolManager::ManageInstances(
    const std::map<std::string, NodeInfo>& nodes,
    std::map<std::string, InstanceInfo>& instances) {
  const absl::Time now = clock_.Now();
  std::map<std::string, std::map<std::string, ProviderInstance>> listed;
  for (auto& [id, inst] : instances) {
    // A node registered under this id: the instance is up, whichever of the
    // two records was written first.
    if (auto n = nodes.find(id); n != nodes.end() && Pending(inst) &&
                                 n->second.status() != NODE_STATUS_TERMINATED) {
      inst.set_state(INSTANCE_STATE_RUNNING);
      inst.set_node_id(id);
      inst.set_status_message("node registered");
      *inst.mutable_ready_at() = ToTimestamp(now);
      Upsert(inst);
      continue;
    }
    if (inst.state() == INSTANCE_STATE_PROVISIONING) {
      Provider* p = providers_.Get(inst.provider());
      if (p != nullptr && !listed.contains(inst.provider())) {
        absl::StatusOr<std::vector<ProviderInstance>> l = p->List();
        auto& m = listed[inst.provider()];
        if (l.ok()) {
          for (auto& pi : *l) m[pi.id] = std::move(pi);
        }
      }
      auto& m = listed[inst.provider()];
      if (auto it = m.find(id);
          it != m.end() &&
          it->second.state == ProviderInstanceState::kRunning) {
        inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
        inst.set_status_message("waiting for node to register");
        Upsert(inst);
      }
    }
    if (Pending(inst) && now - FromTimestamp(inst.created_at()) >
                             options_.instance_manager.registration_timeout) {
      // Upstream marked these FAILED and kept paying for them.
      (void)TerminateInstance(
          inst, INSTANCE_STATE_FAILED,
          absl::StrCat("registration timeout exceeded (",
                       absl::FormatDuration(
                           options_.instance_manager.registration_timeout),
                       ")"));
      inst.set_state(INSTANCE_STATE_FAILED);  // No longer counted as pending.
      continue;
    }
    // A FAILED instance whose termination failed earlier: try again.
    if (inst.state() == INSTANCE_STATE_FAILED && !inst.has_terminated_at() &&
        !inst.provider().empty()) {
      (void)TerminateInstance(inst, INSTANCE_STATE_FAILED,
                              inst.status_message());
    }
  }
}

absl::Status PoolManager::TerminateInstance(InstanceInfo inst,
                                            InstanceState final_state,
                                            const std::string& reason) {
  Provider* p = providers_.Get(inst.provider());
  absl::Status s = p == nullptr
                       ? absl::NotFoundError(absl::StrCat(
                             "provider ", inst.provider(), " not configured"))
                       : p->Terminate(inst.instance_id());
  inst.set_state(final_state);
  if (s.ok() || s.code() == absl::StatusCode::kNotFound) {
    *inst.mutable_terminated_at() = ToTimestamp(clock_.Now());
    inst.set_status_message(final_state == INSTANCE_STATE_FAILED
                                ? absl::StrCat(reason, "; instance terminated")
                                : reason);
    Upsert(inst);
    return absl::OkStatus();
  }
  inst.set_status_message(
      absl::StrCat(reason, "; terminate failed: ", s.message()));
  Upsert(inst);
  return s;
}

absl::StatusOr<std::string> PoolManager::ProvisionOne(
    Pool& pool, const std::string& purpose) {
  const PoolConfig& pc = pool.config;
  ProvisionRequest req;
  const uint64_t seq = ++seq_;
  // Unique per attempt; the clock part keeps tokens unique across restarts.
  req.idempotency_token =
      absl::StrCat(options_.cluster, "-", pc.name, "-",
                   absl::ToUnixMillis(clock_.Now()), "-", seq);
  req.name = absl::StrCat(pc.name, "-", seq);
  req.ssh_keys = pc.ssh_keys;
  req.labels = pc.labels;
  req.labels[std::string(kLabelPool)] = pc.name;
  req.labels[std::string(kLabelCluster)] = options_.cluster;
  req.labels[std::string(kLabelManaged)] = "true";
  absl::StatusOr<ProviderInstance> pi = pool.selector->Provision(req);
  if (!pi.ok()) {
    Emit("pool.provision_failed", pc.name, "",
         absl::StrCat("provisioning for ", purpose,
                      " failed: ", pi.status().message()),
         {{"error_class", std::string(ProviderErrorClassName(
                              ClassifyProviderError(pi.status())))}});
    return pi.status();
  }
  InstanceInfo inst;
  inst.set_instance_id(pi->id);
  inst.set_provider(pi->provider);
  inst.set_region(pi->region);
  inst.set_zone(pi->zone);
  inst.set_instance_type(pi->instance_type);
  inst.set_state(INSTANCE_STATE_PROVISIONING);
  inst.set_pool_name(pc.name);
  *inst.mutable_created_at() = ToTimestamp(clock_.Now());
  inst.set_status_message(absl::StrCat("provisioning (", purpose, ")"));
  for (const auto& [k, v] : pi->labels) (*inst.mutable_labels())[k] = v;
  Upsert(inst);
  if (pi->state == ProviderInstanceState::kRunning) {
    inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
    inst.set_status_message("waiting for node to register");
    Upsert(inst);
  }
  return pi->id;
}

void PoolManager::StartRemoval(Pool& pool, const NodeInfo& node, bool replace,
                               const std::string& reason) {
  Removal r;
  r.node_id = node.node_id();
  r.replace = replace;
  r.reason = reason;
  r.deadline = clock_.Now() + pool.config.health.drain_timeout;
  for (NodeCommandType type :
       {NODE_COMMAND_TYPE_CORDON, NODE_COMMAND_TYPE_DRAIN}) {
    IssueCommandRequest req;
    req.set_node_id(node.node_id());
    req.set_command_type(type);
    (*req.mutable_parameters())["reason"] = reason;
    (void)Await<IssueCommandResponse>(
        [&](auto done) { fleet_.IssueCommand(req, actor_, done); });
  }
  // The workload system hears about it too; a failing notifier is reported
  // and the drain wait (bounded by drain_timeout) still applies.
  absl::Status s = notifier_.Cordon(node.node_id(), reason);
  if (s.ok()) s = notifier_.Drain(node.node_id(), reason);
  if (!s.ok()) {
    Emit("pool.notifier_failed", pool.config.name, node.node_id(),
         absl::StrCat("notifier ", notifier_.name(), ": ", s.message()));
  }
  Emit(replace ? "pool.replacement_started" : "pool.scale_down_started",
       pool.config.name, node.node_id(),
       absl::StrCat(replace ? "replacing" : "removing", " node ",
                    node.node_id(), ": ", reason));
  pool.removals[r.node_id] = std::move(r);
}

bool PoolManager::ProgressRemoval(
    Pool& pool, Removal& r, const std::map<std::string, NodeInfo>& nodes,
    std::map<std::string, InstanceInfo>& instances) {
  auto n = nodes.find(r.node_id);
  if (n == nodes.end() || n->second.status() == NODE_STATUS_TERMINATED) {
    return true;
  }
  // The replacement comes first, so the pool keeps its capacity.
  if (r.replace && r.replacement_id.empty()) return false;
  const absl::Time now = clock_.Now();
  bool drained = now >= r.deadline || n->second.gpus().empty();
  if (!drained) {
    absl::StatusOr<bool> d = notifier_.IsDrained(r.node_id);
    drained = d.ok() && *d;
  }
  if (!drained) return false;
  std::string how = now >= r.deadline ? "drain timed out" : "drained";
  if (auto it = instances.find(r.node_id); it != instances.end()) {
    absl::Status s =
        TerminateInstance(it->second, INSTANCE_STATE_TERMINATED, r.reason);
    if (!s.ok()) {
      Emit("pool.terminate_failed", pool.config.name, r.node_id,
           absl::StrCat("terminating ", r.node_id, ": ", s.message()));
      return false;  // Retried next tick.
    }
  }
  absl::StatusOr<NodeInfo> t = Await<NodeInfo>([&](auto done) {
    fleet_.MarkTerminated(r.node_id, absl::StrCat(r.reason, " (", how, ")"),
                          actor_, done);
  });
  return t.ok();
}

void PoolManager::TickPool(Pool& pool,
                           const std::map<std::string, NodeInfo>& nodes,
                           std::map<std::string, InstanceInfo>& instances) {
  const PoolConfig& pc = pool.config;
  const absl::Time now = clock_.Now();
  std::vector<const NodeInfo*> live;
  for (const auto& [id, n] : nodes) {
    if (n.pool() == pc.name && n.status() != NODE_STATUS_TERMINATED) {
      live.push_back(&n);
    }
  }
  for (auto it = pool.removals.begin(); it != pool.removals.end();) {
    auto n = nodes.find(it->first);
    if (n == nodes.end() || n->second.status() == NODE_STATUS_TERMINATED) {
      it = pool.removals.erase(it);
    } else {
      ++it;
    }
  }

  // --- Replacement of unhealthy nodes, within the safety limits.
  std::vector<const NodeInfo*> unhealthy;
  for (const NodeInfo* n : live) {
    if (n->status() == NODE_STATUS_UNHEALTHY) unhealthy.push_back(n);
  }
  bool breaker_open;
  {
    absl::MutexLock lock(&mu_);
    breaker_open = pool.breaker_open;
  }
  if (pc.health.auto_replace) {
    // One unhealthy node is never "cluster-wide", whatever the pool's size.
    const bool too_many =
        unhealthy.size() >= 2 &&
        unhealthy.size() * 100 >
            static_cast<size_t>(pc.health.max_unhealthy_percent) * live.size();
    if (too_many && !breaker_open) {
      breaker_open = true;
      {
        absl::MutexLock lock(&mu_);
        pool.breaker_open = true;
      }
      Emit("pool.breaker_tripped", pc.name, "",
           absl::StrFormat("%d of %d nodes unhealthy (> %d%%): automatic "
                           "replacement stopped for pool %s until an "
                           "operator resets it",
                           unhealthy.size(), live.size(),
                           pc.health.max_unhealthy_percent, pc.name),
           {{"unhealthy", absl::StrCat(unhealthy.size())},
            {"nodes", absl::StrCat(live.size())}});
    }
    if (!breaker_open) {
      int replacing = 0;
      for (const auto& [id, r] : pool.removals) replacing += r.replace ? 1 : 0;
      for (const NodeInfo* n : unhealthy) {
        if (replacing >= pc.health.max_concurrent_replacements) break;
        auto existing = pool.removals.find(n->node_id());
        if (existing != pool.removals.end()) {
          if (existing->second.replace) continue;
          // Being scaled down already: nothing to replace.
          continue;
        }
        StartRemoval(
            pool, *n, /*replace=*/true,
            absl::StrCat("node unhealthy",
                         n->status_reason().empty()
                             ? ""
                             : absl::StrCat(": ", n->status_reason())));
        ++replacing;
      }
    }
  }

  // --- Count as the autoscaler sees the pool.
  std::set<std::string> replacement_ids;
  for (const auto& [id, r] : pool.removals) {
    if (!r.replacement_id.empty()) replacement_ids.insert(r.replacement_id);
  }
  std::vector<InstanceInfo*> pending;
  for (auto& [id, inst] : instances) {
    if (inst.pool_name() == pc.name && Pending(inst) && !nodes.contains(id)) {
      pending.push_back(&inst);
    }
  }
  int current = 0, healthy = 0, unhealthy_count = 0;
  double util_sum = 0;
  int util_nodes = 0;
  for (const NodeInfo* n : live) {
    auto r = pool.removals.find(n->node_id());
    if (r != pool.removals.end()) {
      // A node being replaced holds its slot until the replacement exists;
      // a node being scaled down has already left.
      if (r->second.replace && r->second.replacement_id.empty()) ++current;
      continue;
    }
    ++current;
    if (n->status() == NODE_STATUS_UNHEALTHY) {
      ++unhealthy_count;
      continue;
    }
    ++healthy;
    if (std::optional<double> u = NodeUtilization(*n)) {
      util_sum += *u;
      ++util_nodes;
    }
  }
  current += pending.size();
  healthy += pending.size();

  PoolState state;
  state.name = pc.name;
  state.current_nodes = current;
  state.healthy_nodes = healthy;
  state.min_nodes = pc.min_nodes;
  state.max_nodes = pc.max_nodes;
  if (util_nodes > 0) {
    state.utilization = util_sum / util_nodes;
    pool.history.push_back({now, *state.utilization});
    if (pool.history.size() > options_.max_history) {
      pool.history.erase(pool.history.begin());
    }
  }
  state.utilization_history = pool.history;
  state.now = now;
  state.time_zone = options_.time_zone;
  state.cooldown = pc.cooldown;

  // --- Decide the target.
  int previous;
  ScaleRecommendation rec;
  {
    absl::MutexLock lock(&mu_);
    state.last_scale_time = pool.last_scale;
    previous = pool.target < 0 ? current : pool.target;
    if (pool.manual_target) {
      rec = {*pool.manual_target,
             absl::StrCat("manual scale by ", pool.manual_actor)};
      pool.manual_target.reset();
    } else if (pool.autoscaler != nullptr) {
      rec = Decide(pool.autoscaler.get(), state);
    } else {
      // Without an autoscaler the pool keeps its (manual) target within
      // [min, max]; upstream never provisioned min_nodes here.
      PoolState fixed = state;
      fixed.current_nodes = previous;
      rec = Decide(nullptr, fixed);
      if (rec.target_nodes == previous) rec.reason = "target unchanged";
    }
  }
  if (rec.target_nodes != previous) {
    const std::string message =
        absl::StrCat(rec.reason, " for pool ", pc.name, ": ", previous, " → ",
                     rec.target_nodes);
    Emit("pool.target_changed", pc.name, "", message,
         {{"from", absl::StrCat(previous)},
          {"to", absl::StrCat(rec.target_nodes)},
          {"reason", rec.reason}});
    absl::MutexLock lock(&mu_);
    pool.last_decision = message;
  }
  const int target = rec.target_nodes;
  {
    absl::MutexLock lock(&mu_);
    pool.target = target;
  }

  // --- Act: replacements first (they ignore cooldown and max), then size.
  // Counted so the status shows the pool after this tick's actions.
  int added = 0, removed = 0, new_pending = 0;
  for (auto& [id, r] : pool.removals) {
    if (!r.replace || !r.replacement_id.empty()) continue;
    absl::StatusOr<std::string> id_or =
        ProvisionOne(pool, absl::StrCat("replacement of ", id));
    if (!id_or.ok()) break;  // The selector backs off; next tick retries.
    r.replacement_id = *id_or;
    ++new_pending;
    Emit("pool.replacement_provisioned", pc.name, id,
         absl::StrCat("replacement ", *id_or, " provisioned for ", id));
  }
  for (int i = current; i < target; ++i) {
    if (!ProvisionOne(pool, "scale up").ok()) break;
    ++added;
    ++new_pending;
  }
  if (current > target) {
    int excess = current - target;
    // Instances that never registered cost nothing to give back.
    std::sort(pending.begin(), pending.end(), [](auto* a, auto* b) {
      return FromTimestamp(a->created_at()) > FromTimestamp(b->created_at());
    });
    for (InstanceInfo* inst : pending) {
      if (excess == 0) break;
      if (replacement_ids.contains(inst->instance_id())) continue;
      if (TerminateInstance(*inst, INSTANCE_STATE_TERMINATED,
                            "scale down before registration")
              .ok()) {
        inst->set_state(INSTANCE_STATE_TERMINATED);
        --excess;
        ++removed;
        --new_pending;
      }
    }
    // Then nodes: unhealthy, cordoned, idle, the rest; newest first within
    // each. Only nodes with an instance we can terminate.
    std::vector<const NodeInfo*> candidates;
    for (const NodeInfo* n : live) {
      if (!pool.removals.contains(n->node_id()) &&
          instances.contains(n->node_id())) {
        candidates.push_back(n);
      }
    }
    auto rank = [](const NodeInfo* n) {
      if (n->status() == NODE_STATUS_UNHEALTHY) return 0;
      if (n->status() == NODE_STATUS_CORDONED ||
          n->status() == NODE_STATUS_DRAINING) {
        return 1;
      }
      std::optional<double> u = NodeUtilization(*n);
      if (!u || *u < kIdlePercent) return 2;
      return 3;
    };
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](const NodeInfo* a, const NodeInfo* b) {
                       if (rank(a) != rank(b)) return rank(a) < rank(b);
                       return FromTimestamp(a->registered_at()) >
                              FromTimestamp(b->registered_at());
                     });
    for (const NodeInfo* n : candidates) {
      if (excess == 0) break;
      StartRemoval(pool, *n, /*replace=*/false,
                   absl::StrCat("scale down to ", target));
      --excess;
      ++removed;
    }
  }
  for (auto it = pool.removals.begin(); it != pool.removals.end();) {
    if (ProgressRemoval(pool, it->second, nodes, instances)) {
      it = pool.removals.erase(it);
    } else {
      ++it;
    }
  }

  absl::MutexLock lock(&mu_);
  // Cooldown runs from the last action taken, not from a decision that
  // could not be carried out (no capacity): that one is retried.
  if (added > 0 || removed > 0) pool.last_scale = now;
  PoolStatus& st = pool.status;
  st.current_nodes = current + added - removed;
  st.healthy_nodes = healthy + added;
  st.pending_instances = static_cast<int>(pending.size()) + new_pending;
  st.unhealthy_nodes =
      unhealthy_count + static_cast<int>(std::count_if(
                            pool.removals.begin(), pool.removals.end(),
                            [](const auto& r) { return r.second.replace; }));
  st.replacing = 0;
  for (const auto& [id, r] : pool.removals) st.replacing += r.replace ? 1 : 0;
  st.utilization = state.utilization;
}

PoolStatus PoolManager::StatusLocked(const Pool& pool) {
  PoolStatus s = pool.status;
  const PoolConfig& pc = pool.config;
  s.name = pc.name;
  s.min_nodes = pc.min_nodes;
  s.max_nodes = pc.max_nodes;
  s.target_nodes = pool.manual_target.value_or(pool.target < 0 ? s.current_nodes
                                                               : pool.target);
  s.strategy = std::string(StrategyName(pc.strategy));
  s.autoscaler = pc.autoscaling
                     ? std::string(AutoscalerTypeName(pc.autoscaling->type))
                     : "";
  s.last_decision = pool.last_decision;
  s.last_scale_time = pool.last_scale;
  PoolState cs;
  cs.now = clock_.Now();
  cs.last_scale_time = pool.last_scale;
  cs.cooldown = pc.cooldown;
  s.cooldown_left = CooldownLeft(cs);
  s.breaker_open = pool.breaker_open;
  return s;
}

std::vector<PoolStatus> PoolManager::ListPools() {
  absl::MutexLock lock(&mu_);
  std::vector<PoolStatus> out;
  for (const auto& [name, pool] : pools_) out.push_back(StatusLocked(*pool));
  return out;
}

absl::StatusOr<PoolStatus> PoolManager::GetPool(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find(name);
  if (it == pools_.end()) {
    return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
  }
  return StatusLocked(*it->second);
}

absl::Status PoolManager::ScalePool(const std::string& name, int target,
                                    const Actor& actor) {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find(name);
  if (it == pools_.end()) {
    return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
  }
  const PoolConfig& pc = it->second->config;
  if (target < pc.min_nodes || target > pc.max_nodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool ", name, ": ", target, " nodes is outside its limits [",
        pc.min_nodes, ", ", pc.max_nodes, "] (min_nodes, max_nodes)"));
  }
  it->second->manual_target = target;
  it->second->manual_actor = actor.name;
  return absl::OkStatus();
}

absl::Status PoolManager::ResetBreaker(const std::string& name,
                                       const Actor& actor) {
  {
    absl::MutexLock lock(&mu_);
    auto it = pools_.find(name);
    if (it == pools_.end()) {
      return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
    }
    if (!it->second->breaker_open) return absl::OkStatus();
    it->second->breaker_open = false;
  }
  Emit("pool.breaker_reset", name, "",
       absl::StrCat("replacement breaker of pool ", name, " reset by ",
                    actor.name));
  return absl::OkStatus();
}

}  // namespace navarch
