#include "navarch/pool/pool_manager.h"

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/file.h"
#include "navarch/base/status.h"
#include "navarch/config/template.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {
namespace {

bool Pending(const InstanceInfo& i) {
  return i.state() == INSTANCE_STATE_PROVISIONING ||
         i.state() == INSTANCE_STATE_PENDING_REGISTRATION;
}

std::string CodeName(const absl::Status& s) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(s.code()));
}

}  // namespace

// What ticks, workers and provider calls share. Held by shared_ptr: a
// provider call abandoned at Stop() may return after the pool manager is
// gone, and then touches only this.
struct PoolManager::Shared {
  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  // Stop() gave up waiting: calls still waited for return CANCELLED.
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  bool grace_over ABSL_GUARDED_BY(mu) = false;
  bool quit ABSL_GUARDED_BY(mu) = false;     // Workers exit.
  bool ticking ABSL_GUARDED_BY(mu) = false;  // Tick()'s instance phase.
  bool ticked ABSL_GUARDED_BY(mu) = false;   // The first Tick() began.
  // Node snapshots begun by Tick(), numbered before each is read.
  uint64_t snapshots ABSL_GUARDED_BY(mu) = 0;
  // Instance phases and pool ticks claimed and not finished.
  int jobs ABSL_GUARDED_BY(mu) = 0;
  // Provider calls running on their own threads.
  int calls ABSL_GUARDED_BY(mu) = 0;
  std::deque<std::function<void()>> queue ABSL_GUARDED_BY(mu);
};

namespace {

// One provider call on a thread of its own; fields under Shared::mu.
template <typename T>
struct CallSlot {
  bool done = false;
  bool expired = false;
  std::optional<T> value;
};

}  // namespace

// Counts every call the pool manager (and its selectors) make to a provider
// and, with threads, runs each on a thread of its own with a deadline, so a
// hung provider costs a pool one tick's worth of waiting, not its thread.
class PoolManager::CountingProvider final : public Provider {
 public:
  CountingProvider(Provider& inner, PoolManager& owner)
      : inner_(inner), owner_(owner) {}
  const std::string& name() const override { return inner_.name(); }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override {
    auto r = Call<absl::StatusOr<ProviderInstance>>(
        [p = &inner_, request] { return p->Provision(request); });
    Count("provision", r.status());
    return r;
  }
  absl::Status Terminate(const std::string& id) override {
    absl::Status s =
        Call<absl::Status>([p = &inner_, id] { return p->Terminate(id); });
    // Already gone counts as done, as callers treat it.
    Count("terminate",
          s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s);
    return s;
  }
  absl::StatusOr<std::vector<ProviderInstance>> List() override {
    auto r = Call<absl::StatusOr<std::vector<ProviderInstance>>>(
        [p = &inner_] { return p->List(); });
    Count("list", r.status());
    return r;
  }
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override {
    return inner_.ListInstanceTypes();
  }

 private:
  // The call runs on its own thread, which holds only `shared` and the
  // provider; the caller waits for it, its deadline or Stop() giving up.
  template <typename T>
  T Call(std::function<T()> fn) {
    if (!owner_.options_.threads) return fn();
    std::shared_ptr<Shared> shared = owner_.shared_;
    auto slot = std::make_shared<CallSlot<T>>();
    {
      absl::MutexLock lock(&shared->mu);
      if (shared->abandoned) return T(absl::CancelledError("stopping"));
      ++shared->calls;
    }
    std::thread([shared, slot, fn = std::move(fn)] {
      T r = fn();
      absl::MutexLock lock(&shared->mu);
      slot->value = std::move(r);
      slot->done = true;
      --shared->calls;
    }).detach();
    const TimerId timer = owner_.clock_.Schedule(
        owner_.options_.provider_call_timeout, [shared, slot] {
          absl::MutexLock lock(&shared->mu);
          slot->expired = true;
        });
    std::pair<Shared*, CallSlot<T>*> waited{shared.get(), slot.get()};
    absl::MutexLock lock(&shared->mu);
    shared->mu.Await(absl::Condition(
        +[](std::pair<Shared*, CallSlot<T>*>* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
             a->first->mu) {
          return a->second->done || a->second->expired || a->first->abandoned;
        },
        &waited));
    owner_.clock_.Cancel(timer);
    if (slot->done) return std::move(*slot->value);
    if (shared->abandoned) {
      return T(absl::CancelledError(absl::StrCat(
          "provider ", inner_.name(), ": call abandoned at shutdown")));
    }
    return T(absl::DeadlineExceededError(absl::StrCat(
        "provider ", inner_.name(), ": no answer within ",
        absl::FormatDuration(owner_.options_.provider_call_timeout))));
  }
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
      options_(std::move(options)),
      shared_(std::make_shared<Shared>()) {
  // As FleetService: the injected clock seeds it unless a seed is given. A
  // restart never happens in the same nanosecond as the previous start.
  std::mt19937_64 rng(
      options_.seed != 0
          ? options_.seed
          : static_cast<uint64_t>(absl::ToUnixNanos(clock_.Now())));
  token_nonce_ = absl::StrFormat("%08x", static_cast<uint32_t>(rng()));
}

PoolManager::~PoolManager() { Stop(absl::ZeroDuration()); }

void PoolManager::Count(std::map<std::string, int64_t> PoolCounters::*field,
                        const std::string& key) {
  absl::MutexLock lock(&counters_mu_);
  ++(counters_.*field)[key];
}

PoolCounters PoolManager::counters() {
  absl::MutexLock lock(&counters_mu_);
  return counters_;
}

int PoolManager::provider_calls_in_flight() {
  absl::MutexLock lock(&shared_->mu);
  return shared_->calls;
}

void PoolManager::AwaitNoProviderCalls() {
  absl::MutexLock lock(&shared_->mu);
  shared_->mu.Await(absl::Condition(
      +[](Shared* s)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->calls == 0; },
      shared_.get()));
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
  // A pool that cannot be managed does not stop the others.
  std::vector<std::string> errors;
  for (const auto& [name, pc] : config_.pools) {
    absl::StatusOr<std::unique_ptr<Pool>> pool = MakePool(pc);
    if (!pool.ok()) {
      errors.push_back(std::string(pool.status().message()));
      continue;
    }
    pools_[name] = *std::move(pool);
  }
  StartBootstrapper();
  // One worker per pool: a pool has at most one tick queued or running, so
  // a pool whose provider hangs never holds up another's tick.
  if (options_.threads && workers_.empty()) {
    for (size_t i = 0; i < std::max<size_t>(pools_.size(), 1); ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PoolManager::Pool>> PoolManager::MakePool(
    const PoolConfig& pc) {
  const std::string& name = pc.name;
  auto pool = std::make_unique<Pool>();
  pool->config = pc;
  // A provider that could not be built (no key, a type not built yet) is
  // left out; the pool fails over among the others.
  std::vector<SelectorCandidate> candidates;
  std::vector<std::string> missing;
  for (const PoolProvider& pp : pc.providers) {
    Provider* p = GetProvider(pp.name);
    if (p == nullptr) {
      missing.push_back(pp.name);
      continue;
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
  if (candidates.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool ", name, ": provider", missing.size() > 1 ? "s " : " ",
        absl::StrJoin(missing, ", "), " not available"));
  }
  if (!missing.empty()) {
    options_.log.Warn(
        "pool runs without providers that are not available",
        {{"pool", name}, {"providers", absl::StrJoin(missing, ",")}});
  }
  SelectorOptions so;
  so.strategy = pc.strategy;
  so.region = pc.region;
  so.instance_type = pc.instance_type;
  so.zones = pc.zones;
  pool->selector = std::make_unique<ProviderSelector>(clock_, std::move(so),
                                                      std::move(candidates));
  NAVARCH_RETURN_IF_ERROR(LoadUserData(*pool));
  if (!pc.file_uploads.empty()) {
    options_.log.Warn(
        "file_uploads are not copied yet: copy files from a setup command",
        {{"pool", name}});
  }
  if (pc.autoscaling) pool->autoscaler = MakeAutoscaler(*pc.autoscaling);
  pool->source = MakeMetricsSource(pc.metrics, clock_,
                                   options_.log.With({{"pool", name}}));
  if (pool->source != nullptr) {
    absl::MutexLock lock(&counters_mu_);
    counters_.metrics_source_errors[name] = 0;
  }
  return pool;
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

// --- Start-up reconciliation.

absl::StatusOr<PoolManager::History> PoolManager::ReadHistory() {
  constexpr absl::string_view kReplacementOf = "replacement of ";
  History h;
  ListEventsRequest q;
  for (const char* kind :
       {"pool.provision_requested", "pool.replacement_started",
        "pool.scale_down_started", "pool.replacement_provisioned"}) {
    q.add_kinds(kind);
  }
  q.set_page_size(1000);
  auto detail = [](const Event& e, const char* key) {
    auto it = e.details().find(key);
    return it == e.details().end() ? std::string() : it->second;
  };
  while (true) {
    absl::StatusOr<ListEventsResponse> page = fleet_.ListEvents(q);
    if (!page.ok()) return page.status();
    for (const Event& e : page->events()) {  // oldest first
      const std::string token = detail(e, "token");
      const std::string purpose = detail(e, "purpose");
      if (e.kind() == "pool.provision_requested" && !token.empty()) {
        h.intents[token] = e.pool();
        if (absl::StartsWith(purpose, kReplacementOf)) {
          h.replacing[token] = purpose.substr(kReplacementOf.size());
        }
      } else if (e.kind() == "pool.replacement_provisioned") {
        auto it = h.removals.find(e.node_id());
        if (it != h.removals.end()) {
          it->second.second.replacement_id = detail(e, "replacement");
        }
      } else if (!e.node_id().empty()) {
        PoolRemoval r;
        r.node_id = e.node_id();
        r.replace = e.kind() == "pool.replacement_started";
        // "replacing node N: <reason>", as StartRemoval wrote it.
        const size_t colon = e.message().find(": ");
        r.reason = colon == std::string::npos ? e.message()
                                              : e.message().substr(colon + 2);
        h.removals[e.node_id()] = {e.pool(), std::move(r)};
      }
    }
    if (page->next_page_token().empty()) break;
    q.set_page_token(page->next_page_token());
  }
  return h;
}

void PoolManager::ResumeRemovals(const History& history) {
  // Instances bought for a replacement whose answer was not recorded were
  // adopted by their token just now: link them to the node they replace.
  std::map<std::string, std::string> bought;  // node -> instance
  if (absl::StatusOr<ListInstancesResponse> stored = fleet_.ListInstances({});
      stored.ok()) {
    for (const InstanceInfo& i : stored->instances()) {
      auto token = i.labels().find(std::string(kLabelToken));
      if (i.has_terminated_at() || token == i.labels().end()) continue;
      auto node = history.replacing.find(token->second);
      if (node != history.replacing.end())
        bought[node->second] = i.instance_id();
    }
  }
  for (const auto& [node_id, entry] : history.removals) {
    auto pool = pools_.find(entry.first);
    if (pool == pools_.end()) continue;
    GetNodeRequest req;
    req.set_node_id(node_id);
    absl::StatusOr<GetNodeResponse> node = fleet_.GetNode(req);
    if (!node.ok() || node->node().status() == NODE_STATUS_TERMINATED) continue;
    PoolRemoval r = entry.second;
    r.deadline = clock_.Now() + pool->second->config.health.drain_timeout;
    if (auto b = bought.find(node_id);
        r.replace && r.replacement_id.empty() && b != bought.end()) {
      r.replacement_id = b->second;
    }
    (void)Emit("pool.removal_resumed", entry.first, node_id,
               absl::StrCat(
                   r.replace ? "replacement" : "removal", " of ", node_id,
                   " resumed after a restart",
                   r.replacement_id.empty()
                       ? ""
                       : absl::StrCat(" (replacement ", r.replacement_id, ")")),
               {{"replacement", r.replacement_id}});
    pool->second->removals[node_id] = std::move(r);
  }
}

absl::Status PoolManager::Reconcile() {
  absl::StatusOr<ListInstancesResponse> stored = fleet_.ListInstances({});
  if (!stored.ok()) return stored.status();
  std::map<std::string, InstanceInfo> known;
  for (const InstanceInfo& i : stored->instances()) known[i.instance_id()] = i;
  // Tokens of provision calls recorded before they were made, and the
  // removals under way.
  absl::StatusOr<History> history = ReadHistory();
  if (!history.ok()) return history.status();
  for (const auto& [provider_name, provider] : counted_) {
    ReconcileProvider(provider_name, *provider, known, history->intents);
  }
  ResumeRemovals(*history);
  return absl::OkStatus();
}

void PoolManager::ReconcileProvider(
    const std::string& provider_name, Provider& provider,
    std::map<std::string, InstanceInfo>& known,
    const std::map<std::string, std::string>& intents) {
  absl::StatusOr<std::vector<ProviderInstance>> listed = provider.List();
  if (!listed.ok()) {
    (void)Emit(
        "pool.reconcile_failed", "", "",
        absl::StrCat("cannot list the instances of provider ", provider_name,
                     "; not reconciled: ", listed.status().message()),
        {{"provider", provider_name}});
    return;
  }
  std::set<std::string> seen;
  for (const ProviderInstance& pi : *listed) {
    if (pi.state == ProviderInstanceState::kTerminated) continue;
    seen.insert(pi.id);
    ReconcileListed(provider_name, provider, pi, known, intents);
  }
  MarkVanished(provider_name, known, seen);
}

void PoolManager::ReconcileListed(
    const std::string& provider_name, Provider& provider,
    const ProviderInstance& pi,
    const std::map<std::string, InstanceInfo>& known,
    const std::map<std::string, std::string>& intents) {
  auto label = [&pi](absl::string_view k) {
    auto it = pi.labels.find(std::string(k));
    return it == pi.labels.end() ? std::string() : it->second;
  };
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
    return;
  }
  if (label(kLabelCluster) != options_.cluster ||
      label(kLabelManaged) != "true") {
    return;  // Not ours: another cluster's, or made by hand.
  }
  auto intent = intents.find(label(kLabelToken));
  if (intent != intents.end() && pools_.contains(intent->second)) {
    AdoptInstance(provider_name, pi, intent->second);
  } else {
    HandleUnknown(provider_name, provider, pi);
  }
}

void PoolManager::AdoptInstance(const std::string& provider_name,
                                const ProviderInstance& pi,
                                const std::string& pool) {
  InstanceInfo inst;
  inst.set_instance_id(pi.id);
  inst.set_provider(provider_name);
  inst.set_region(pi.region);
  inst.set_zone(pi.zone);
  inst.set_instance_type(pi.instance_type);
  inst.set_pool_name(pool);
  inst.set_state(pi.state == ProviderInstanceState::kRunning
                     ? INSTANCE_STATE_PENDING_REGISTRATION
                     : INSTANCE_STATE_PROVISIONING);
  *inst.mutable_created_at() = ToTimestamp(
      pi.created_at == absl::InfinitePast() ? clock_.Now() : pi.created_at);
  inst.set_status_message(
      "adopted at start-up: provisioned before the control plane "
      "stopped, not recorded");
  for (const auto& [k, v] : pi.labels) (*inst.mutable_labels())[k] = v;
  Upsert(inst);
  Count(&PoolCounters::reconciled, "adopted");
  (void)Emit("pool.instance_adopted", pool, pi.id,
             absl::StrCat("instance ", pi.id, " of provider ", provider_name,
                          " adopted: its provision request was "
                          "recorded, its answer was not"),
             {{"provider", provider_name}});
}

void PoolManager::HandleUnknown(const std::string& provider_name,
                                Provider& provider,
                                const ProviderInstance& pi) {
  auto it = pi.labels.find(std::string(kLabelPool));
  const std::string pool = it == pi.labels.end() ? "" : it->second;
  if (options_.instance_manager.terminate_unknown) {
    absl::Status s = provider.Terminate(pi.id);
    Count(&PoolCounters::reconciled, "unknown_terminated");
    (void)Emit("pool.unknown_instance", pool, pi.id,
               absl::StrCat("instance ", pi.id, " of provider ", provider_name,
                            " carries this cluster's tags but is unknown; ",
                            s.ok() ? "terminated"
                                   : absl::StrCat("terminating it failed: ",
                                                  s.message())),
               {{"provider", provider_name}, {"action", "terminate"}});
    return;
  }
  Count(&PoolCounters::reconciled, "unknown_reported");
  (void)Emit("pool.unknown_instance", pool, pi.id,
             absl::StrCat("instance ", pi.id, " of provider ", provider_name,
                          " carries this cluster's tags but is unknown; "
                          "left running (unknown_instances: report)"),
             {{"provider", provider_name}, {"action", "report"}});
}

// Known as live, but the provider no longer has it.
void PoolManager::MarkVanished(const std::string& provider_name,
                               std::map<std::string, InstanceInfo>& known,
                               const std::set<std::string>& seen) {
  const absl::Time now = clock_.Now();
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
    TerminateVanishedNode(rec.node_id().empty() ? id : rec.node_id());
  }
}

// A node whose machine is gone would otherwise count as healthy until its
// heartbeats time out, and then all of them at once trip the breaker, which
// trips again after every reset (issue 15): the node ends with its
// instance, so the pool provisions back to its target.
void PoolManager::TerminateVanishedNode(const std::string& node_id) {
  GetNodeRequest req;
  req.set_node_id(node_id);
  absl::StatusOr<GetNodeResponse> node = fleet_.GetNode(req);
  if (!node.ok() || node->node().status() == NODE_STATUS_TERMINATED) return;
  (void)Await<NodeInfo>([&](auto done) {
    fleet_.MarkTerminated(node_id,
                          "its instance is gone at the provider (found at "
                          "start-up)",
                          actor_, done);
  });
}

// --- Ticks and where they run.

void PoolManager::Tick() {
  bool first = false;
  uint64_t snapshot = 0;
  {
    absl::MutexLock lock(&shared_->mu);
    // A second caller while the instance phase runs has nothing to add.
    if (shared_->stopping || shared_->ticking) return;
    shared_->ticking = true;
    first = !shared_->ticked;
    shared_->ticked = true;
    ++shared_->jobs;
    snapshot = ++shared_->snapshots;
  }
  // Summaries, not whole records: a pool of 100,000 nodes is ticked in
  // milliseconds, not seconds (issue 8, target 5). Shared with the pool
  // ticks, which may outlive this call.
  auto nodes =
      std::make_shared<const NodeIndex>(NodeIndex{fleet_.ListNodeSummaries()});
  // Only the instances a tick may act on; a large pool's RUNNING ones are
  // looked up one by one when a removal needs them.
  InstanceMap instances;
  for (InstanceInfo& i : fleet_.ListUnsettledInstances()) {
    std::string id = i.instance_id();
    instances.emplace_hint(instances.end(), std::move(id), std::move(i));
  }
  ManageInstances(*nodes, instances);
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->ticking = false;
    --shared_->jobs;
  }
  for (auto& [name, pool_ptr] : pools_) {
    Pool& pool = *pool_ptr;
    if (!Claim(pool, snapshot)) continue;
    // The pool's own instances: its tick may run beside the next one's
    // instance phase, so it gets a copy.
    InstanceMap own;
    for (const auto& [id, inst] : instances) {
      if (inst.pool_name() == name) own.emplace_hint(own.end(), id, inst);
    }
    Submit([this, &pool, nodes, own = std::move(own)]() mutable {
      TickPool(pool, *nodes, own);
      {
        absl::MutexLock shared_lock(&shared_->mu);
        absl::MutexLock lock(&pool.mu);
        pool.busy = false;
        pool.stale_through = shared_->snapshots;
      }
      if (options_.on_pool_ticked) options_.on_pool_ticked(pool.config.name);
      absl::MutexLock lock(&shared_->mu);
      --shared_->jobs;
    });
  }
  if (first && options_.threads)
    (void)AwaitIdle(options_.first_tick_wait, false);
}

bool PoolManager::Claim(Pool& pool, uint64_t snapshot) {
  absl::MutexLock shared_lock(&shared_->mu);
  if (shared_->stopping) return false;
  absl::MutexLock lock(&pool.mu);
  if (pool.busy) return false;  // Its previous tick still runs.
  // The nodes were read while its previous tick ran, so they may predate
  // what that tick did: a node it replaced and terminated would look
  // unhealthy and unclaimed, and be replaced twice. The next Tick() reads
  // them again.
  if (snapshot <= pool.stale_through) return false;
  pool.busy = true;
  ++shared_->jobs;
  return true;
}

void PoolManager::Submit(std::function<void()> job) {
  if (!options_.threads) {
    job();
    return;
  }
  absl::MutexLock lock(&shared_->mu);
  shared_->queue.push_back(std::move(job));
}

void PoolManager::WorkerLoop() {
  while (true) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->mu.Await(absl::Condition(
          +[](Shared* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
            return s->quit || !s->queue.empty();
          },
          shared_.get()));
      if (shared_->queue.empty()) return;  // quit, nothing left
      job = std::move(shared_->queue.front());
      shared_->queue.pop_front();
    }
    job();
  }
}

bool PoolManager::AwaitIdle(absl::Duration limit, bool with_calls) {
  std::shared_ptr<Shared> shared = shared_;
  // Set under shared->mu once `limit` has passed on the clock.
  auto over = std::make_shared<bool>(limit <= absl::ZeroDuration());
  TimerId timer = 0;
  if (!*over && limit != absl::InfiniteDuration()) {
    timer = clock_.Schedule(limit, [shared, over] {
      absl::MutexLock lock(&shared->mu);
      *over = true;
    });
  }
  struct Args {
    Shared* shared;
    const bool* over;
    bool with_calls;
  } args{shared.get(), over.get(), with_calls};
  bool idle;
  {
    absl::MutexLock lock(&shared->mu);
    shared->mu.Await(absl::Condition(
        +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->shared->mu) {
          return *a->over || (a->shared->jobs == 0 &&
                              (!a->with_calls || a->shared->calls == 0));
        },
        &args));
    idle = shared->jobs == 0 && (!with_calls || shared->calls == 0);
  }
  if (timer != 0) clock_.Cancel(timer);
  return idle;
}

void PoolManager::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->quit) return;
    shared_->stopping = true;
  }
  if (!AwaitIdle(grace, /*with_calls=*/true)) {
    // The calls still running are left to finish on their own threads;
    // the ticks waiting for them see CANCELLED and finish now. A
    // provision among them has its intent recorded: Reconcile() at the
    // next start adopts what it created.
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->abandoned = true;
    }
    (void)AwaitIdle(absl::InfiniteDuration(), /*with_calls=*/false);
  }
  // Bootstraps in progress are cancelled (their commands killed on the
  // machines); the next start runs them again.
  if (bootstrapper_ != nullptr) bootstrapper_->Stop();
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->quit = true;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

// --- Instance tracking.

void PoolManager::ManageInstances(const NodeIndex& nodes,
                                  InstanceMap& instances) {
  Listed listed;
  for (auto& [id, inst] : instances) ManageInstance(nodes, inst, listed);
}

void PoolManager::ManageInstance(const NodeIndex& nodes, InstanceInfo& inst,
                                 Listed& listed) {
  const absl::Time now = clock_.Now();
  const std::string& id = inst.instance_id();
  // A node registered under this id: the instance is up, whichever of the
  // two records was written first.
  if (const NodeSummary* n = nodes.Find(id);
      n != nullptr && Pending(inst) && n->status != NODE_STATUS_TERMINATED) {
    inst.set_state(INSTANCE_STATE_RUNNING);
    inst.set_node_id(id);
    inst.set_status_message("node registered");
    *inst.mutable_ready_at() = ToTimestamp(now);
    Upsert(inst);
    return;
  }
  if (inst.state() == INSTANCE_STATE_PROVISIONING) {
    if (const ProviderInstance* pi = ListedInstance(inst, listed);
        pi != nullptr && pi->state == ProviderInstanceState::kRunning) {
      inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
      inst.set_status_message("waiting for node to register");
      Upsert(inst);
    }
  }
  if (MaybeBootstrap(inst, listed)) return;
  if (Pending(inst) && now - RegistrationClockStart(inst) >
                           options_.instance_manager.registration_timeout) {
    // Upstream marked these FAILED and kept paying for them.
    (void)TerminateInstance(
        inst, INSTANCE_STATE_FAILED,
        absl::StrCat("registration timeout exceeded (",
                     absl::FormatDuration(
                         options_.instance_manager.registration_timeout),
                     ")"));
    inst.set_state(INSTANCE_STATE_FAILED);  // No longer counted as pending.
    return;
  }
  // A FAILED instance whose termination failed earlier: try again.
  if (inst.state() == INSTANCE_STATE_FAILED && !inst.has_terminated_at() &&
      !inst.provider().empty()) {
    (void)TerminateInstance(inst, INSTANCE_STATE_FAILED, inst.status_message());
  }
}

// --- One pool's tick: snapshot, plan, act.

void PoolManager::TickPool(Pool& pool, const NodeIndex& nodes,
                           InstanceMap& instances) {
  PoolSnapshot snapshot = Snapshot(pool, nodes, instances);
  const PoolPlan plan = PlanPool(snapshot, pool.config);
  Execute(pool, plan, nodes, instances);
}

PoolSnapshot PoolManager::Snapshot(Pool& pool, const NodeIndex& nodes,
                                   const InstanceMap& instances) {
  const PoolConfig& pc = pool.config;
  PoolSnapshot snap;
  snap.now = clock_.Now();
  snap.time_zone = options_.time_zone;
  snap.nodes = &nodes;
  snap.removals = pool.removals;
  for (const auto& [id, inst] : instances) {
    if (inst.pool_name() == pc.name && Pending(inst) &&
        nodes.Find(id) == nullptr) {
      snap.pending.push_back({id, FromTimestamp(inst.created_at())});
    }
  }
  // Read once, and only when the pool is above its target.
  snap.has_instance = [this, ids = std::optional<std::vector<std::string>>()](
                          const std::string& node_id) mutable {
    if (!ids) ids = fleet_.ListInstanceIds();
    return std::binary_search(ids->begin(), ids->end(), node_id);
  };
  snap.autoscaler = pool.autoscaler.get();
  snap.history = pool.history;
  snap.max_history = options_.max_history;
  if (pool.source != nullptr) {
    snap.source_name = std::string(pool.source->name());
    // Off every lock; bounded by the source's own timeout.
    snap.metrics = pool.source->Fetch();
  }
  absl::MutexLock lock(&pool.mu);
  snap.breaker_open = pool.breaker_open;
  snap.target = pool.target;
  snap.manual_target = pool.manual_target;
  snap.manual_actor = pool.manual_actor;
  snap.last_scale = pool.last_scale;
  snap.source_was_up = pool.status.metrics_source_up;
  return snap;
}

void PoolManager::Execute(Pool& pool, const PoolPlan& plan,
                          const NodeIndex& nodes, InstanceMap& instances) {
  const PoolConfig& pc = pool.config;
  for (const std::string& id : plan.forget) pool.removals.erase(id);
  if (plan.trip_breaker) {
    {
      absl::MutexLock lock(&pool.mu);
      pool.breaker_open = true;
    }
    (void)Emit("pool.breaker_tripped", pc.name, "", *plan.trip_breaker,
               {{"unhealthy", absl::StrCat(plan.unhealthy)},
                {"nodes", absl::StrCat(plan.live)}});
  }
  for (const PoolRemoval& r : plan.start_replacing) StartRemoval(pool, r);
  RecordSource(pool, plan);
  pool.history = plan.state.utilization_history;
  ApplyDecision(pool, plan);
  // Replacements first (they ignore cooldown and max), then the size.
  Outcome out;
  ProvisionPlanned(pool, plan, out);
  ScaleDown(pool, plan, instances, out);
  for (auto it = pool.removals.begin(); it != pool.removals.end();) {
    if (ProgressRemoval(pool, it->second, nodes, instances)) {
      it = pool.removals.erase(it);
    } else {
      ++it;
    }
  }
  UpdateStatus(pool, plan, out);
}

void PoolManager::RecordSource(Pool& pool, const PoolPlan& plan) {
  if (pool.source == nullptr) return;
  const PoolConfig& pc = pool.config;
  const std::string name(pool.source->name());
  if (plan.source_failed) Count(&PoolCounters::metrics_source_errors, pc.name);
  {
    absl::MutexLock lock(&pool.mu);
    pool.status.metrics_source_up = !plan.source_failed;
    pool.status.metrics_source_error = plan.source_error;
    pool.status.queue_depth = plan.state.queue_depth;
    pool.status.pending_jobs = plan.state.pending_jobs;
  }
  if (plan.source_change == PoolPlan::SourceChange::kFailed) {
    (void)Emit("pool.metrics_source_failed", pc.name, "",
               absl::StrCat(name, " metrics source failed; pool ", pc.name,
                            " holds its size: ", plan.source_error),
               {{"source", name}});
  } else if (plan.source_change == PoolPlan::SourceChange::kRecovered) {
    (void)Emit("pool.metrics_source_recovered", pc.name, "",
               absl::StrCat(name, " metrics source answers again"),
               {{"source", name}});
  }
}

void PoolManager::ApplyDecision(Pool& pool, const PoolPlan& plan) {
  const PoolConfig& pc = pool.config;
  const ScaleRecommendation& rec = plan.decision;
  if (plan.manual_consumed) {
    absl::MutexLock lock(&pool.mu);
    // Unless the operator asked again meanwhile (with threads).
    if (pool.manual_target == rec.target_nodes) pool.manual_target.reset();
  }
  if (rec.target_nodes != plan.previous) {
    const std::string message =
        absl::StrCat(rec.reason, " for pool ", pc.name, ": ", plan.previous,
                     " → ", rec.target_nodes);
    (void)Emit("pool.target_changed", pc.name, "", message,
               {{"from", absl::StrCat(plan.previous)},
                {"to", absl::StrCat(rec.target_nodes)},
                {"reason", rec.reason}});
    absl::MutexLock lock(&pool.mu);
    pool.last_decision = message;
  }
  absl::MutexLock lock(&pool.mu);
  pool.target = rec.target_nodes;
}

void PoolManager::ProvisionPlanned(Pool& pool, const PoolPlan& plan,
                                   Outcome& out) {
  const PoolConfig& pc = pool.config;
  for (const std::string& id : plan.provision_replacements) {
    auto r = pool.removals.find(id);
    if (r == pool.removals.end()) continue;
    absl::StatusOr<std::string> id_or =
        ProvisionOne(pool, absl::StrCat("replacement of ", id));
    if (!id_or.ok()) break;  // The selector backs off; next tick retries.
    r->second.replacement_id = *id_or;
    ++out.new_pending;
    Count(&PoolCounters::replacements, pc.name + "|provisioned");
    (void)Emit("pool.replacement_provisioned", pc.name, id,
               absl::StrCat("replacement ", *id_or, " provisioned for ", id),
               {{"replacement", *id_or}});
  }
  for (int i = 0; i < plan.scale_up; ++i) {
    if (!ProvisionOne(pool, "scale up").ok()) break;
    ++out.added;
    ++out.new_pending;
  }
}

void PoolManager::ScaleDown(Pool& pool, const PoolPlan& plan,
                            InstanceMap& instances, Outcome& out) {
  int excess = plan.excess;
  for (const std::string& id : plan.terminate_pending) {
    if (excess <= 0) break;
    auto it = instances.find(id);
    if (it == instances.end()) continue;
    if (TerminateInstance(it->second, INSTANCE_STATE_TERMINATED,
                          "scale down before registration")
            .ok()) {
      it->second.set_state(INSTANCE_STATE_TERMINATED);
      --excess;
      ++out.removed;
      --out.new_pending;
    }
  }
  for (const std::string& node_id : plan.remove_nodes) {
    if (excess <= 0) break;
    PoolRemoval r;
    r.node_id = node_id;
    r.reason = absl::StrCat("scale down to ", plan.decision.target_nodes);
    r.deadline = clock_.Now() + pool.config.health.drain_timeout;
    StartRemoval(pool, std::move(r));
    --excess;
    ++out.removed;
  }
}

void PoolManager::UpdateStatus(Pool& pool, const PoolPlan& plan,
                               const Outcome& out) {
  const PoolConfig& pc = pool.config;
  int replacing = 0;
  for (const auto& [id, r] : pool.removals) replacing += r.replace ? 1 : 0;
  // Cooldown runs from the last action taken, not from a decision that
  // could not be carried out (no capacity): that one is retried.
  if (out.added > 0) Count(&PoolCounters::scaling_actions, pc.name + "|up");
  if (out.removed > 0) {
    Count(&PoolCounters::scaling_actions, pc.name + "|down");
  }
  absl::MutexLock lock(&pool.mu);
  if (out.added > 0 || out.removed > 0) pool.last_scale = plan.state.now;
  PoolStatus& st = pool.status;
  st.current_nodes = plan.current + out.added - out.removed;
  st.healthy_nodes = plan.healthy + out.added;
  st.pending_instances = plan.pending + out.new_pending;
  st.unhealthy_nodes = plan.unhealthy_counted + replacing;
  st.replacing = replacing;
  st.utilization = plan.state.utilization;
  st.provider_backoffs = pool.selector->Backoffs();
}

absl::StatusOr<std::string> PoolManager::ProvisionOne(
    Pool& pool, const std::string& purpose) {
  const PoolConfig& pc = pool.config;
  // While every place is backed off there is nothing to ask: no intent, no
  // event (the failure that backed them off said why), no token spent.
  if (const absl::Duration wait = pool.selector->BlockedFor();
      wait > absl::ZeroDuration()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("every provider is backed off; next retry in ",
                     absl::FormatDuration(absl::Ceil(wait, absl::Seconds(1)))));
  }
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
  std::vector<FailedAttempt> failed;
  absl::StatusOr<ProviderInstance> pi = pool.selector->Provision(
      req, &failed, UserDataFor(pool, req.idempotency_token));
  ReportProvisionOutcome(pc, purpose, failed, pi);
  if (!pi.ok()) return pi.status();
  RecordProvisioned(pc, *pi, purpose);
  return pi->id;
}

absl::Status PoolManager::LoadUserData(Pool& pool) {
  const PoolConfig& pc = pool.config;
  pool.user_data = pc.user_data;
  if (!pc.user_data_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileToString(pc.user_data_file);
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("pool ", pc.name, ": user_data_file ", pc.user_data_file,
                       ": cannot be read (", text.status().message(), ")"));
    }
    pool.user_data = *std::move(text);
  }
  if (pool.user_data.empty() && pc.setup_commands.empty() &&
      PoolOnCloudsOnly(config_, pc)) {
    if (options_.default_user_data.empty()) {
      options_.log.Info(
          "no user data: new machines must start the agent by themselves "
          "(a pre-baked image); auth.node_token_key enables the default "
          "bootstrap",
          {{"pool", pc.name}});
    }
    pool.user_data = options_.default_user_data;
  }
  if (pool.user_data.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> used =
      TemplateVariables(pool.user_data, BootstrapTemplateVariables());
  if (!used.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool ", pc.name, ": user data: ", used.status().message()));
  }
  pool.user_data_token =
      std::find(used->begin(), used->end(), "BootstrapToken") != used->end();
  if (pool.user_data_token && !options_.mint_bootstrap_token) {
    return absl::FailedPreconditionError(
        absl::StrCat("pool ", pc.name,
                     ": user data uses {{.BootstrapToken}}, which needs "
                     "auth.node_token_key"));
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> PoolManager::TemplateValues(
    const Pool& pool, const std::string& provider, const std::string& region,
    const std::string& instance_type, const std::string& node_id) const {
  return {{"ControlPlane", options_.control_plane},
          {"Pool", pool.config.name},
          {"NodeID", node_id},
          {"Provider", provider},
          {"Region", region},
          {"InstanceType", instance_type},
          {"PackageURL",
           absl::StrCat(options_.agent_downloads, "/api/v1/agent/package")},
          {"BinaryURL",
           absl::StrCat(options_.agent_downloads, "/api/v1/agent/binary")}};
}

ProviderSelector::UserDataFn PoolManager::UserDataFor(
    const Pool& pool, const std::string& intent) {
  if (pool.user_data.empty()) return nullptr;
  // Valid until the instance would be failed for not registering, and a
  // little longer for clock skew.
  const absl::Time expiry = clock_.Now() +
                            options_.instance_manager.registration_timeout +
                            absl::Minutes(5);
  return [this, &pool, intent, expiry](
             const std::string& provider,
             const ProvisionRequest& req) -> absl::StatusOr<std::string> {
    // The cloud names the instance only once it exists: the agent
    // resolves its id itself (node-agent --node-id auto).
    std::map<std::string, std::string> values =
        TemplateValues(pool, provider, req.region, req.instance_type, "auto");
    if (pool.user_data_token) {
      absl::StatusOr<std::string> token =
          options_.mint_bootstrap_token(intent, expiry);
      if (!token.ok()) return token.status();
      values["BootstrapToken"] = *std::move(token);
    }
    return RenderTemplate(pool.user_data, values);
  };
}

namespace {

// What an event says about a failed attempt: its class, whether it was a
// quota or a lack of machines, the cloud's own code, and where.
std::map<std::string, std::string> AttemptAttributes(const FailedAttempt& a) {
  std::map<std::string, std::string> attrs = {
      {"error_class",
       std::string(ProviderErrorClassName(ClassifyProviderError(a.error)))},
      {"provider", a.provider},
      {"region", a.region}};
  if (!a.zone.empty()) attrs["zone"] = a.zone;
  if (const std::optional<CloudErrorInfo> info = CloudErrorInfoOf(a.error)) {
    if (!info->cloud_code.empty()) attrs["cloud_code"] = info->cloud_code;
    if (!info->zone.empty()) attrs["zone"] = info->zone;
    if (info->scope != CloudErrorScope::kUnknown) {
      attrs["scope"] = std::string(CloudErrorScopeName(info->scope));
    }
    if (ClassifyProviderError(a.error) == ProviderErrorClass::kCapacity) {
      attrs["capacity_kind"] = info->quota ? "quota" : "no_capacity";
    }
  }
  return attrs;
}

}  // namespace

void PoolManager::ReportProvisionOutcome(
    const PoolConfig& pc, const std::string& purpose,
    const std::vector<FailedAttempt>& failed,
    const absl::StatusOr<ProviderInstance>& result) {
  if (!result.ok()) {
    std::map<std::string, std::string> attrs;
    if (!failed.empty()) attrs = AttemptAttributes(failed.back());
    attrs["error_class"] = std::string(
        ProviderErrorClassName(ClassifyProviderError(result.status())));
    (void)Emit("pool.provision_failed", pc.name, "",
               absl::StrCat("provisioning for ", purpose,
                            " failed: ", result.status().message()),
               attrs);
    return;
  }
  // A success after failures is a failover: say where each failed attempt
  // went wrong and where the instance came from instead.
  for (const FailedAttempt& a : failed) {
    std::map<std::string, std::string> attrs = AttemptAttributes(a);
    attrs["to_provider"] = result->provider;
    attrs["to_region"] = result->region;
    if (!result->zone.empty()) attrs["to_zone"] = result->zone;
    const std::string where = absl::StrCat(a.provider, " ", a.region,
                                           a.zone.empty() ? "" : "/", a.zone);
    (void)Emit(
        "pool.provision_failover", pc.name, "",
        absl::StrCat("provisioning for ", purpose, " moved on from ", where,
                     " (", attrs["error_class"], "): ", a.error.message(),
                     "; provisioned on ", result->provider, " ", result->region,
                     result->zone.empty() ? "" : "/", result->zone, " instead"),
        attrs);
  }
}

void PoolManager::RecordProvisioned(const PoolConfig& pc,
                                    const ProviderInstance& pi,
                                    const std::string& purpose) {
  InstanceInfo inst;
  inst.set_instance_id(pi.id);
  inst.set_provider(pi.provider);
  inst.set_region(pi.region);
  inst.set_zone(pi.zone);
  inst.set_instance_type(pi.instance_type);
  inst.set_state(INSTANCE_STATE_PROVISIONING);
  inst.set_pool_name(pc.name);
  *inst.mutable_created_at() = ToTimestamp(clock_.Now());
  inst.set_status_message(absl::StrCat("provisioning (", purpose, ")"));
  for (const auto& [k, v] : pi.labels) (*inst.mutable_labels())[k] = v;
  Upsert(inst);
  if (pi.state == ProviderInstanceState::kRunning) {
    inst.set_state(INSTANCE_STATE_PENDING_REGISTRATION);
    inst.set_status_message("waiting for node to register");
    Upsert(inst);
  }
}

void PoolManager::StartRemoval(Pool& pool, PoolRemoval r) {
  for (NodeCommandType type :
       {NODE_COMMAND_TYPE_CORDON, NODE_COMMAND_TYPE_DRAIN}) {
    IssueCommandRequest req;
    req.set_node_id(r.node_id);
    req.set_command_type(type);
    (*req.mutable_parameters())["reason"] = r.reason;
    (void)Await<IssueCommandResponse>(
        [&](auto done) { fleet_.IssueCommand(req, actor_, done); });
  }
  // The workload system hears of both commands from the notifier
  // dispatcher, which follows the commits; the drain wait below is bounded
  // by drain_timeout whatever it answers.
  if (r.replace) {
    Count(&PoolCounters::replacements, pool.config.name + "|started");
  }
  (void)Emit(r.replace ? "pool.replacement_started" : "pool.scale_down_started",
             pool.config.name, r.node_id,
             absl::StrCat(r.replace ? "replacing" : "removing", " node ",
                          r.node_id, ": ", r.reason));
  std::string id = r.node_id;
  pool.removals[id] = std::move(r);
}

bool PoolManager::ProgressRemoval(Pool& pool, PoolRemoval& r,
                                  const NodeIndex& nodes,
                                  InstanceMap& instances) {
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

absl::Status PoolManager::TerminateInstance(InstanceInfo inst,
                                            InstanceState final_state,
                                            const std::string& reason) {
  Provider* p = GetProvider(inst.provider());
  absl::Status s = p == nullptr
                       ? absl::NotFoundError(absl::StrCat(
                             "provider ", inst.provider(), " not configured"))
                       : p->Terminate(inst.instance_id());
  // Refused: a FAILED instance is FAILED anyway (ManageInstance retries it);
  // any other keeps its state, so the scale-down or removal that asked sees
  // it again and retries, rather than an instance recorded TERMINATED that
  // the cloud still bills for.
  if (s.ok() || s.code() == absl::StatusCode::kNotFound ||
      final_state == INSTANCE_STATE_FAILED) {
    inst.set_state(final_state);
  }
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

PoolStatus PoolManager::StatusLocked(Pool& pool) {
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
  std::vector<PoolStatus> out;
  for (const auto& [name, pool] : pools_) {
    absl::MutexLock lock(&pool->mu);
    out.push_back(StatusLocked(*pool));
  }
  return out;
}

absl::StatusOr<PoolStatus> PoolManager::GetPool(const std::string& name) {
  auto it = pools_.find(name);
  if (it == pools_.end()) {
    return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
  }
  absl::MutexLock lock(&it->second->mu);
  return StatusLocked(*it->second);
}

absl::Status PoolManager::ScalePool(const std::string& name, int target,
                                    const Actor& actor) {
  auto it = pools_.find(name);
  if (it == pools_.end()) {
    return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
  }
  Pool& pool = *it->second;
  const PoolConfig& pc = pool.config;
  if (target < pc.min_nodes || target > pc.max_nodes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool ", name, ": ", target, " nodes is outside its limits [",
        pc.min_nodes, ", ", pc.max_nodes, "] (min_nodes, max_nodes)"));
  }
  absl::MutexLock lock(&pool.mu);
  pool.manual_target = target;
  pool.manual_actor = actor.name;
  return absl::OkStatus();
}

absl::StatusOr<bool> PoolManager::ResetBreaker(const std::string& name,
                                               const Actor& actor) {
  auto it = pools_.find(name);
  if (it == pools_.end()) {
    return absl::NotFoundError(absl::StrCat("pool ", name, " not found"));
  }
  {
    absl::MutexLock lock(&it->second->mu);
    if (!it->second->breaker_open) return false;
    it->second->breaker_open = false;
  }
  (void)Emit("pool.breaker_reset", name, "",
             absl::StrCat("replacement breaker of pool ", name, " reset by ",
                          actor.name));
  return true;
}

}  // namespace navarch
