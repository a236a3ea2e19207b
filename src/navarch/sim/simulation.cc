#include "navarch/sim/simulation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/debugging/leak_check.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/logging.h"
#include "navarch/controllers/controllers.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/health/evaluator.h"
#include "navarch/health/policy.h"
#include "navarch/notifier/notifier.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/provider/registry.h"
#include "navarch/sim/chaos.h"
#include "navarch/sim/fleet_gen.h"
#include "navarch/sim/report.h"
#include "navarch/sim/rng.h"
#include "navarch/sim/sim_agent.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch::sim {

std::string AssertionResult::ToString() const {
  return absl::StrCat(passed ? "PASS " : "FAIL ", type,
                      target.empty() ? "" : absl::StrCat(" ", target),
                      ": expected ", expected, ", actual ", actual, " (",
                      source, ")");
}

int SimResult::exit_code() const {
  if (!errors.empty()) return 1;
  for (const auto& a : assertions) {
    if (!a.passed) return 1;
  }
  return 0;
}

namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Options that draw random numbers get the run's seed, where they have one
// (nothing in the model may seed itself from the machine).
// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

nlohmann::json Distribution(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  nlohmann::json j;
  j["count"] = samples.size();
  if (samples.empty()) return j;
  double sum = 0;
  for (double s : samples) sum += s;
  j["mean_seconds"] = sum / samples.size();
  j["p50_seconds"] = Percentile(samples, 50);
  j["p90_seconds"] = Percentile(samples, 90);
  j["p95_seconds"] = Percentile(samples, 95);
  j["p99_seconds"] = Percentile(samples, 99);
  j["max_seconds"] = samples.back();
  return j;
}

// Rounds for the report: keeps the JSON short and stable.
double Round(double v, int digits = 3) {
  double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

struct NodeEventRec {
  double t;
  std::string type;
  std::string message;
  std::string failure_type;
  int xid = 0;
  std::string rule;
  std::string result;
};

// What the simulation knows about a node, from what it did and from the
// events the fleet core committed.
struct Tracked {
  NodeStatus status = NODE_STATUS_UNKNOWN;
  HealthStatus health = HEALTH_STATUS_UNKNOWN;
  bool known = false;  // registered at least once
  int pool_slot = -1;  // index in pool_names_ (a configured pool), else -1
  absl::Time unhealthy_at = absl::InfiniteFuture();
  absl::Time pending_detect = absl::InfiniteFuture();
  absl::Duration cold_start = absl::ZeroDuration();
  std::string pool;
  int failures = 0;
  int recoveries = 0;
  int generation = 0;  // stress replacements: <base>-gen<N>
  std::string base_id;
  std::vector<NodeEventRec> events;
};

// What Sample() reports, kept up to date as nodes change (a sample is then
// a copy, not a walk of every node: 720 samples x 17,000 nodes in the
// 10,000-node benchmark).
enum Shape { kHealthy, kDegraded, kUnhealthy, kCordoned, kDraining, kShapes };
struct FleetTally {
  int total = 0, terminated = 0;
  int shape[kShapes] = {};
  std::vector<int> in_pool;  // by Tracked::pool_slot
};

// The fleet core's clock: the simulation's, except while a node's last
// skipped heartbeat is replayed, when it reads the time the beat was due.
class AsOfClock final : public Clock {
 public:
  explicit AsOfClock(Clock& base) : base_(base) {}
  absl::Time Now() override {
    return as_of_ == absl::InfinitePast() ? base_.Now() : as_of_;
  }
  absl::Duration SteadyNow() override { return base_.SteadyNow(); }
  TimerId Schedule(absl::Duration delay, std::function<void()> fn) override {
    return base_.Schedule(delay, std::move(fn));
  }
  bool Cancel(TimerId id) override { return base_.Cancel(id); }
  void RunAsOf(absl::Time at, const std::function<void()>& fn) {
    as_of_ = at;
    fn();
    as_of_ = absl::InfinitePast();
  }

 private:
  Clock& base_;
  absl::Time as_of_ = absl::InfinitePast();
};

class Simulation final : public ChaosHost {
 public:
  Simulation(const Scenario& s, const SimOptions& o)
      : sc_(s),
        opt_(o),
        clock_(absl::FromUnixSeconds(kSimStartUnixSeconds)),
        fleet_clock_(clock_),
        start_(clock_.Now()) {
    seed_ = o.seed != 0                         ? o.seed
            : (s.stress && s.stress->seed != 0) ? s.stress->seed
                                                : 1;
  }

  SimResult Run();

  // ChaosHost.
  LiveSet& Live() override { return live_; }
  bool InjectFailure(const std::string& id, const Failure& f,
                     FailureCause cause) override;
  void RecoverFailure(const std::string& id, const std::string& type) override;

 private:
  void Setup();
  // Setup's steps, in order.
  void SetupLogging();
  void SetupStore();
  void SetupFleet();
  void SetupPools();
  void AddFakeProvider(const std::string& name, const ProviderConfig& pc,
                       uint64_t n);
  void OnInstanceRunning(const ProviderInstance& pi);
  // set_capacity / set_quota; with a duration, the previous cap comes back.
  void SetCloudCap(const EventSpec& e);
  SimAgent* AddAgent(NodeSpec spec, const std::string& pool);
  // Handles what the fleet core committed since the last call (collected
  // from its commit callback), and updates the simulation's bookkeeping.
  void DrainEvents();
  void OnEvents(const std::vector<Event>& events);
  void AddLive(SimAgent* a);
  void RemoveLive(const std::string& id);
  void Note(const std::string& id, NodeEventRec e);
  void Count(int64_t n = 1) { sim_events_ += n; }
  void PoolTick() {
    pool_tick_pending_ = false;
    pools_->Tick();
  }

  // Scenario events, one after another.
  void NextEvent(size_t i);
  void Execute(size_t i);
  void WaitForStatus(size_t i, absl::Time deadline);
  void Fail(const EventSpec& e, std::string message);
  AssertionResult Check(const AssertionSpec& a, const std::string& source);
  void Print(const std::string& line);

  // Stress.
  void StartStress();
  void ReplaceFatal(const std::string& id);

  void Sample();
  // The report's sections (BuildReport), one function each.
  nlohmann::json CountsJson();
  nlohmann::json HealthyJson();
  nlohmann::json PoolSizesJson();
  nlohmann::json ProvidersJson();
  nlohmann::json SummaryJson(const std::vector<AssertionResult>& results,
                             const FleetStats& stats);
  nlohmann::json PolicyJson(const FleetStats& stats);
  nlohmann::json NodeJson(const std::string& id, const Tracked& t,
                          const NodeSpec& n);
  nlohmann::json NodesJson();
  nlohmann::json RunJson(double wall_seconds);
  nlohmann::json ConfigurationJson();
  nlohmann::json BuildReport(const std::vector<AssertionResult>& results,
                             double wall_seconds);
  // For people: tenths of a second ("[1m9.7s]", not "[1m9.704s]"); the
  // report keeps exact times.
  std::string Elapsed() {
    return HumanDuration(
        absl::Trunc(clock_.Now() - start_, absl::Milliseconds(100)));
  }
  double T() { return Seconds(clock_.Now() - start_); }

  const Scenario& sc_;
  const SimOptions opt_;
  uint64_t seed_ = 1;
  FakeClock clock_;
  AsOfClock fleet_clock_;
  const absl::Time start_;
  absl::Time end_ = absl::InfiniteFuture();
  bool finished_ = false;

  std::shared_ptr<LogSink> sink_;
  Logger log_ = NullLogger();
  std::unique_ptr<MemoryStore> store_;
  std::unique_ptr<PolicyEvaluator> evaluator_;
  std::unique_ptr<FleetService> fleet_;
  std::unique_ptr<ProviderRegistry> providers_;
  // The fake providers by name (owned by providers_).
  std::map<std::string, FakeProvider*> fakes_;
  NoopNotifier notifier_;
  std::unique_ptr<PoolManager> pools_;
  std::vector<std::unique_ptr<PeriodicTask>> controllers_;
  std::unique_ptr<ChaosEngine> chaos_;
  std::map<std::pair<int, std::string>, std::shared_ptr<const AgentTemplate>>
      templates_;
  AgentTiming timing_;

  // Every agent, by its ordinal (the order they were created in: their key
  // on calendar_), and by id (keys are the agents' own ids).
  std::vector<std::unique_ptr<SimAgent>> agents_;
  absl::flat_hash_map<absl::string_view, SimAgent*> agent_by_id_;
  SimAgent* FindAgent(absl::string_view id) {
    auto it = agent_by_id_.find(id);
    return it == agent_by_id_.end() ? nullptr : it->second;
  }
  // The agents' heartbeat and health ticks.
  AgentCalendar calendar_;
  // The node's bookkeeping, created on first use.
  Tracked& Track(const std::string& id) { return tracked_[id]; }
  // The nodes registered at least once, counted as Sample() reports them;
  // Tally takes a node out (-1) and puts it back (+1) around a change.
  FleetTally tally_;
  void Tally(const Tracked& t, int sign);
  // The configured pools in name order (FleetTally::in_pool, pool_slot).
  std::vector<std::string> pool_names_;
  std::vector<std::string> fleet_ids_;  // the scenario's fleet, file order
  // By id; a node map, so Tracked never moves. Unordered: the report sorts.
  absl::node_hash_map<std::string, Tracked> tracked_;
  // Live nodes, each flagged while its agent carries an injected failure
  // (kept by InjectFailure, RecoverFailure and AddLive).
  LiveSet live_;
  absl::flat_hash_map<std::string, std::string> replacement_of_;  // new -> old
  // What the fleet core committed that DrainEvents has not handled yet, in
  // commit order (node.*, health.event, pool.replacement_provisioned).
  std::vector<Event> committed_;
  bool pool_tick_pending_ = false;
  std::mt19937_64 startup_rng_, replace_rng_;

  // Counters for the summary.
  int64_t sim_events_ = 0;
  int64_t nodes_started_ = 0;
  int64_t nodes_failed_to_start_ = 0;
  int64_t failures_ = 0;
  int64_t recoveries_ = 0;
  int64_t replacements_ = 0;
  std::map<std::string, int64_t> by_type_;
  std::map<int, int64_t> by_xid_;
  std::map<std::string, int64_t> by_cause_;
  std::map<std::string, std::vector<double>> detect_by_pool_, replace_by_pool_;
  std::vector<double> detect_, replace_;
  std::map<std::string, int64_t> replacements_by_pool_;
  // Instances that came up, by "provider" and "provider/region".
  std::map<std::string, int64_t> started_by_;
  // The pool.* events committed, in order: kind and message (`events`
  // assertions).
  std::vector<std::pair<std::string, std::string>> pool_events_;
  absl::Time chaos_start_ = absl::InfiniteFuture();
  absl::Time measure_from_ = absl::InfiniteFuture();

  std::vector<nlohmann::json> timeline_;
  double min_healthy_pct_ = 100, sum_healthy_pct_ = 0;
  int healthy_samples_ = 0, peak_healthy_ = 0, min_healthy_ = -1;
  int peak_total_ = 0;
  std::map<std::string, std::pair<int, int>> pool_minmax_;

  std::vector<AssertionResult> results_;
  std::vector<std::string> errors_;
};

void Simulation::Print(const std::string& line) {
  if (opt_.out != nullptr)
    *opt_.out << "[" << Elapsed() << "] " << line << "\n";
}

SimAgent* Simulation::AddAgent(NodeSpec spec, const std::string& pool) {
  auto key = std::make_pair(spec.gpu_count, spec.gpu_type);
  auto& tmpl = templates_[key];
  if (tmpl == nullptr) {
    tmpl = MakeAgentTemplate(clock_, spec.gpu_count, spec.gpu_type);
  }
  const std::string id = spec.id;
  SimAgent::Hooks hooks;
  hooks.count = [this](int64_t n) { Count(n); };
  if (opt_.elide_calls) {
    hooks.as_of = [this](absl::Time at, const std::function<void()>& fn) {
      fleet_clock_.RunAsOf(at, fn);
    };
  }
  hooks.start_failed = [this](SimAgent& a) {
    ++nodes_failed_to_start_;
    Note(a.id(), {T(), "start_failed",
                  "boot failure: the agent never "
                  "registers"});
  };
  hooks.terminate = [this](SimAgent& a) {
    // The simulated instance goes away, never the simulator.
    const std::string nid = a.id();
    a.Stop();
    RemoveLive(nid);
    if (providers_ != nullptr) {
      if (Provider* p = providers_->Get(a.spec().provider); p != nullptr) {
        (void)p->Terminate(nid);
      }
    }
    (void)Await<NodeInfo>([&](auto done) {
      fleet_->MarkTerminated(nid, "instance terminated (terminate command)",
                             Actor{"simulator"}, done);
    });
  };
  const auto ordinal = static_cast<uint32_t>(agents_.size());
  auto agent = std::make_unique<SimAgent>(
      std::move(spec), *fleet_, clock_, calendar_, ordinal, tmpl, timing_,
      MixSeed(MixSeed(seed_, static_cast<uint64_t>(Purpose::kGpu)), ordinal),
      std::move(hooks));
  SimAgent* raw = agent.get();
  agents_.push_back(std::move(agent));
  agent_by_id_[raw->id()] = raw;
  Tracked& t = Track(id);
  t.pool = pool;
  auto slot = std::lower_bound(pool_names_.begin(), pool_names_.end(), pool);
  t.pool_slot = !pool.empty() && slot != pool_names_.end() && *slot == pool
                    ? static_cast<int>(slot - pool_names_.begin())
                    : -1;
  if (t.base_id.empty()) t.base_id = id;
  return raw;
}

void Simulation::SetupLogging() {
  if (opt_.verbose && opt_.log_stream != nullptr) {
    sink_ = std::make_shared<LogSink>(opt_.log_stream, LogFormat::kText,
                                      LogLevel::kInfo, &clock_);
    log_ = Logger(sink_);
  }
}

void Simulation::SetupStore() {
  const Config& cfg = sc_.config;
  // The simulation observes events as they are committed (below) and never
  // reads the store's log back: the store keeps none.
  store_ =
      std::make_unique<MemoryStore>(MemoryStoreOptions{.keep_events = false});
  evaluator_ = std::make_unique<PolicyEvaluator>();
  if (!cfg.server.health_policy.empty()) {
    // Validation loaded it already; a file changed since is an error, not a
    // silent run with the built-in policy.
    auto p = Policy::LoadFile(cfg.server.health_policy);
    if (p.ok()) {
      evaluator_->SetPolicy(*p);
    } else {
      errors_.push_back(
          absl::StrCat("server.health_policy: ", p.status().message(),
                       " (ran with the built-in policy)"));
    }
  }
}

void Simulation::SetupFleet() {
  const Config& cfg = sc_.config;
  FleetOptions fo = FleetOptionsFromConfig(cfg);  // as the server
  fo.seed = MixSeed(seed_, static_cast<uint64_t>(Purpose::kFleetService));
  // The flush only makes heartbeat timestamps durable; the memory store has
  // nothing to make durable and every read is served from the index, so no
  // flush until the end changes nothing the simulation can observe and saves
  // copying every beating node's metrics out.
  fo.heartbeat_flush_interval = absl::InfiniteDuration();
  // As the server: a pool node turning UNHEALTHY wakes the pool manager
  // (on the clock, as the server's pool worker would, coalesced).
  fo.on_events_committed = [this](std::vector<Event> events) {
    for (Event& e : events) {
      // Whatever the fleet did to a node, its agent stops skipping calls.
      if (!e.node_id().empty()) {
        if (SimAgent* a = FindAgent(e.node_id())) a->FleetChanged();
      }
      if (WantsPoolTick(e) && pools_ != nullptr && !pool_tick_pending_) {
        pool_tick_pending_ = true;
        clock_.Schedule(absl::ZeroDuration(), [this] {
          Count();
          PoolTick();
        });
      }
      if (absl::StartsWith(e.kind(), "pool.")) {
        pool_events_.emplace_back(e.kind(), e.message());
        // With simulated clouds, why the pool could not grow is the story.
        if (!sc_.clouds.empty() && e.kind() == "pool.provision_failed") {
          Print(absl::StrCat(e.kind(), " ", e.pool(), ": ", e.message()));
        }
      }
      if (absl::StartsWith(e.kind(), "node.") || e.kind() == "health.event" ||
          e.kind() == "pool.replacement_provisioned") {
        committed_.push_back(std::move(e));
      }
    }
  };
  fleet_ = std::make_unique<FleetService>(*store_, fleet_clock_, *evaluator_,
                                          log_, fo);
  (void)fleet_->Start();
  timing_.heartbeat_interval = cfg.server.heartbeat_interval;
  timing_.health_interval = cfg.server.health_check_interval;
  timing_.heartbeat_timeout = fo.heartbeat_timeout;
}

// A pool's instance is running: its agent boots and registers.
void Simulation::OnInstanceRunning(const ProviderInstance& pi) {
  NodeSpec spec;
  spec.id = pi.id;
  spec.provider = pi.provider;
  spec.region = pi.region.empty() ? "us-central1" : pi.region;
  spec.zone = pi.zone.empty() ? spec.region + "-a" : pi.zone;
  spec.instance_type = pi.instance_type;
  spec.gpu_count = pi.gpu_count > 0 ? pi.gpu_count : 8;
  spec.gpu_type = pi.gpu_type;
  spec.labels = pi.labels;
  std::string pool;
  if (auto it = pi.labels.find("pool"); it != pi.labels.end())
    pool = it->second;
  ++started_by_[spec.provider];
  ++started_by_[absl::StrCat(spec.provider, "/", spec.region)];
  SimAgent* a = AddAgent(std::move(spec), pool);
  ++nodes_started_;
  Note(a->id(), {T(), "started", "instance running; booting"});
  a->Start(sc_.boot_delay);
}

// Every configured provider is simulated by the fake provider under its own
// name, so a production config runs unchanged.
void Simulation::AddFakeProvider(const std::string& name,
                                 const ProviderConfig& pc, uint64_t n) {
  FakeProviderOptions fpo = FakeOptionsFromConfig(
      pc,
      MixSeed(MixSeed(seed_, static_cast<uint64_t>(Purpose::kProvider)), n));
  fpo.name = name;
  if (!pc.gpu_model.empty()) fpo.gpu_type = pc.gpu_model;
  if (absl::EndsWith(fpo.gpu_type, " (fake)")) {
    fpo.gpu_type = fpo.gpu_type.substr(0, fpo.gpu_type.size() - 7);
  }
  if (auto c = sc_.clouds.find(name); c != sc_.clouds.end()) {
    fpo.quota = c->second.quota;
    fpo.regions = c->second.regions;
    fpo.call_latency = c->second.call_latency;
    // The pool tick runs on the simulation's only thread and cannot wait:
    // the instance owes the latency instead (fake_provider.h).
    fpo.wait = [](absl::Duration) {};
  }
  auto fp = std::make_unique<FakeProvider>(clock_, fpo);
  fakes_[name] = fp.get();
  fp->set_on_running(
      [this](const ProviderInstance& pi) { OnInstanceRunning(pi); });
  fp->set_on_terminated([this](const ProviderInstance& pi) {
    if (SimAgent* a = FindAgent(pi.id)) {
      a->Stop();
      RemoveLive(pi.id);
      Note(pi.id, {T(), "instance_terminated", "instance terminated"});
    }
  });
  (void)providers_->Add(std::move(fp));
}

void Simulation::SetCloudCap(const EventSpec& e) {
  const std::vector<std::string> parts = absl::StrSplit(e.target, '/');
  auto it = fakes_.find(parts[0]);
  if (it == fakes_.end()) {
    return Fail(e, absl::StrCat("provider ", parts[0], " is not simulated"));
  }
  FakeProvider* fp = it->second;
  const std::string region = parts.size() > 1 ? parts[1] : "";
  const std::string zone = parts.size() > 2 ? parts[2] : "";
  const bool capacity = e.action == "set_capacity";
  const int value = capacity ? e.capacity : e.quota;
  // Sets the cap; returns the one it replaced.
  auto set = [fp, capacity, region, zone](int v) {
    if (!capacity) return fp->SetQuota(region, v);
    return zone.empty() ? fp->SetRegionCapacity(region, v)
                        : fp->SetZoneCapacity(region, zone, v);
  };
  const int previous = set(value);
  Print(absl::StrCat(e.action, " ", e.target, " ", value,
                     e.duration > absl::ZeroDuration()
                         ? absl::StrCat(" for ", FormatGoDuration(e.duration))
                         : ""));
  if (e.duration > absl::ZeroDuration()) {
    const std::string what = absl::StrCat(e.action, " ", e.target, " ");
    clock_.Schedule(e.duration, [this, set, previous, what] {
      set(previous);
      Print(absl::StrCat(what, previous, " (restored)"));
      // The pool manager hears of it on its next tick, as from a cloud.
    });
  }
}

void Simulation::SetupPools() {
  const Config& cfg = sc_.config;
  if (cfg.pools.empty()) return;
  providers_ = std::make_unique<ProviderRegistry>();
  uint64_t n = 0;
  for (const auto& [name, pc] : cfg.providers) AddFakeProvider(name, pc, n++);
  PoolManagerOptions pmo;
  pmo.instance_manager = cfg.instance_manager;
  pmo.seed = MixSeed(seed_, static_cast<uint64_t>(Purpose::kPoolManager));
  // Simulated machines run no sshd: a pool's setup_commands "succeed" at
  // once, and its agent registers after boot_delay as any other's.
  pmo.ssh_runner = [](const bootstrap::SshTarget&,
                      const std::vector<std::string>& commands,
                      const bootstrap::BootstrapOptions&, Clock&) {
    bootstrap::BootstrapResult r;
    r.success = true;
    r.steps.resize(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      r.steps[i].command = commands[i];
      r.steps[i].exit_code = 0;
    }
    return r;
  };
  pools_ = std::make_unique<PoolManager>(*fleet_, *providers_, notifier_,
                                         clock_, cfg, pmo);
  (void)pools_->Init();
}

void Simulation::Setup() {
  SetupLogging();
  const Config& cfg = sc_.config;
  for (const auto& [name, pc] : cfg.pools) pool_names_.push_back(name);
  tally_.in_pool.assign(pool_names_.size(), 0);
  SetupStore();
  SetupFleet();
  SetupPools();
  if (pools_ != nullptr) (void)pools_->Reconcile();
  controllers_ = MakeControllers(
      clock_, *fleet_, cfg, kHistoryRetention,
      pools_ != nullptr ? std::function<void()>([this] { PoolTick(); })
                        : nullptr,
      log_);
  for (auto& c : controllers_) c->Start();

  for (const NodeSpec& n : sc_.fleet) {
    AddAgent(n, n.labels.contains("pool") ? n.labels.at("pool") : "");
    fleet_ids_.push_back(n.id);
  }
  startup_rng_ = MakeRng(seed_, Purpose::kStartup);
  replace_rng_ = MakeRng(seed_, Purpose::kReplacement);
  if (sc_.stress) {
    chaos_ =
        std::make_unique<ChaosEngine>(sc_.stress->chaos, clock_, *this, seed_);
  }
  // As the control plane does at start: min_nodes is provisioned now.
  if (pools_ != nullptr) PoolTick();
}

void Simulation::Note(const std::string& id, NodeEventRec e) {
  Track(id).events.push_back(std::move(e));
}

void Simulation::AddLive(SimAgent* a) {
  live_.Add(&a->spec(), !a->active_failures().empty());
}

void Simulation::RemoveLive(const std::string& id) {
  if (SimAgent* a = FindAgent(id)) live_.Remove(&a->spec());
}

void Simulation::DrainEvents() {
  while (!committed_.empty()) {
    std::vector<Event> events;
    events.swap(committed_);
    OnEvents(events);
  }
}

void Simulation::OnEvents(const std::vector<Event>& events) {
  for (const Event& e : events) {
    const std::string& kind = e.kind();
    if (kind == "node.registered" || kind == "node.reregistered") {
      Tracked& t = Track(e.node_id());
      Tally(t, -1);
      if (kind == "node.registered") {
        t.status = NODE_STATUS_ACTIVE;
        t.health = HEALTH_STATUS_UNKNOWN;
      }
      t.known = true;
      Tally(t, +1);
      Note(e.node_id(), {T(), "registered", e.message()});
      if (SimAgent* a = FindAgent(e.node_id());
          a != nullptr && a->running() && t.status != NODE_STATUS_TERMINATED) {
        AddLive(a);
      }
      if (auto r = replacement_of_.find(e.node_id());
          r != replacement_of_.end() && kind == "node.registered") {
        Tracked& old = Track(r->second);
        if (old.unhealthy_at != absl::InfiniteFuture()) {
          double s = Seconds(clock_.Now() - old.unhealthy_at);
          replace_.push_back(s);
          replace_by_pool_[t.pool].push_back(s);
        }
        ++replacements_;
        ++replacements_by_pool_[t.pool];
        Note(r->second,
             {T(), "replaced",
              absl::StrCat("replacement ", e.node_id(), " registered")});
      }
    } else if (kind == "node.status_changed") {
      Tracked& t = Track(e.node_id());
      NodeStatus to = NODE_STATUS_UNKNOWN;
      if (auto d = e.details().find("to"); d != e.details().end())
        NodeStatus_Parse(d->second, &to);
      Tally(t, -1);
      t.status = to;
      if (e.actor() == "heartbeat-monitor") t.health = HEALTH_STATUS_UNHEALTHY;
      Tally(t, +1);
      Note(e.node_id(), {T(), "status_change", e.message()});
      if (to == NODE_STATUS_UNHEALTHY) {
        t.unhealthy_at = clock_.Now();
        if (t.pending_detect != absl::InfiniteFuture()) {
          double s = Seconds(clock_.Now() - t.pending_detect);
          detect_.push_back(s);
          detect_by_pool_[t.pool].push_back(s);
          t.pending_detect = absl::InfiniteFuture();
        }
        if (sc_.stress && pools_ == nullptr &&
            sc_.stress->chaos.recovery.replace_fatal) {
          std::string id = e.node_id();
          clock_.Schedule(absl::ZeroDuration(), [this, id] {
            Count();
            ReplaceFatal(id);
          });
        }
      }
      if (to == NODE_STATUS_TERMINATED) RemoveLive(e.node_id());
    } else if (kind == "node.health_changed") {
      Tracked& t = Track(e.node_id());
      if (auto d = e.details().find("to"); d != e.details().end()) {
        Tally(t, -1);
        HealthStatus_Parse(d->second, &t.health);
        Tally(t, +1);
      }
    } else if (kind == "health.event") {
      NodeEventRec r{T(), "health_event", e.message()};
      if (auto d = e.details().find("rule"); d != e.details().end())
        r.rule = d->second;
      if (auto d = e.details().find("result"); d != e.details().end())
        r.result = d->second;
      Note(e.node_id(), std::move(r));
    } else if (kind == "pool.replacement_provisioned") {
      if (auto r = e.details().find("replacement"); r != e.details().end()) {
        replacement_of_[r->second] = e.node_id();
      }
      Note(e.node_id(), {T(), "replacement_provisioned", e.message()});
    }
  }
}

bool Simulation::InjectFailure(const std::string& id, const Failure& f,
                               FailureCause cause) {
  DrainEvents();
  SimAgent* found = FindAgent(id);
  if (found == nullptr) return false;
  SimAgent& a = *found;
  Tracked& t = Track(id);
  // Set first: a fatal XID is reported, and acted on, inside Inject.
  const absl::Time pending_before = t.pending_detect;
  if ((t.status == NODE_STATUS_ACTIVE || t.status == NODE_STATUS_CORDONED ||
       t.status == NODE_STATUS_DRAINING) &&
      t.pending_detect == absl::InfiniteFuture()) {
    t.pending_detect = clock_.Now();
  }
  const bool injected = a.Inject(f);
  live_.SetFailing(&a.spec(), !a.active_failures().empty());
  if (!injected) {
    t.pending_detect = pending_before;
    return false;
  }
  ++failures_;
  ++by_type_[f.type];
  if (f.type == "xid_error") ++by_xid_[f.xid];
  ++by_cause_[FailureCauseName(cause)];
  ++t.failures;
  NodeEventRec r{T(), "failure",
                 f.message.empty() ? FailureCauseName(cause) : f.message,
                 f.type, f.xid};
  Note(id, std::move(r));
  if (chaos_ != nullptr) chaos_->OnInjected(a.spec(), f, cause);
  return true;
}

void Simulation::RecoverFailure(const std::string& id,
                                const std::string& type) {
  SimAgent* found = FindAgent(id);
  if (found == nullptr) return;
  SimAgent& a = *found;
  bool had = type.empty() ? !a.active_failures().empty()
                          : a.active_failures().contains(type);
  a.Recover(type);
  live_.SetFailing(&a.spec(), !a.active_failures().empty());
  if (!had) return;
  ++recoveries_;
  Tracked& t = Track(id);
  ++t.recoveries;
  if (a.active_failures().empty()) t.pending_detect = absl::InfiniteFuture();
  Note(id,
       {T(), "recovery",
        type.empty() ? "all failures cleared" : absl::StrCat(type, " cleared"),
        type});
}

void Simulation::ReplaceFatal(const std::string& id) {
  SimAgent* found = FindAgent(id);
  if (found == nullptr || !found->running()) return;
  SimAgent& old = *found;
  old.Stop();
  RemoveLive(id);
  (void)Await<NodeInfo>([&](auto done) {
    fleet_->MarkTerminated(id, "replaced by the simulator (replace_fatal)",
                           Actor{"simulator"}, done);
  });
  const RecoverySpec& r = sc_.stress->chaos.recovery;
  const StartupSpec* st =
      sc_.stress->fleet_gen ? &sc_.stress->fleet_gen->startup : nullptr;
  absl::Duration cold;
  if (r.replace_cold_start > absl::ZeroDuration()) {
    cold = r.replace_cold_start;
  } else if (st != nullptr && (st->cold_start_min > absl::ZeroDuration() ||
                               st->cold_start_max > absl::ZeroDuration())) {
    absl::Duration span = st->cold_start_max - st->cold_start_min;
    cold = st->cold_start_min + (span > absl::ZeroDuration()
                                     ? span * Uniform(replace_rng_)
                                     : absl::ZeroDuration());
  } else {
    cold = absl::Seconds(30) + absl::Seconds(30) * Uniform(replace_rng_);
  }
  Tracked& ot = Track(id);
  NodeSpec spec = old.spec();
  spec.id = absl::StrCat(ot.base_id, "-gen", ot.generation + 2);
  spec.labels.erase("index");
  const std::string base = ot.base_id;
  const int gen = ot.generation + 1;
  const std::string pool = ot.pool;
  const std::string new_id = spec.id;
  SimAgent* a = AddAgent(std::move(spec), pool);
  Tracked& nt = Track(new_id);
  nt.base_id = base;
  nt.generation = gen;
  nt.cold_start = cold;
  replacement_of_[new_id] = id;
  ++nodes_started_;
  Note(id, {T(), "replacement_started",
            absl::StrCat("replacement ", new_id, " starting")});
  Note(new_id, {T(), "started", absl::StrCat("replaces ", id)});
  a->Start(cold);
}

void Simulation::Fail(const EventSpec& e, std::string message) {
  std::string line =
      absl::StrCat(sc_.file, ":", e.pos.line, ":", e.pos.column, ": events[",
                   e.index, "] (", e.action, "): ", message);
  errors_.push_back(line);
  Print(absl::StrCat("ERROR ", line));
  finished_ = true;
}

void Simulation::NextEvent(size_t i) {
  if (finished_) return;
  if (i >= sc_.events.size()) {
    // Regular scenarios end with their last event; stress runs at their
    // duration.
    if (!sc_.stress) finished_ = true;
    return;
  }
  absl::Time due = start_ + sc_.events[i].at;
  if (clock_.Now() >= due) {
    Execute(i);
  } else {
    clock_.Schedule(due - clock_.Now(), [this, i] {
      Count();
      Execute(i);
    });
  }
}

void Simulation::Execute(size_t i) {
  if (finished_) return;
  const EventSpec& e = sc_.events[i];
  if (e.action == "start_fleet") {
    for (const std::string& id : fleet_ids_) {
      SimAgent& a = *FindAgent(id);
      if (a.running()) continue;
      ++nodes_started_;
      Note(id, {T(), "started", "start_fleet"});
      a.Start(absl::ZeroDuration());
    }
    Print(absl::StrCat("start_fleet: ", fleet_ids_.size(), " nodes"));
  } else if (e.action == "stop_fleet") {
    std::vector<SimAgent*> running;  // stopped in id order
    for (const auto& a : agents_) {
      if (a->running()) running.push_back(a.get());
    }
    std::sort(
        running.begin(), running.end(),
        [](const SimAgent* x, const SimAgent* y) { return x->id() < y->id(); });
    for (SimAgent* a : running) {
      const std::string id = a->id();
      a->Stop();
      RemoveLive(id);
      Note(id, {T(), "stopped", "stop_fleet"});
    }
    Print("stop_fleet");
  } else if (e.action == "inject_failure") {
    Failure f{e.failure_type, e.xid_code, e.gpu_index, e.message};
    if (FindAgent(e.target) == nullptr) {
      return Fail(e, absl::StrCat("node ", e.target, " does not exist"));
    }
    if (!InjectFailure(e.target, f, FailureCause::kScenario)) {
      return Fail(e, absl::StrCat("node ", e.target, " is not running"));
    }
    Print(absl::StrCat("inject_failure ", e.failure_type,
                       e.xid_code ? absl::StrCat(" xid ", e.xid_code) : "",
                       " on ", e.target));
  } else if (e.action == "recover_failure") {
    if (FindAgent(e.target) == nullptr) {
      return Fail(e, absl::StrCat("node ", e.target, " does not exist"));
    }
    RecoverFailure(e.target, e.failure_type);
    Print(absl::StrCat("recover_failure ",
                       e.failure_type.empty() ? "all" : e.failure_type, " on ",
                       e.target));
  } else if (e.action == "issue_command") {
    IssueCommandRequest req;
    req.set_node_id(e.target);
    absl::StatusOr<NodeCommandType> type = ParseCommandType(e.command_type);
    if (!type.ok()) return Fail(e, std::string(type.status().message()));
    req.set_command_type(*type);
    for (const auto& [k, v] : e.command_args)
      (*req.mutable_parameters())[k] = v;
    absl::StatusOr<IssueCommandResponse> resp = Await<IssueCommandResponse>(
        [&](auto done) { fleet_->IssueCommand(req, Actor{"scenario"}, done); });
    if (!resp.ok()) {
      return Fail(e, absl::StrCat("issue_command ", e.command_type, " on ",
                                  e.target, ": ", resp.status().message()));
    }
    Print(absl::StrCat("issue_command ", e.command_type, " on ", e.target));
  } else if (e.action == "wait_for_status") {
    WaitForStatus(i, clock_.Now() + e.timeout);
    return;  // continues when the status is reached
  } else if (e.action == "set_capacity" || e.action == "set_quota") {
    SetCloudCap(e);
  } else if (e.action == "log") {
    Print(absl::StrCat("log: ",
                       e.log_message.empty() ? e.message : e.log_message));
  } else if (e.action == "assert") {
    AssertionSpec a;
    a.type = e.failure_type.empty() ? "node_status" : e.failure_type;
    a.target = e.target;
    a.expected = e.expected_status;
    a.status = e.status;
    a.pool = e.pool;
    a.pos = e.pos;
    AssertionResult r = Check(a, absl::StrCat("events[", e.index, "]"));
    Print(r.ToString());
    results_.push_back(std::move(r));
  }
  // `wait`: time is already handled by `at`.
  NextEvent(i + 1);
}

void Simulation::WaitForStatus(size_t i, absl::Time deadline) {
  if (finished_) return;
  const EventSpec& e = sc_.events[i];
  GetNodeRequest req;
  req.set_node_id(e.target);
  absl::StatusOr<GetNodeResponse> n = fleet_->GetNode(req);
  if (n.ok() && ShortName(n->node().status()) == e.expected_status) {
    Print(
        absl::StrCat("wait_for_status: ", e.target, " is ", e.expected_status));
    NextEvent(i + 1);
    return;
  }
  if (clock_.Now() >= deadline) {
    return Fail(
        e,
        absl::StrCat("timeout waiting for node ", e.target, " to reach status ",
                     e.expected_status, " (it is ",
                     n.ok() ? ShortName(n->node().status()) : "not registered",
                     " after ", FormatGoDuration(e.timeout), ")"));
  }
  // Upstream polls every 500 ms.
  clock_.Schedule(absl::Milliseconds(500), [this, i, deadline] {
    Count();
    WaitForStatus(i, deadline);
  });
}

AssertionResult Simulation::Check(const AssertionSpec& a,
                                  const std::string& source) {
  DrainEvents();
  AssertionResult r;
  r.type = a.type;
  r.target = a.target;
  r.expected = a.expected;
  r.source = source;
  r.pos = a.pos;
  auto node = [&]() -> std::optional<NodeInfo> {
    GetNodeRequest req;
    req.set_node_id(a.target);
    absl::StatusOr<GetNodeResponse> n = fleet_->GetNode(req);
    if (!n.ok()) return std::nullopt;
    return n->node();
  };
  auto compare = [&](double actual) {
    Comparison c;
    ParseComparison(a.expected, &c);
    r.actual = absl::StrCat(Round(actual));
    r.passed = c.Holds(actual);
  };
  auto percentile = [&](const std::vector<double>& samples) {
    absl::StatusOr<absl::Duration> limit = ParseGoDuration(a.expected);
    r.expected = absl::StrCat("p", a.percentile, " <= ", a.expected);
    if (samples.empty()) {
      r.actual = "no samples";
      r.passed = false;
      return;
    }
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    double p = Percentile(s, a.percentile);
    absl::Duration d = absl::Milliseconds(std::llround(p * 1000));
    r.actual = absl::StrCat("p", a.percentile, " ", FormatGoDuration(d), " (",
                            s.size(), " samples)");
    r.passed = limit.ok() && d <= *limit;
  };
  if (a.type == "node_status") {
    auto n = node();
    r.actual = n ? ShortName(n->status()) : "not registered";
    r.passed = n && r.actual == a.expected;
  } else if (a.type == "health_status") {
    auto n = node();
    r.actual = n ? ShortName(n->health_status()) : "not registered";
    r.passed = n && r.actual == a.expected;
  } else if (a.type == "node_count" || a.type == "pool_size") {
    // Counted from what the fleet core committed (its event log), as it
    // stands now.
    const std::string& pool = a.type == "pool_size" ? a.target : a.pool;
    int count = 0;
    for (const auto& [id, t] : tracked_) {
      if (!t.known) continue;
      if (!pool.empty() && t.pool != pool) continue;
      if (!a.status.empty()) {
        if (ShortName(t.status) != a.status) continue;
      } else if (t.status == NODE_STATUS_TERMINATED) {
        continue;
      }
      ++count;
    }
    compare(count);
  } else if (a.type == "events") {
    int count = 0;
    for (const auto& [kind, message] : pool_events_) {
      if (kind == a.kind && absl::StrContains(message, a.contains)) ++count;
    }
    compare(count);
  } else if (a.type == "provisions") {
    auto it = started_by_.find(a.target);
    compare(it == started_by_.end() ? 0 : it->second);
  } else if (a.type == "replacements") {
    compare(a.pool.empty() ? replacements_ : replacements_by_pool_[a.pool]);
  } else if (a.type == "failures") {
    compare(failures_);
  } else if (a.type == "time_to_replace") {
    percentile(a.pool.empty() ? replace_ : replace_by_pool_[a.pool]);
  } else if (a.type == "time_to_detect") {
    percentile(a.pool.empty() ? detect_ : detect_by_pool_[a.pool]);
  } else if (a.type == "min_healthy_percent") {
    Comparison c;
    ParseComparison(a.expected, &c);
    if (c.op == "==") c.op = ">=";  // a bare number is a floor
    double v = healthy_samples_ > 0 ? min_healthy_pct_ : 0;
    r.expected = c.ToString();
    r.actual = absl::StrCat(Round(v, 2));
    r.passed = healthy_samples_ > 0 && c.Holds(v);
  } else {
    r.actual = "unknown assertion type";
  }
  return r;
}

void Simulation::StartStress() {
  const StressSpec& st = *sc_.stress;
  absl::Duration startup_end = absl::ZeroDuration();
  if (st.fleet_gen) {
    std::mt19937_64 gen_rng = MakeRng(seed_, Purpose::kFleetGen);
    std::vector<NodeSpec> nodes = GenerateFleet(*st.fleet_gen, gen_rng);
    std::vector<NodeStart> starts = StartupSchedule(
        st.fleet_gen->startup, nodes.size(), startup_rng_, &startup_end);
    for (size_t i = 0; i < nodes.size(); ++i) {
      const std::string id = nodes[i].id;
      std::string pool =
          nodes[i].labels.contains("pool") ? nodes[i].labels.at("pool") : "";
      SimAgent* a = AddAgent(std::move(nodes[i]), pool);
      Track(id).cold_start = starts[i].cold_start;
      absl::Duration cold = starts[i].cold_start;
      clock_.Schedule(starts[i].start, [this, a, cold] {
        Count();
        ++nodes_started_;
        Note(a->id(), {T(), "started", "fleet start"});
        a->Start(cold);
      });
    }
  } else if (sc_.events.empty() ||
             std::none_of(sc_.events.begin(), sc_.events.end(),
                          [](const EventSpec& e) {
                            return e.action == "start_fleet";
                          })) {
    // An explicit stress fleet with no start_fleet event starts at once.
    for (const std::string& id : fleet_ids_) {
      ++nodes_started_;
      Note(id, {T(), "started", "fleet start"});
      FindAgent(id)->Start(absl::ZeroDuration());
    }
  }
  chaos_start_ = start_ + startup_end;
  end_ = chaos_start_ + st.duration;
  measure_from_ = chaos_start_;
  chaos_->Start(chaos_start_, end_);
  Print(absl::StrCat("stress: ", agents_.size(), " nodes, chaos from ",
                     HumanDuration(startup_end), " for ",
                     HumanDuration(st.duration), ", seed ", seed_));
}

void Simulation::Tally(const Tracked& t, int sign) {
  if (!t.known) return;
  if (t.status == NODE_STATUS_TERMINATED) {
    tally_.terminated += sign;
    return;
  }
  tally_.total += sign;
  if (t.pool_slot >= 0) tally_.in_pool[t.pool_slot] += sign;
  Shape shape = kHealthy;
  switch (t.status) {
    case NODE_STATUS_UNHEALTHY:
      shape = kUnhealthy;
      break;
    case NODE_STATUS_CORDONED:
      shape = kCordoned;
      break;
    case NODE_STATUS_DRAINING:
      shape = kDraining;
      break;
    default:
      shape = t.health == HEALTH_STATUS_UNHEALTHY  ? kUnhealthy
              : t.health == HEALTH_STATUS_DEGRADED ? kDegraded
                                                   : kHealthy;
  }
  tally_.shape[shape] += sign;
}

void Simulation::Sample() {
  DrainEvents();
  const int total = tally_.total, terminated = tally_.terminated;
  const int healthy = tally_.shape[kHealthy],
            degraded = tally_.shape[kDegraded],
            unhealthy = tally_.shape[kUnhealthy],
            cordoned = tally_.shape[kCordoned],
            draining = tally_.shape[kDraining];
  const std::vector<int>& in_pool = tally_.in_pool;
  std::map<std::string, int> pools;
  for (size_t i = 0; i < pool_names_.size(); ++i)
    pools[pool_names_[i]] = in_pool[i];
  nlohmann::json j;
  j["t"] = Round(T());
  j["total"] = total;
  j["healthy"] = healthy;
  j["degraded"] = degraded;
  j["unhealthy"] = unhealthy;
  j["cordoned"] = cordoned;
  j["draining"] = draining;
  j["terminated"] = terminated;
  j["failures"] = failures_;
  j["recoveries"] = recoveries_;
  j["replacements"] = replacements_;
  j["active_outages"] = chaos_ ? chaos_->stats().active_outages : 0;
  if (!pools.empty()) j["pools"] = pools;
  timeline_.push_back(std::move(j));
  // Capacity counts: a node taken out (terminated, waiting for its
  // replacement) still counts against the healthy share.
  peak_total_ = std::max(peak_total_, total);
  if (clock_.Now() >= measure_from_ && total > 0) {
    double pct = 100.0 * healthy / peak_total_;
    min_healthy_pct_ = std::min(min_healthy_pct_, pct);
    sum_healthy_pct_ += pct;
    ++healthy_samples_;
    peak_healthy_ = std::max(peak_healthy_, healthy);
    min_healthy_ = min_healthy_ < 0 ? healthy : std::min(min_healthy_, healthy);
    for (const auto& [p, n] : pools) {
      auto it = pool_minmax_.find(p);
      if (it == pool_minmax_.end()) {
        pool_minmax_[p] = {n, n};
      } else {
        it->second.first = std::min(it->second.first, n);
        it->second.second = std::max(it->second.second, n);
      }
    }
  }
}

nlohmann::json Simulation::CountsJson() {
  nlohmann::json s;
  s["name"] = sc_.name;
  s["seed"] = seed_;
  s["mode"] = sc_.stress ? "stress" : "scenario";
  s["simulated_seconds"] = Round(T());
  s["nodes_started"] = nodes_started_;
  s["nodes_failed_to_start"] = nodes_failed_to_start_;
  s["failures_injected"] = failures_;
  s["failures_by_type"] = by_type_;
  nlohmann::json xids = nlohmann::json::object();
  for (const auto& [code, n] : by_xid_) xids[absl::StrCat(code)] = n;
  s["failures_by_xid"] = xids;
  s["failures_by_cause"] = by_cause_;
  s["cascading_failures"] = chaos_ ? chaos_->stats().cascading : 0;
  s["correlated_failures"] = chaos_ ? chaos_->stats().correlated : 0;
  s["outages"] = chaos_ ? chaos_->stats().outages : 0;
  s["recoveries"] = recoveries_;
  s["replacements"] = replacements_;
  s["time_to_detect"] = Distribution(detect_);
  s["time_to_replace"] = Distribution(replace_);
  return s;
}

nlohmann::json Simulation::HealthyJson() {
  nlohmann::json h;
  h["min_percent"] = healthy_samples_ > 0 ? Round(min_healthy_pct_, 2) : 0.0;
  h["avg_percent"] = healthy_samples_ > 0
                         ? Round(sum_healthy_pct_ / healthy_samples_, 2)
                         : 0.0;
  h["peak_nodes"] = peak_healthy_;
  h["min_nodes"] = std::max(min_healthy_, 0);
  h["samples"] = healthy_samples_;
  return h;
}

nlohmann::json Simulation::PoolSizesJson() {
  nlohmann::json pools = nlohmann::json::object();
  for (const auto& [name, pc] : sc_.config.pools) {
    nlohmann::json p;
    p["min_nodes_config"] = pc.min_nodes;
    p["max_nodes_config"] = pc.max_nodes;
    if (auto it = pool_minmax_.find(name); it != pool_minmax_.end()) {
      p["min"] = it->second.first;
      p["max"] = it->second.second;
    }
    p["final"] =
        timeline_.empty() ? 0 : timeline_.back()["pools"].value(name, 0);
    p["replacements"] = replacements_by_pool_[name];
    pools[name] = p;
  }
  return pools;
}

// What each simulated cloud answered: Provision calls, new instances, and
// the failures by class (the failover the pool went through).
nlohmann::json Simulation::ProvidersJson() {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, fp] : fakes_) {
    const FakeProviderStats st = fp->stats();
    nlohmann::json p;
    p["provision_calls"] = st.calls;
    p["provisioned"] = st.provisioned;
    p["capacity_errors"] = st.capacity_errors;
    p["quota_errors"] = st.quota_errors;
    p["other_errors"] = st.other_errors;
    p["call_latency_seconds"] = Round(Seconds(st.latency));
    auto it = started_by_.find(name);
    p["instances_started"] = it == started_by_.end() ? 0 : it->second;
    out[name] = p;
  }
  return out;
}

nlohmann::json Simulation::SummaryJson(
    const std::vector<AssertionResult>& results, const FleetStats& stats) {
  nlohmann::json s = CountsJson();
  s["healthy"] = HealthyJson();
  s["pool_sizes"] = PoolSizesJson();
  // Only with `clouds:`: every other scenario's report stays as it was.
  if (!sc_.clouds.empty()) s["providers"] = ProvidersJson();
  std::map<std::string, int> final_status;
  for (const auto& [id, t] : tracked_) {
    if (t.known) ++final_status[ShortName(t.status)];
  }
  s["final_node_status"] = final_status;
  nlohmann::json asserts = nlohmann::json::array();
  int passed = 0;
  for (const AssertionResult& r : results) {
    asserts.push_back({{"type", r.type},
                       {"target", r.target},
                       {"expected", r.expected},
                       {"actual", r.actual},
                       {"passed", r.passed},
                       {"source", r.source}});
    passed += r.passed ? 1 : 0;
  }
  s["assertions"] = asserts;
  s["assertions_passed"] = passed;
  s["assertions_failed"] = static_cast<int>(results.size()) - passed;
  s["errors"] = errors_;
  s["sim_events"] = sim_events_;
  s["policy_rule_hits"] = stats.rule_matches;
  return s;
}

nlohmann::json Simulation::PolicyJson(const FleetStats& stats) {
  nlohmann::json policy;
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& rule : evaluator_->policy()->rules()) {
    int64_t hits = 0;
    if (auto it = stats.rule_matches.find(rule.name);
        it != stats.rule_matches.end()) {
      hits = it->second;
    }
    rules.push_back({{"name", rule.name},
                     {"result", ShortName(rule.result)},
                     {"hits", hits}});
  }
  policy["rules"] = rules;
  policy["rule_errors"] = stats.rule_errors;
  // What the agents did (their calls, made or skipped: the same with every
  // call), and how much of it they skipped.
  CallCounts calls;
  for (const auto& a : agents_) {
    calls.heartbeats += a->calls().heartbeats;
    calls.health_reports += a->calls().health_reports;
    calls.heartbeats_skipped += a->calls().heartbeats_skipped;
    calls.health_reports_skipped += a->calls().health_reports_skipped;
  }
  policy["health_reports"] = calls.health_reports;
  policy["heartbeats"] = calls.heartbeats;
  policy["health_reports_skipped"] = calls.health_reports_skipped;
  policy["heartbeats_skipped"] = calls.heartbeats_skipped;
  policy["status_changes"] = stats.status_changes;
  return policy;
}

nlohmann::json Simulation::NodeJson(const std::string& id, const Tracked& t,
                                    const NodeSpec& n) {
  nlohmann::json j;
  j["node_id"] = id;
  j["provider"] = n.provider;
  j["region"] = n.region;
  j["zone"] = n.zone;
  j["instance_type"] = n.instance_type;
  j["gpu_type"] = n.gpu_type;
  j["gpu_count"] = n.gpu_count;
  if (!t.pool.empty()) j["pool"] = t.pool;
  j["status"] = t.known ? ShortName(t.status) : "never registered";
  j["health"] = ShortName(t.health);
  j["failure_count"] = t.failures;
  j["recovery_count"] = t.recoveries;
  j["cold_start_seconds"] = Round(Seconds(t.cold_start));
  nlohmann::json ev = nlohmann::json::array();
  for (const NodeEventRec& e : t.events) {
    nlohmann::json x{{"t", Round(e.t)}, {"type", e.type}};
    if (!e.message.empty()) x["message"] = e.message;
    if (!e.failure_type.empty()) x["failure_type"] = e.failure_type;
    if (e.xid != 0) x["xid_code"] = e.xid;
    if (!e.rule.empty()) x["policy_rule"] = e.rule;
    if (!e.result.empty()) x["rule_result"] = e.result;
    ev.push_back(std::move(x));
  }
  j["events"] = std::move(ev);
  return j;
}

nlohmann::json Simulation::NodesJson() {
  nlohmann::json nodes = nlohmann::json::array();
  std::vector<const std::pair<const std::string, Tracked>*> by_id;
  by_id.reserve(tracked_.size());
  for (const auto& entry : tracked_) by_id.push_back(&entry);
  std::sort(by_id.begin(), by_id.end(),
            [](const auto* x, const auto* y) { return x->first < y->first; });
  for (const auto* entry : by_id) {
    const SimAgent* a = FindAgent(entry->first);
    if (a == nullptr) continue;
    nodes.push_back(NodeJson(entry->first, entry->second, a->spec()));
  }
  return nodes;
}

nlohmann::json Simulation::RunJson(double wall_seconds) {
  nlohmann::json run;
  run["wall_seconds"] = wall_seconds;
  run["events"] = sim_events_;
  run["events_per_second"] =
      wall_seconds > 0 ? sim_events_ / wall_seconds : 0.0;
  run["simulated_seconds_per_wall_second"] =
      wall_seconds > 0 ? T() / wall_seconds : 0.0;
  double sum = 0;
  // Integrated over the samples: live nodes x interval.
  for (size_t i = 1; i < timeline_.size(); ++i) {
    double dt =
        timeline_[i]["t"].get<double>() - timeline_[i - 1]["t"].get<double>();
    sum += timeline_[i - 1]["total"].get<int>() * dt;
  }
  run["node_hours"] = Round(sum / 3600.0, 2);
  run["node_hours_per_wall_second"] =
      wall_seconds > 0 ? run["node_hours"].get<double>() / wall_seconds : 0.0;
  return run;
}

nlohmann::json Simulation::ConfigurationJson() {
  nlohmann::json cfg;
  cfg["heartbeat_interval"] =
      FormatGoDuration(sc_.config.server.heartbeat_interval);
  cfg["health_check_interval"] =
      FormatGoDuration(sc_.config.server.health_check_interval);
  cfg["heartbeat_timeout"] =
      FormatGoDuration(EffectiveHeartbeatTimeout(sc_.config.server));
  cfg["pools"] = sc_.config.pools.size();
  cfg["config_block"] = sc_.has_config;
  if (sc_.stress) {
    nlohmann::json st;
    const StressSpec& ss = *sc_.stress;
    st["duration"] = FormatGoDuration(ss.duration);
    st["metrics_interval"] = FormatGoDuration(ss.metrics_interval);
    st["total_nodes"] = ss.fleet_gen ? ss.fleet_gen->total_nodes
                                     : static_cast<int>(sc_.fleet.size());
    st["failure_rate_per_min_per_1000"] = ss.chaos.failure_rate;
    st["cascading_enabled"] = ss.chaos.cascading.enabled;
    st["recovery_enabled"] = ss.chaos.recovery.enabled;
    st["chaos_start_seconds"] = Round(Seconds(chaos_start_ - start_));
    cfg["stress"] = st;
  }
  return cfg;
}

// The sections in this order: the summary reads the last timeline sample.
nlohmann::json Simulation::BuildReport(
    const std::vector<AssertionResult>& results, double wall_seconds) {
  const FleetStats stats = fleet_->stats();
  nlohmann::json report;
  report["summary"] = SummaryJson(results, stats);
  report["timeline"] = timeline_;
  report["policy"] = PolicyJson(stats);
  report["nodes"] = NodesJson();
  report["run"] = RunJson(wall_seconds);
  report["configuration"] = ConfigurationJson();
  return report;
}

SimResult Simulation::Run() {
  const absl::Duration wall0 = opt_.wall_clock != nullptr
                                   ? opt_.wall_clock->SteadyNow()
                                   : absl::ZeroDuration();
  Setup();
  absl::Duration interval = absl::Seconds(1);
  if (sc_.stress) {
    interval = sc_.stress->metrics_interval;
    StartStress();
  } else {
    measure_from_ = start_;
  }
  // Metrics on their own timer, sampled after everything due at that instant.
  std::function<void()> sample = [&] {
    Sample();
    clock_.Schedule(interval, sample);
  };
  clock_.Schedule(interval, sample);
  NextEvent(0);
  if (sc_.events.empty() && !sc_.stress) finished_ = true;

  // At each instant, first the agents' ticks, then the clock's timers
  // (calendar.h).
  while (!finished_) {
    const absl::Time at = calendar_.NextAt();
    const absl::Time next = std::min(at, clock_.NextTimerAt());
    if (next == absl::InfiniteFuture() || next > end_) break;
    if (opt_.pace) opt_.pace(next - start_);
    if (at == next) {
      clock_.AdvanceUntil(next);  // nothing is due before it
      calendar_.RunAt(
          next, [this](uint32_t agent, AgentCalendar::Kind kind,
                       uint64_t epoch) { agents_[agent]->Tick(kind, epoch); });
    } else {
      clock_.AdvanceTo(next);
    }
    DrainEvents();
  }
  if (end_ != absl::InfiniteFuture() && clock_.Now() < end_ && !finished_) {
    clock_.AdvanceTo(end_);
  }
  if (timeline_.empty() || timeline_.back()["t"].get<double>() != Round(T())) {
    Sample();
  }

  // Skipped calls counted, skipped beats replayed: the fleet core ends as
  // with every call.
  for (const auto& a : agents_) a->Settle();
  std::vector<AssertionResult> results = results_;
  for (size_t i = 0; i < sc_.assertions.size(); ++i) {
    AssertionResult r =
        Check(sc_.assertions[i], absl::StrCat("assertions[", i, "]"));
    Print(r.ToString());
    results.push_back(std::move(r));
  }
  for (auto& c : controllers_) c->Stop();
  double wall = 0;
  if (opt_.wall_clock != nullptr) {
    wall = Seconds(opt_.wall_clock->SteadyNow() - wall0);
  }
  SimResult out;
  out.assertions = results;
  out.errors = errors_;
  out.seed = seed_;
  out.report = BuildReport(results, wall);
  // The fleet core stops (and makes its last flush) when the simulation is
  // destroyed, if it is (SimOptions::skip_teardown).
  return out;
}

}  // namespace

SimResult RunScenario(const Scenario& scenario, const SimOptions& options) {
  if (options.skip_teardown) {
    auto* sim = new Simulation(scenario, options);
    absl::IgnoreLeak(sim);
    return sim->Run();
  }
  Simulation sim(scenario, options);
  return sim.Run();
}

}  // namespace navarch::sim
