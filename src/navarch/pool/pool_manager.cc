#include "navarch/pool/pool_manager.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
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

// Below this a node counts as idle when choosing what to scale down.
constexpr double kIdlePercent = 5.0;

std::string CodeName(const absl::Status& s) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(s.code()));
}

}  // namespace

// Counts every call the pool manager (and its selectors) make to a provider.
class PoolManager::CountingProvider final : public Provider {
 public:
  CountingProvider(Provider& inner, PoolManager& owner)
      : inner_(inner), owner_(owner) {}
  const std::string& name() const override { return inner_.name(); }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override {
    auto r = inner_.Provision(request);
    Count("provision", r.status());
    return r;
  }
  absl::Status Terminate(const std::string& id) override {
    absl::Status s = inner_.Terminate(id);
    // Already gone counts as done, as callers treat it.
    Count("terminate",
          s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s);
    return s;
  }
  absl::StatusOr<std::vector<ProviderInstance>> List() override {
    auto r = inner_.List();
    Count("list", r.status());
    return r;
  }
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override {
    return inner_.ListInstanceTypes();
  }

 private:
  void Count(const char* op, const absl::Status& s) {
    owner_.Count(&PoolCounters::provider_calls,
                 absl::StrCat(inner_.name(), "|", op, "|", CodeName(s)));
  }
  Provider& inner_;
  PoolManager& owner_;
};

PoolManager::PoolManager(FleetService& fleet, const ProviderRegistry& providers,
                         Notifier& notifier, Clock& clock, const Config& config,
                         PoolManagerOptions options)
    : fleet_(fleet),
      providers_(providers),
      notifier_(notifier),
      clock_(clock),
      config_(config),
      options_(std::move(options)) {
  // As FleetService: the injected clock seeds it unless a seed is given. A
  // restart never happens in the same nanosecond as the previous start.
  std::mt19937_64 rng(
      options_.seed != 0
          ? options_.seed
          : static_cast<uint64_t>(absl::ToUnixNanos(clock_.Now())));
  token_nonce_ = absl::StrFormat("%08x", static_cast<uint32_t>(rng()));
}

PoolManager::~PoolManager() = default;

const NodeSummary* PoolManager::NodeIndex::Find(const std::string& id) const {
  auto it = std::lower_bound(
      nodes.begin(), nodes.end(), id,
      [](const NodeSummary& n, const std::string& v) { return n.node_id < v; });
  return it != nodes.end() && it->node_id == id ? &*it : nullptr;
}

void PoolManager::Count(std::map<std::string, int64_t> PoolCounters::*field,
                        const std::string& key) {
  absl::MutexLock lock(&counters_mu_);
  ++(counters_.*field)[key];
}

PoolCounters PoolManager::counters() {
  absl::MutexLock lock(&counters_mu_);
  return counters_;
}

Provider* PoolManager::GetProvider(const std::string& name) {
  auto it = counted_.find(name);
  if (it != counted_.end()) return it->second.get();
  return nullptr;
}

absl::Status PoolManager::Init() {
  // Every configured provider, not only those pools name today: instances
  // may still live at one a pool used before a restart.
  for (Provider* p : providers_.All()) {
    counted_[p->name()] = std::make_unique<CountingProvider>(*p, *this);
  }
  for (const auto& [name, pc] : config_.pools) {
    auto pool = std::make_unique<Pool>();
    pool->config = pc;
    if (pc.autoscaling) pool->autoscaler = MakeAutoscaler(*pc.autoscaling);
    pool->source = MakeMetricsSource(pc.metrics, clock_);
    if (pool->source != nullptr) {
      absl::MutexLock lock(&counters_mu_);
      counters_.metrics_source_errors[name] = 0;
    }
    std::vector<SelectorCandidate> candidates;
    for (const PoolProvider& pp : pc.providers) {
      Provider* p = GetProvider(pp.name);
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

absl::Status PoolManager::Emit(const std::string& kind, const std::string& pool,
                               const std::string& node_id,
                               const std::string& message,
                               std::map<std::string, std::string> details) {
  // Mostly an explanation, not state: callers ignore a failed append,
  // except before a provision call, where the event is the durable intent.
  return Await<Event>([&](auto done) {
           fleet_.RecordEvent(kind, node_id, pool, actor_, message, details,
                              done);
         })
      .status();
}

void PoolManager::Upsert(const InstanceInfo& instance) {
  (void)Await<InstanceInfo>(
      [&](auto done) { fleet_.UpsertInstance(instance, actor_, done); });
}

absl::Status PoolManager::Reconcile() {
  absl::MutexLock tick(&tick_mu_);
  absl::StatusOr<ListInstancesResponse> stored = fleet_.ListInstances({});
  if (!stored.ok()) return stored.status();
  std::map<std::string, InstanceInfo> known;
  for (const InstanceInfo& i : stored->instances()) known[i.instance_id()] = i;

  // Tokens of provision calls recorded before they were made.
  std::map<std::string, std::string> intents;  // token -> pool
  ListEventsRequest q;
  q.add_kinds("pool.provision_requested");
  q.set_page_size(1000);
  while (true) {
    absl::StatusOr<ListEventsResponse> page = fleet_.ListEvents(q);
    if (!page.ok()) return page.status();
    for (const Event& e : page->events()) {
      if (auto t = e.details().find("token"); t != e.details().end()) {
        intents[t->second] = e.pool();
      }
    }
    if (page->next_page_token().empty()) break;
    q.set_page_token(page->next_page_token());
  }

  const absl::Time now = clock_.Now();
  for (const auto& [provider_name, provider] : counted_) {
    absl::StatusOr<std::vector<ProviderInstance>> listed = provider->List();
    if (!listed.ok()) {
      (void)Emit(
          "pool.reconcile_failed", "", "",
          absl::StrCat("cannot list the instances of provider ", provider_name,
                       "; not reconciled: ", listed.status().message()),
          {{"provider", provider_name}});
      continue;
    }
    std::set<std::string> seen;
    for (const ProviderInstance& pi : *listed) {
      if (pi.state == ProviderInstanceState::kTerminated) continue;
      seen.insert(pi.id);
      auto label = [&pi](absl::string_view k) {
        auto it = pi.labels.find(std::string(k));
        return it == pi.labels.end() ? std::string() : it->second;
      };
      const std::string pool = label(kLabelPool);
      if (auto k = known.find(pi.id); k != known.end()) {
        const InstanceInfo& rec = k->second;
        if (rec.has_terminated_at()) {
          // We terminated it, yet it runs: the call was lost or undone.
          Count(&PoolCounters::reconciled, "terminated_again");
          (void)TerminateInstance(rec, rec.state(),
                                  absl::StrCat(rec.status_message(),
                                               "; still running at start-up, "
                                               "terminated again"));
        } else {
          Count(&PoolCounters::reconciled, "adopted");
        }
        continue;
      }
      if (label(kLabelCluster) != options_.cluster ||
          label(kLabelManaged) != "true") {
        continue;  // Not ours: another cluster's, or made by hand.
      }
      auto intent = intents.find(label(kLabelToken));
      if (intent != intents.end() && pools_.contains(intent->second)) {
        InstanceInfo inst;
        inst.set_instance_id(pi.id);
        inst.set_provider(provider_name);
        inst.set_region(pi.region);
        inst.set_zone(pi.zone);
        inst.set_instance_type(pi.instance_type);
        inst.set_pool_name(intent->second);
        inst.set_state(pi.state == ProviderInstanceState::kRunning
                           ? INSTANCE_STATE_PENDING_REGISTRATION
                           : INSTANCE_STATE_PROVISIONING);
        *inst.mutable_created_at() = ToTimestamp(
            pi.created_at == absl::InfinitePast() ? now : pi.created_at);
        inst.set_status_message(
            "adopted at start-up: provisioned before the control plane "
            "stopped, not recorded");
        for (const auto& [k, v] : pi.labels) (*inst.mutable_labels())[k] = v;
        Upsert(inst);
        Count(&PoolCounters::reconciled, "adopted");
        (void)Emit(
            "pool.instance_adopted", intent->second, pi.id,
            absl::StrCat("instance ", pi.id, " of provider ", provider_name,
                         " adopted: its provision request was "
                         "recorded, its answer was not"),
            {{"provider", provider_name}});
        continue;
      }
      if (options_.instance_manager.terminate_unknown) {
        absl::Status s = provider->Terminate(pi.id);
        Count(&PoolCounters::reconciled, "unknown_terminated");
        (void)Emit(
            "pool.unknown_instance", pool, pi.id,
            absl::StrCat(
                "instance ", pi.id, " of provider ", provider_name,
                " carries this cluster's tags but is unknown; ",
                s.ok() ? "terminated"
                       : absl::StrCat("terminating it failed: ", s.message())),
            {{"provider", provider_name}, {"action", "terminate"}});
      } else {
        Count(&PoolCounters::reconciled, "unknown_reported");
        (void)Emit(
            "pool.unknown_instance", pool, pi.id,
            absl::StrCat("instance ", pi.id, " of provider ", provider_name,
                         " carries this cluster's tags but is unknown; "
                         "left running (unknown_instances: report)"),
            {{"provider", provider_name}, {"action", "report"}});
      }
    }
    // Known as live, but the provider no longer has it.
    for (auto& [id, rec] : known) {
      if (rec.provider() != provider_name || seen.contains(id) ||
          rec.has_terminated_at() || rec.state() == INSTANCE_STATE_TERMINATED ||
          rec.state() == INSTANCE_STATE_FAILED) {
        continue;
      }
      rec.set_state(INSTANCE_STATE_FAILED);
      *rec.mutable_terminated_at() = ToTimestamp(now);
      rec.set_status_message("gone at the provider (found at start-up)");
      Upsert(rec);
      Count(&PoolCounters::reconciled, "vanished");
      (void)Emit("pool.instance_vanished", rec.pool_name(), id,
                 absl::StrCat("instance ", id, " of provider ", provider_name,
                              " no longer exists there"),
                 {{"provider", provider_name}});
    }
  }
  return absl::OkStatus();
}

void PoolManager::Tick() {
  absl::MutexLock tick(&tick_mu_);
  // Summaries, not whole records: a pool of 100,000 nodes is ticked in
  // milliseconds, not seconds (issue 8, target 5).
  NodeIndex nodes{fleet_.ListNodeSummaries()};
  // Only the instances a tick may act on; a large pool's RUNNING ones are
  // looked up one by one when a removal needs them.
  std::map<std::string, InstanceInfo> instances;
  for (InstanceInfo& i : fleet_.ListUnsettledInstances()) {
    std::string id = i.instance_id();
    instances.emplace_hint(instances.end(), std::move(id), std::move(i));
  }
  ManageInstances(nodes, instances);
  for (auto& [name, pool] : pools_) TickPool(*pool, nodes, instances);
}

void PoolManager::ManageInstances(
    const NodeIndex& nodes, std::map<std::string, InstanceInfo>& instances) {
  const absl::Time now = clock_.Now();
  std::map<std::string, std::map<std::string, ProviderInstance>> listed;
  for (auto& [id, inst] : instances) {
    // A node registered under this id: the instance is up, whichever of the
    // two records was written first.
    if (const NodeSummary* n = nodes.Find(id);
        n != nullptr && Pending(inst) && n->status != NODE_STATUS_TERMINATED) {
      inst.set_state(INSTANCE_STATE_RUNNING);
      inst.set_node_id(id);
      inst.set_status_message("node registered");
      *inst.mutable_ready_at() = ToTimestamp(now);
      Upsert(inst);
      continue;
    }
    if (inst.state() == INSTANCE_STATE_PROVISIONING) {
      Provider* p = GetProvider(inst.provider());
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
  Provider* p = GetProvider(inst.provider());
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
  // Unique per attempt; the nonce keeps tokens unique across restarts.
  req.idempotency_token =
      absl::StrCat(options_.cluster, "-", pc.name, "-", token_nonce_, "-", seq);
  req.name = absl::StrCat(pc.name, "-", seq);
  req.ssh_keys = pc.ssh_keys;
  req.labels = pc.labels;
  req.labels[std::string(kLabelPool)] = pc.name;
  req.labels[std::string(kLabelCluster)] = options_.cluster;
  req.labels[std::string(kLabelManaged)] = "true";
  req.labels[std::string(kLabelToken)] = req.idempotency_token;
  // The intent is durable before the call: after a crash, Reconcile() adopts
  // an instance carrying this token instead of treating it as a stranger.
  if (absl::Status s =
          Emit("pool.provision_requested", pc.name, "",
               absl::StrCat("requesting an instance for ", purpose),
               {{"token", req.idempotency_token}, {"purpose", purpose}});
      !s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "not provisioning: the request could not be recorded: ", s.message()));
  }
  absl::StatusOr<ProviderInstance> pi = pool.selector->Provision(req);
  if (!pi.ok()) {
    (void)Emit("pool.provision_failed", pc.name, "",
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

void PoolManager::StartRemoval(Pool& pool, const NodeSummary& node,
                               bool replace, const std::string& reason) {
  Removal r;
  r.node_id = node.node_id;
  r.replace = replace;
  r.reason = reason;
  r.deadline = clock_.Now() + pool.config.health.drain_timeout;
  for (NodeCommandType type :
       {NODE_COMMAND_TYPE_CORDON, NODE_COMMAND_TYPE_DRAIN}) {
    IssueCommandRequest req;
    req.set_node_id(node.node_id);
    req.set_command_type(type);
    (*req.mutable_parameters())["reason"] = reason;
    (void)Await<IssueCommandResponse>(
        [&](auto done) { fleet_.IssueCommand(req, actor_, done); });
  }
  // The workload system hears of both commands from the notifier
  // dispatcher, which follows the commits; the drain wait below is bounded
  // by drain_timeout whatever it answers.
  if (replace)
    Count(&PoolCounters::replacements, pool.config.name + "|started");
  (void)Emit(replace ? "pool.replacement_started" : "pool.scale_down_started",
             pool.config.name, node.node_id,
             absl::StrCat(replace ? "replacing" : "removing", " node ",
                          node.node_id, ": ", reason));
  pool.removals[r.node_id] = std::move(r);
}

bool PoolManager::ProgressRemoval(
    Pool& pool, Removal& r, const NodeIndex& nodes,
    std::map<std::string, InstanceInfo>& instances) {
  const NodeSummary* n = nodes.Find(r.node_id);
  if (n == nullptr || n->status == NODE_STATUS_TERMINATED) return true;
  // The replacement comes first, so the pool keeps its capacity.
  if (r.replace && r.replacement_id.empty()) return false;
  const absl::Time now = clock_.Now();
  bool drained = now >= r.deadline || n->gpu_count == 0;
  if (!drained) {
    absl::StatusOr<bool> d = notifier_.IsDrained(r.node_id);
    drained = d.ok() && *d;
  }
  if (!drained) return false;
  std::string how = now >= r.deadline ? "drain timed out" : "drained";
  std::optional<InstanceInfo> instance;
  if (auto it = instances.find(r.node_id); it != instances.end()) {
    instance = it->second;
  } else {
    GetInstanceRequest req;
    req.set_instance_id(r.node_id);
    if (auto got = fleet_.GetInstance(req); got.ok()) {
      instance = std::move(*got->mutable_instance());
    }
  }
  if (instance) {
    absl::Status s =
        TerminateInstance(*instance, INSTANCE_STATE_TERMINATED, r.reason);
    if (!s.ok()) {
      (void)Emit("pool.terminate_failed", pool.config.name, r.node_id,
                 absl::StrCat("terminating ", r.node_id, ": ", s.message()));
      return false;  // Retried next tick.
    }
  }
  absl::StatusOr<NodeInfo> t = Await<NodeInfo>([&](auto done) {
    fleet_.MarkTerminated(r.node_id, absl::StrCat(r.reason, " (", how, ")"),
                          actor_, done);
  });
  if (t.ok() && r.replace) {
    Count(&PoolCounters::replacements, pool.config.name + "|completed");
  }
  return t.ok();
}

void PoolManager::TickPool(Pool& pool, const NodeIndex& nodes,
                           std::map<std::string, InstanceInfo>& instances) {
  const PoolConfig& pc = pool.config;
  const absl::Time now = clock_.Now();
  std::vector<const NodeSummary*> live;
  for (const NodeSummary& n : nodes.nodes) {
    if (n.pool == pc.name && n.status != NODE_STATUS_TERMINATED) {
      live.push_back(&n);
    }
  }
  for (auto it = pool.removals.begin(); it != pool.removals.end();) {
    const NodeSummary* n = nodes.Find(it->first);
    if (n == nullptr || n->status == NODE_STATUS_TERMINATED) {
      it = pool.removals.erase(it);
    } else {
      ++it;
    }
  }

  // --- Replacement of unhealthy nodes, within the safety limits.
  std::vector<const NodeSummary*> unhealthy;
  for (const NodeSummary* n : live) {
    if (n->status == NODE_STATUS_UNHEALTHY) unhealthy.push_back(n);
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
      (void)Emit("pool.breaker_tripped", pc.name, "",
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
      for (const NodeSummary* n : unhealthy) {
        if (replacing >= pc.health.max_concurrent_replacements) break;
        auto existing = pool.removals.find(n->node_id);
        if (existing != pool.removals.end()) {
          if (existing->second.replace) continue;
          // Being scaled down already: nothing to replace.
          continue;
        }
        StartRemoval(pool, *n, /*replace=*/true,
                     absl::StrCat("node unhealthy",
                                  n->status_reason.empty()
                                      ? ""
                                      : absl::StrCat(": ", n->status_reason)));
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
    if (inst.pool_name() == pc.name && Pending(inst) &&
        nodes.Find(id) == nullptr) {
      pending.push_back(&inst);
    }
  }
  int current = 0, healthy = 0, unhealthy_count = 0;
  double util_sum = 0;
  int util_nodes = 0;
  for (const NodeSummary* n : live) {
    auto r = pool.removals.find(n->node_id);
    if (r != pool.removals.end()) {
      // A node being replaced holds its slot until the replacement exists;
      // a node being scaled down has already left.
      if (r->second.replace && r->second.replacement_id.empty()) ++current;
      continue;
    }
    ++current;
    if (n->status == NODE_STATUS_UNHEALTHY) {
      ++unhealthy_count;
      continue;
    }
    ++healthy;
    if (n->gpu_utilization) {
      util_sum += *n->gpu_utilization;
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
  if (util_nodes > 0) state.utilization = util_sum / util_nodes;
  // An external source adds the scheduler's view. When it fails, its
  // signals stay unknown and the autoscalers that need them hold the pool.
  std::optional<std::string> source_error;
  if (pool.source != nullptr) {
    absl::StatusOr<ExternalMetrics> m = pool.source->Fetch();
    if (m.ok()) {
      state.queue_depth = m->queue_depth;
      state.pending_jobs = m->pending_jobs;
      // The source's utilisation, when it gives one, wins over the
      // fleet's (it may weigh jobs, not GPUs).
      if (m->utilization) state.utilization = m->utilization;
    } else {
      source_error = std::string(m.status().message());
      Count(&PoolCounters::metrics_source_errors, pc.name);
    }
    bool was_up;
    {
      absl::MutexLock lock(&mu_);
      was_up = pool.status.metrics_source_up;
      pool.status.metrics_source_up = !source_error.has_value();
      pool.status.metrics_source_error = source_error.value_or("");
      pool.status.queue_depth = state.queue_depth;
      pool.status.pending_jobs = state.pending_jobs;
    }
    // One event per change of state, not one per failing tick.
    if (source_error && was_up) {
      (void)Emit("pool.metrics_source_failed", pc.name, "",
                 absl::StrCat(pool.source->name(),
                              " metrics source failed; "
                              "pool ",
                              pc.name, " holds its size: ", *source_error),
                 {{"source", std::string(pool.source->name())}});
    } else if (!source_error && !was_up) {
      (void)Emit(
          "pool.metrics_source_recovered", pc.name, "",
          absl::StrCat(pool.source->name(), " metrics source answers again"),
          {{"source", std::string(pool.source->name())}});
    }
  }
  if (state.utilization) {
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
    (void)Emit("pool.target_changed", pc.name, "", message,
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
    Count(&PoolCounters::replacements, pc.name + "|provisioned");
    (void)Emit("pool.replacement_provisioned", pc.name, id,
               absl::StrCat("replacement ", *id_or, " provisioned for ", id),
               {{"replacement", *id_or}});
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
    std::vector<const NodeSummary*> candidates;
    const std::vector<std::string> instance_ids = fleet_.ListInstanceIds();
    for (const NodeSummary* n : live) {
      if (!pool.removals.contains(n->node_id) &&
          std::binary_search(instance_ids.begin(), instance_ids.end(),
                             n->node_id)) {
        candidates.push_back(n);
      }
    }
    auto rank = [](const NodeSummary* n) {
      if (n->status == NODE_STATUS_UNHEALTHY) return 0;
      if (n->status == NODE_STATUS_CORDONED ||
          n->status == NODE_STATUS_DRAINING) {
        return 1;
      }
      const std::optional<double>& u = n->gpu_utilization;
      if (!u || *u < kIdlePercent) return 2;
      return 3;
    };
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](const NodeSummary* a, const NodeSummary* b) {
                       if (rank(a) != rank(b)) return rank(a) < rank(b);
                       return a->registered_at > b->registered_at;
                     });
    for (const NodeSummary* n : candidates) {
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
  if (added > 0) Count(&PoolCounters::scaling_actions, pc.name + "|up");
  if (removed > 0) Count(&PoolCounters::scaling_actions, pc.name + "|down");
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
  s.metrics_source =
      pool.source != nullptr ? std::string(pool.source->name()) : "";
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

absl::StatusOr<bool> PoolManager::ResetBreaker(const std::string& name,
                                               const Actor& actor) {
  {
    absl::MutexLock lock(&mu_);
    auto it = pools_.find(name);
    if (it == pools_.end()) {
      return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
    }
    if (!it->second->breaker_open) return false;
    it->second->breaker_open = false;
  }
  (void)Emit("pool.breaker_reset", name, "",
             absl::StrCat("replacement breaker of pool ", name, " reset by ",
                          actor.name));
  return true;
}

}  // namespace navarch
