// The pool manager: the controller that keeps every pool at the right size
// with healthy machines. Each Tick() it
//   1. tracks instances (PROVISIONING -> PENDING_REGISTRATION -> RUNNING),
//      fails and terminates those not registered within registration_timeout;
//   2. starts replacing UNHEALTHY nodes of auto_replace pools, within
//      max_concurrent_replacements and the max_unhealthy_percent breaker;
//   3. decides the target size (autoscaler, manual ScalePool, or min/max
//      alone) and records every change of it as an event with its reason;
//   4. provisions replacements first, then up to the target, through the
//      pool's ProviderSelector;
//   5. removes nodes above the target (unregistered instances, then
//      unhealthy, cordoned, idle, newest) by cordon -> drain -> terminate;
//   6. finishes removals whose drain is done or timed out: terminates the
//      instance and marks the node TERMINATED.
// Every state change goes through FleetService; this class only decides.
// Removals issue CORDON and DRAIN commands through the fleet; the workload
// system hears of them from the notifier dispatcher, which follows every
// committed command. This class only asks the notifier IsDrained.
//
// Before each provision call the pool manager records a
// `pool.provision_requested` event carrying the idempotency token (also set
// as the instance's `navarch-token` label); it provisions only once that is
// durable. Reconcile(), run once at start-up, uses these to adopt instances
// whose provision call was cut short by a crash.
//
// Each pool's tick is planned apart from carrying it out (pool_plan.h:
// PlanPool decides, the pool manager acts), so the decisions are tested
// without providers.
//
// Threading (docs/pools.md): Tick() tracks instances on the calling thread
// (the server's pool worker, never the clock's timer thread), then hands
// each pool's tick to a worker thread (PoolManagerOptions::threads) or, in
// the simulator and most tests, runs it inline in a fixed order. A pool whose
// previous tick still runs (a provider call that takes minutes) is skipped, not
// waited for; the other pools tick. With threads, every provider call runs on a
// thread of its own, waited for at most provider_call_timeout, and no lock is
// held across it. Stop() waits a bounded time for calls in flight and then
// abandons them: their provision intent is durable, so the next start's
// Reconcile() adopts what they created. The read/scale methods are thread-safe
// and never wait for a tick.
#ifndef NAVARCH_POOL_POOL_MANAGER_H_
#define NAVARCH_POOL_POOL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/notifier/notifier.h"
#include "navarch/pool/autoscaler.h"
#include "navarch/pool/metrics_source.h"
#include "navarch/pool/pool_plan.h"
#include "navarch/pool/selector.h"
#include "navarch/pool/ssh_bootstrapper.h"
#include "navarch/provider/registry.h"

namespace navarch {

struct PoolManagerOptions {
  // Tag on every instance, so List() of a shared cloud account can tell ours.
  std::string cluster = "navarch";
  InstanceManagerConfig instance_manager;
  absl::TimeZone time_zone = absl::UTCTimeZone();
  // Pool-wide utilisation samples kept for the predictive autoscaler.
  size_t max_history = 1000;
  // Seeds the nonce that makes idempotency tokens unique across restarts.
  // 0: from the clock's time at construction (as FleetService).
  uint64_t seed = 0;
  // Run pool ticks on worker threads and each provider call on a thread of
  // its own with a deadline (the control plane). Off: everything runs
  // inline on the caller's thread, in a fixed order (the simulator, tests).
  bool threads = false;
  // With threads: how long one provider call (provision, terminate, list)
  // is waited for before it counts as failed (DEADLINE_EXCEEDED).
  absl::Duration provider_call_timeout = absl::Minutes(5);
  // With threads: how long the first Tick() waits for its pools' ticks (on
  // the clock), so a control plane that says it is ready has provisioned
  // min_nodes unless a provider hangs. 0: it does not wait.
  absl::Duration first_tick_wait = absl::ZeroDuration();
  // Called after each pool's tick, on the thread that ran it (tests).
  std::function<void(const std::string& pool)> on_pool_ticked;
  // Where each pool's metrics source logs its changes between answering
  // and failing (with a `pool` field).
  Logger log = NullLogger();
  // For pools with user_data: {{.ControlPlane}} (AgentServerAddress), and
  // what makes {{.BootstrapToken}}: a token for a provision intent, valid
  // until the given time (Authenticator::MintBootstrapToken). A pool whose
  // template uses the token fails Init without it.
  std::string control_plane;
  std::function<absl::StatusOr<std::string>(const std::string& intent,
                                            absl::Time expiry)>
      mint_bootstrap_token;
  // The control plane's HTTP listener as new machines reach it
  // (AgentHttpAddress): {{.PackageURL}} and {{.BinaryURL}} are under it.
  std::string agent_downloads;
  // Runs a pool's setup_commands on a new instance (SSH bootstrap); null:
  // bootstrap::RunBootstrap. Tests put a stand-in here.
  BootstrapRunner ssh_runner;
  // SSH bootstraps running at once; more instances wait for a later tick.
  int max_concurrent_bootstraps = 32;
  // The user data of a pool whose providers are all clouds (lambda, gcp,
  // aws) and that sets no user_data, user_data_file or setup_commands
  // (DefaultUserDataTemplate); empty: such pools send none.
  std::string default_user_data;
};

// What `navarch pools list|get` shows.
struct PoolStatus {
  std::string name;
  int min_nodes = 0;
  int max_nodes = 0;
  int current_nodes = 0;  // Counted as the autoscaler counts (see PoolState).
  int target_nodes = 0;
  int healthy_nodes = 0;
  int pending_instances = 0;  // Provisioned, not registered yet.
  int unhealthy_nodes = 0;
  int replacing = 0;
  std::string strategy;
  std::string autoscaler;  // Empty: none (min/max and manual scaling only).
  std::string last_decision;
  absl::Time last_scale_time = absl::InfinitePast();
  absl::Duration cooldown_left = absl::ZeroDuration();
  bool breaker_open = false;
  std::optional<double> utilization;
  // External metrics source ("" for the fleet's own signals), and whether
  // its last fetch worked.
  std::string metrics_source;
  bool metrics_source_up = true;
  std::string metrics_source_error;
  std::optional<int> queue_depth;
  std::optional<int> pending_jobs;
  // Providers, regions and zones this pool's selector keeps away from after
  // capacity or invalid-request errors, as of the pool's last tick.
  std::vector<ProviderSelector::BackoffEntry> provider_backoffs;
};

// Counters since start, for /metrics. Keys join label values with '|'.
struct PoolCounters {
  // "pool|direction" (up, down): target changes carried out.
  std::map<std::string, int64_t> scaling_actions;
  // "provider|operation|code": operation provision, terminate or list; code
  // the absl status code in snake case ("ok", "resource_exhausted").
  std::map<std::string, int64_t> provider_calls;
  // "pool|outcome": started, provisioned, completed.
  std::map<std::string, int64_t> replacements;
  // pool -> failed fetches of its metrics source.
  std::map<std::string, int64_t> metrics_source_errors;
  // "kind": adopted, unknown_terminated, unknown_reported, vanished,
  // terminated_again — what start-up reconciliation found.
  std::map<std::string, int64_t> reconciled;
};

class PoolManager {
 public:
  PoolManager(FleetService& fleet, const ProviderRegistry& providers,
              Notifier& notifier, Clock& clock, const Config& config,
              PoolManagerOptions options = {});
  ~PoolManager();

  // Builds each pool's autoscaler, metrics source and selector. A pool
  // naming a provider the registry lacks is INVALID_ARGUMENT.
  absl::Status Init();

  // Start-up: compares each pool provider's List() with the store.
  // - listed and known: adopted as is (one we had terminated but that still
  //   runs is terminated again);
  // - listed with this cluster's tags but unknown: adopted when a recorded
  //   provision request carries its token (the control plane died between
  //   the call and recording its answer), else terminated or reported per
  //   instance_manager.unknown_instances;
  // - known as live but not listed: recorded as FAILED ("gone at the
  //   provider"), and its node, if it has one, TERMINATED.
  // A provider whose List fails is skipped with an event. Removals (a
  // replacement, a scale-down) started before and not finished are then
  // resumed where they stood (pool.removal_resumed). Call before the first
  // Tick.
  absl::Status Reconcile();

  // Tracks instances, then ticks every pool that is not still busy with
  // its previous tick (inline, or handed to a worker).
  void Tick();

  // Stops ticking: waits up to `grace` for ticks and provider calls in
  // flight, then abandons the calls (their ticks see CANCELLED and finish)
  // and joins the workers. A provider must outlive its abandoned calls.
  // Idempotent; Tick() does nothing afterwards.
  void Stop(absl::Duration grace);

  // Provider calls running on their own threads (with options_.threads),
  // abandoned ones included.
  int provider_calls_in_flight();
  // Blocks until no provider call runs (tests: before destroying a provider
  // whose abandoned call they released).
  void AwaitNoProviderCalls();

  std::vector<PoolStatus> ListPools();
  absl::StatusOr<PoolStatus> GetPool(const std::string& name);
  // Sets the pool's target; it takes effect at the next tick and bypasses
  // cooldown (an operator asked). Outside [min_nodes, max_nodes] is
  // INVALID_ARGUMENT; an unknown pool NOT_FOUND.
  absl::Status ScalePool(const std::string& name, int target,
                         const Actor& actor);
  // Closes a tripped replacement breaker and says whether it was open (no
  // event when it was not); NOT_FOUND for an unknown pool. If the pool is
  // still too unhealthy the breaker trips again at the next tick.
  absl::StatusOr<bool> ResetBreaker(const std::string& name,
                                    const Actor& actor);

  PoolCounters counters();

 private:
  class CountingProvider;
  struct Shared;
  struct Pool {
    // Fixed after Init.
    PoolConfig config;
    std::unique_ptr<Autoscaler> autoscaler;
    std::unique_ptr<MetricsSource> source;
    std::unique_ptr<ProviderSelector> selector;
    std::string user_data;         // The template (read from user_data_file).
    bool user_data_token = false;  // It uses {{.BootstrapToken}}.
    // Owned by the tick that holds `busy` (at most one per pool).
    std::map<std::string, PoolRemoval> removals;
    std::vector<UtilizationSample> history;
    // Shared with the API.
    absl::Mutex mu;
    bool busy ABSL_GUARDED_BY(mu) = false;  // A tick of this pool runs.
    // Node snapshots numbered up to this one may have been read before its
    // last tick finished; only a later one may tick it.
    uint64_t stale_through ABSL_GUARDED_BY(mu) = 0;
    int target ABSL_GUARDED_BY(mu) = -1;  // -1: not decided yet.
    std::optional<int> manual_target ABSL_GUARDED_BY(mu);
    std::string manual_actor ABSL_GUARDED_BY(mu);
    absl::Time last_scale ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    std::string last_decision ABSL_GUARDED_BY(mu);
    bool breaker_open ABSL_GUARDED_BY(mu) = false;
    PoolStatus status ABSL_GUARDED_BY(mu);
  };
  // What carrying out a plan changed, for the pool's status.
  struct Outcome {
    int added = 0;
    int removed = 0;
    int new_pending = 0;
  };
  using InstanceMap = std::map<std::string, InstanceInfo>;
  // What each provider listed this tick, by provider name and instance id.
  using Listed = std::map<std::string, std::map<std::string, ProviderInstance>>;

  // `instances`: the unsettled ones (FleetService::ListUnsettledInstances),
  // by id, as this tick changes them; the others (RUNNING, TERMINATED, ...)
  // are read from the fleet when needed.
  void ManageInstances(const NodeIndex& nodes, InstanceMap& instances);
  void ManageInstance(const NodeIndex& nodes, InstanceInfo& inst,
                      Listed& listed);
  // Claims the pool (false while its previous tick runs) and runs its tick
  // inline or on a worker.
  bool Claim(Pool& pool, uint64_t snapshot);
  // Waits until no tick runs (with `with_calls`, and no provider call), or
  // until `limit` has passed on the clock; true when idle.
  bool AwaitIdle(absl::Duration limit, bool with_calls);
  void Submit(std::function<void()> job);
  void WorkerLoop();
  void TickPool(Pool& pool, const NodeIndex& nodes, InstanceMap& instances);
  PoolSnapshot Snapshot(Pool& pool, const NodeIndex& nodes,
                        const InstanceMap& instances);
  void Execute(Pool& pool, const PoolPlan& plan, const NodeIndex& nodes,
               InstanceMap& instances);
  void ApplyDecision(Pool& pool, const PoolPlan& plan);
  void RecordSource(Pool& pool, const PoolPlan& plan);
  void ProvisionPlanned(Pool& pool, const PoolPlan& plan, Outcome& out);
  void ScaleDown(Pool& pool, const PoolPlan& plan, InstanceMap& instances,
                 Outcome& out);
  void UpdateStatus(Pool& pool, const PoolPlan& plan, const Outcome& out);
  // Provisions one instance for `pool` and records it. Returns its id.
  absl::StatusOr<std::string> ProvisionOne(Pool& pool,
                                           const std::string& purpose);
  // One pool of the configuration, ready to tick; INVALID_ARGUMENT when
  // none of its providers is available or its user data is wrong.
  absl::StatusOr<std::unique_ptr<Pool>> MakePool(const PoolConfig& pc);
  // Reads and checks the pool's user data template into `pool` (the
  // default one for a pool on clouds only that sets none).
  absl::Status LoadUserData(Pool& pool);
  // The variables of the pool's templates (config/template.h) but the
  // bootstrap token.
  std::map<std::string, std::string> TemplateValues(
      const Pool& pool, const std::string& provider, const std::string& region,
      const std::string& instance_type, const std::string& node_id) const;
  // Makes each attempt's user data for the provision `intent` (null when
  // the pool has none).
  ProviderSelector::UserDataFn UserDataFor(const Pool& pool,
                                           const std::string& intent);
  // Events for one Provision call: `pool.provision_failed` when it failed,
  // one `pool.provision_failover` per failed attempt when it succeeded
  // after them.
  void ReportProvisionOutcome(const PoolConfig& pc, const std::string& purpose,
                              const std::vector<FailedAttempt>& failed,
                              const absl::StatusOr<ProviderInstance>& result);
  void RecordProvisioned(const PoolConfig& pc, const ProviderInstance& pi,
                         const std::string& purpose);
  // SSH bootstrap (pool_manager_bootstrap.cc).
  void StartBootstrapper();
  // Starts or waits for the SSH bootstrap of a PENDING_REGISTRATION
  // instance of a pool with setup_commands; true when the instance needs no
  // other management this tick (bootstrapping, or failed and terminated).
  bool MaybeBootstrap(InstanceInfo& inst, Listed& listed);
  // The pool's setup_commands rendered for `inst` (a bootstrap token
  // minted when they use one).
  absl::StatusOr<std::vector<std::string>> RenderSetupCommands(
      const Pool& pool, const InstanceInfo& inst);
  // The instance as its provider lists it (each provider listed once per
  // tick, into `listed`); null when not listed or the provider is unknown.
  const ProviderInstance* ListedInstance(const InstanceInfo& inst,
                                         Listed& listed);
  void FinishBootstrap(const SshBootstrapJob& job,
                       const bootstrap::BootstrapResult& result);
  // When an instance's registration deadline starts: at its creation, or
  // when its SSH bootstrap ended.
  absl::Time RegistrationClockStart(const InstanceInfo& inst) const;
  void StartRemoval(Pool& pool, PoolRemoval removal);
  // True when the removal finished (or the node is gone).
  bool ProgressRemoval(Pool& pool, PoolRemoval& removal, const NodeIndex& nodes,
                       InstanceMap& instances);
  absl::Status TerminateInstance(InstanceInfo instance,
                                 InstanceState final_state,
                                 const std::string& reason);
  // Reconcile's parts. What the event log says was under way when the last
  // control plane stopped (a restart, a new leader): provision intents, and
  // the removals it started (a node's removals live in memory while it
  // runs), with the instance bought to replace each.
  struct History {
    std::map<std::string, std::string> intents;  // provision token -> pool
    // Tokens of provisions for a replacement -> the node it replaces.
    std::map<std::string, std::string> replacing;
    // By node id: the pool and the removal as last recorded.
    std::map<std::string, std::pair<std::string, PoolRemoval>> removals;
  };
  absl::StatusOr<History> ReadHistory();
  // Takes up the removals whose node is not TERMINATED, so the first tick
  // carries them on rather than starting them again (a second machine
  // bought for one node, the first one given back).
  void ResumeRemovals(const History& history);
  void ReconcileProvider(const std::string& provider_name, Provider& provider,
                         std::map<std::string, InstanceInfo>& known,
                         const std::map<std::string, std::string>& intents);
  void ReconcileListed(const std::string& provider_name, Provider& provider,
                       const ProviderInstance& pi,
                       const std::map<std::string, InstanceInfo>& known,
                       const std::map<std::string, std::string>& intents);
  void AdoptInstance(const std::string& provider_name,
                     const ProviderInstance& pi, const std::string& pool);
  void HandleUnknown(const std::string& provider_name, Provider& provider,
                     const ProviderInstance& pi);
  void MarkVanished(const std::string& provider_name,
                    std::map<std::string, InstanceInfo>& known,
                    const std::set<std::string>& seen);
  void TerminateVanishedNode(const std::string& node_id);
  void Upsert(const InstanceInfo& instance);
  absl::Status Emit(const std::string& kind, const std::string& pool,
                    const std::string& node_id, const std::string& message,
                    std::map<std::string, std::string> details = {});
  // The counting wrapper of a registered provider; null when unknown.
  Provider* GetProvider(const std::string& name);
  void Count(std::map<std::string, int64_t> PoolCounters::*field,
             const std::string& key);
  PoolStatus StatusLocked(Pool& pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool.mu);

  FleetService& fleet_;
  const ProviderRegistry& providers_;
  Notifier& notifier_;
  Clock& clock_;
  const Config config_;
  const PoolManagerOptions options_;
  const Actor actor_{"pool-manager"};
  // Lives as long as the longest provider call abandoned at Stop().
  const std::shared_ptr<Shared> shared_;
  std::map<std::string, std::unique_ptr<Pool>> pools_;  // Fixed after Init.
  // Fixed after Init.
  std::map<std::string, std::unique_ptr<CountingProvider>> counted_;
  std::vector<std::thread> workers_;  // With options_.threads; from Init.
  std::unique_ptr<SshBootstrapper> bootstrapper_;  // From Init.
  absl::Mutex counters_mu_;
  PoolCounters counters_ ABSL_GUARDED_BY(counters_mu_);
  // Provision calls made, for unique names and tokens; pools tick at once.
  std::atomic<uint64_t> seq_{0};
  std::string token_nonce_;  // Fixed at construction.
};

}  // namespace navarch

#endif  // NAVARCH_POOL_POOL_MANAGER_H_
