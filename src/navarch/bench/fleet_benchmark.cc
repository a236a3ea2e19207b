// Hot paths of the control plane, in process (no transport):
//   - SendHeartbeat in the fleet core (memory store), at 1k and 100k nodes,
//     one and two threads (the server has two cores);
//   - the heartbeat flush (every node dirty) to the memory and SQLite stores;
//   - ReportHealth with the default policy, a routine clean report and a
//     fatal XID, over a store that costs nothing (the core's share);
//   - node commits through the core (fatal XID reports) into the null, memory
//     and SQLite stores;
//   - the default policy alone on the same two reports;
//   - start-up: loading N nodes from SQLite into the index (restart);
//   - the pool manager's tick over one pool holding the whole fleet, nothing
//     to do (what each tick costs before it acts: issue 8, target 5).
// Store commit throughput is measured by store/sqlite/sqlite_store_benchmark.
//
//   build/bin/fleet_benchmark [--benchmark_filter=...]
//       [--absl_deadlock_detection=off]
// The last flag turns off Abseil's Mutex deadlock detection, which Debian's
// Abseil (built without NDEBUG) leaves on, to measure what it costs.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "navarch/api/time_util.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/bench/null_store.h"
#include "navarch/bench/workload.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/health/evaluator.h"
#include "navarch/notifier/notifier.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/provider/registry.h"
#include "navarch/store/memory/memory_store.h"
#include "navarch/store/sqlite/sqlite_store.h"

namespace navarch::bench {
namespace {

const FleetShape kShape;

// Node i as RegisterNode stores it.
NodeRecord RecordFor(int64_t i, absl::Time now) {
  RegisterNodeRequest req;
  FillRegister(kShape, i, &req);
  NodeRecord r;
  r.set_version(1);
  NodeInfo* n = r.mutable_node();
  n->set_node_id(req.node_id());
  n->set_provider(req.provider());
  n->set_region(req.region());
  n->set_zone(req.zone());
  n->set_instance_type(req.instance_type());
  *n->mutable_gpus() = req.gpus();
  *n->mutable_metadata() = req.metadata();
  n->set_pool(kShape.pool);
  n->set_status(NODE_STATUS_ACTIVE);
  n->set_status_reason("registered");
  n->set_health_status(HEALTH_STATUS_HEALTHY);
  *n->mutable_registered_at() = ToTimestamp(now);
  *r.mutable_status_changed_at() = ToTimestamp(now);
  return r;
}

// Writes nodes [0, count) in batches of 1,000 (fast even with fsync).
absl::Status Seed(Store& store, int64_t count, absl::Time now) {
  for (int64_t i = 0; i < count;) {
    WriteBatch b;
    for (int64_t end = std::min(count, i + 1000); i < end; ++i)
      b.nodes.push_back(RecordFor(i, now));
    if (absl::Status s = store.CommitSync(std::move(b)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<std::string> Ids(int64_t count) {
  std::vector<std::string> ids;
  ids.reserve(count);
  for (int64_t i = 0; i < count; ++i) ids.push_back(NodeId(kShape, i));
  return ids;
}

// A fleet core on `store` holding `nodes` registered nodes.
struct BenchFleet {
  FakeClock clock;
  PolicyEvaluator evaluator;
  std::unique_ptr<Store> store;
  std::unique_ptr<FleetService> fleet;
  std::vector<std::string> ids;
  std::filesystem::path dir;

  ~BenchFleet() {
    if (fleet) fleet->Stop();
    fleet.reset();
    if (store) store->Close();
    store.reset();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

enum class Backend { kMemory, kNull, kSqlite };

std::unique_ptr<BenchFleet> MakeFleet(Backend backend, int64_t nodes,
                                      std::string* error) {
  auto f = std::make_unique<BenchFleet>();
  switch (backend) {
    case Backend::kMemory:
      f->store = std::make_unique<MemoryStore>();
      break;
    case Backend::kNull:
      f->store = std::make_unique<NullStore>();
      break;
    case Backend::kSqlite: {
      f->dir = std::filesystem::temp_directory_path() /
               absl::StrCat("navarch-fleet-bench-", getpid(), "-", nodes);
      std::filesystem::remove_all(f->dir);
      SqliteOptions options;
      options.path = (f->dir / "bench.db").string();
      auto store = SqliteStore::Open(options);
      if (!store.ok()) {
        *error = std::string(store.status().message());
        return nullptr;
      }
      f->store = *std::move(store);
      break;
    }
  }
  if (backend != Backend::kNull) {
    if (absl::Status s = Seed(*f->store, nodes, f->clock.Now()); !s.ok()) {
      *error = std::string(s.message());
      return nullptr;
    }
  }
  FleetOptions options;
  options.seed = 1;
  f->fleet = std::make_unique<FleetService>(*f->store, f->clock, f->evaluator,
                                            NullLogger(), options);
  if (absl::Status s = f->fleet->Start(); !s.ok()) {
    *error = std::string(s.message());
    return nullptr;
  }
  if (backend == Backend::kNull) {
    // Nothing to load: register through the core.
    for (int64_t i = 0; i < nodes; ++i) {
      RegisterNodeRequest req;
      FillRegister(kShape, i, &req);
      auto r = Await<RegisterNodeResponse>(
          [&](auto done) { f->fleet->RegisterNode(req, std::move(done)); });
      if (!r.ok()) {
        *error = std::string(r.status().message());
        return nullptr;
      }
    }
  }
  f->ids = Ids(nodes);
  return f;
}

// Fleets are expensive to build (100k nodes); the benchmark library runs a
// function several times, so keep them for the whole process.
BenchFleet* CachedFleet(Backend backend, int64_t nodes, std::string* error) {
  static auto* cache =
      new std::map<std::pair<Backend, int64_t>, std::unique_ptr<BenchFleet>>();
  auto& slot = (*cache)[{backend, nodes}];
  if (!slot) slot = MakeFleet(backend, nodes, error);
  return slot.get();
}

// The cached fleet, or null with the benchmark skipped and why.
BenchFleet* FleetOrSkip(benchmark::State& state, Backend backend,
                        int64_t nodes) {
  std::string error;
  BenchFleet* f = CachedFleet(backend, nodes, &error);
  if (f == nullptr) state.SkipWithError(error.c_str());
  return f;
}

void BM_SendHeartbeat(benchmark::State& state) {
  static BenchFleet* f = nullptr;
  const int64_t nodes = state.range(0);
  if (state.thread_index() == 0) {
    f = FleetOrSkip(state, Backend::kMemory, nodes);
    if (f == nullptr) return;
  }
  HeartbeatRequest req;
  FillHeartbeat(kShape, 0, 0, absl::FromUnixSeconds(1767225600), &req);
  int64_t i = state.thread_index() * 7919;
  int64_t errors = 0;
  for (auto _ : state) {
    req.set_node_id(f->ids[i++ % nodes]);
    f->fleet->SendHeartbeat(req,
                            [&errors](absl::StatusOr<HeartbeatResponse> r) {
                              if (!r.ok()) ++errors;
                            });
  }
  if (errors > 0) state.SkipWithError("heartbeat failed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SendHeartbeat)
    ->ArgName("nodes")
    ->Arg(1000)
    ->Arg(100000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Every node heartbeated since the last flush: the flush's whole cost, per
// node (items_per_second). With SQLite this is one transaction of N upserts
// into the narrow node_liveness table.
void BM_FlushHeartbeats(benchmark::State& state) {
  const Backend backend =
      state.range(0) == 0 ? Backend::kMemory : Backend::kSqlite;
  const int64_t nodes = state.range(1);
  BenchFleet* f = FleetOrSkip(state, backend, nodes);
  if (f == nullptr) return;
  HeartbeatRequest req;
  FillHeartbeat(kShape, 0, 0, absl::FromUnixSeconds(1767225600), &req);
  for (auto _ : state) {
    state.PauseTiming();
    f->clock.Advance(absl::Milliseconds(1));
    for (const auto& id : f->ids) {
      req.set_node_id(id);
      f->fleet->SendHeartbeat(req, [](absl::StatusOr<HeartbeatResponse>) {});
    }
    state.ResumeTiming();
    absl::Status s = f->fleet->FlushHeartbeats();
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  state.SetItemsProcessed(state.iterations() * nodes);
  state.SetLabel(backend == Backend::kMemory ? "memory" : "sqlite");
}
BENCHMARK(BM_FlushHeartbeats)
    ->ArgNames({"sqlite", "nodes"})
    ->Args({0, 10000})
    ->Args({1, 10000})
    ->Args({1, 100000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

ReportHealthRequest CleanReport(const std::string& node_id) {
  ReportHealthRequest r;
  r.set_node_id(node_id);
  for (const char* name : {"boot", "nvml", "health_events"}) {
    HealthCheckResult* c = r.add_results();
    c->set_check_name(name);
    c->set_status(HEALTH_STATUS_HEALTHY);
    c->set_message("ok");
    *c->mutable_timestamp() = ToTimestamp(absl::FromUnixSeconds(1767225600));
  }
  return r;
}

ReportHealthRequest XidReport(int64_t i) {
  ReportHealthRequest r = CleanReport(NodeId(kShape, i));
  ReportHealthRequest xid;
  FillXidReport(kShape, i, static_cast<int>(i % 8), 79,
                absl::FromUnixSeconds(1767225600), &xid);
  *r.add_events() = xid.events(0);
  return r;
}

// The heartbeat monitor's check when nobody is silent (every check but the
// rare one that finds a dead node): a scan of the live nodes, under the
// fleet lock. Per node in items_per_second.
void BM_CheckHeartbeats(benchmark::State& state) {
  const int64_t nodes = state.range(0);
  BenchFleet* f = FleetOrSkip(state, Backend::kMemory, nodes);
  if (f == nullptr) return;
  for (auto _ : state) {
    if (f->fleet->CheckHeartbeats() != 0) {
      state.SkipWithError("a node was declared silent");
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * nodes);
}
BENCHMARK(BM_CheckHeartbeats)->ArgName("nodes")->Arg(1000)->Arg(100000);

// arg 0: a clean report (checks only); 1: a fatal XID 79 event. Over 1,000
// nodes round-robin; after the first pass every node is UNHEALTHY, so XID
// iterations measure evaluation and the event records, not the transition.
void BM_ReportHealth(benchmark::State& state) {
  const bool xid = state.range(0) == 1;
  BenchFleet* f = FleetOrSkip(state, Backend::kNull, 1000);
  if (f == nullptr) return;
  std::vector<ReportHealthRequest> reports;
  for (int64_t i = 0; i < 1000; ++i)
    reports.push_back(xid ? XidReport(i) : CleanReport(f->ids[i]));
  int64_t i = 0, errors = 0;
  for (auto _ : state) {
    f->fleet->ReportHealth(reports[i++ % 1000],
                           [&errors](absl::StatusOr<ReportHealthResponse> r) {
                             if (!r.ok()) ++errors;
                           });
  }
  if (errors > 0) state.SkipWithError("report failed");
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(xid ? "xid79" : "clean");
}
BENCHMARK(BM_ReportHealth)->ArgName("xid")->Arg(0)->Arg(1);

// Node commits through the fleet core into each store: a fatal XID report on
// every one of 2,000 nodes (each with 8 GPUs, metadata and one heartbeat's
// metrics) in turn, each committing the node's record and its events. One
// iteration is all 2,000, waiting until the last is committed (SQLite: group
// commit, FULL sync); items_per_second is node commits per second. After the
// first pass every node is UNHEALTHY: the commits are the report's events and
// the node's counters, what a busy fleet commits most.
void BM_NodeCommit(benchmark::State& state) {
  const auto backend = static_cast<Backend>(state.range(0));
  constexpr int64_t kNodes = 2000;
  BenchFleet* f = FleetOrSkip(state, backend, kNodes);
  if (f == nullptr) return;
  HeartbeatRequest beat;
  for (int64_t i = 0; i < kNodes; ++i) {
    FillHeartbeat(kShape, i, 0, f->clock.Now(), &beat);
    f->fleet->SendHeartbeat(beat, [](absl::StatusOr<HeartbeatResponse>) {});
  }
  std::vector<ReportHealthRequest> reports;
  for (int64_t i = 0; i < kNodes; ++i) reports.push_back(XidReport(i));
  absl::Mutex mu;
  int64_t done = 0, errors = 0;
  for (auto _ : state) {
    {
      absl::MutexLock lock(&mu);
      done = 0;
    }
    for (const ReportHealthRequest& r : reports) {
      f->fleet->ReportHealth(r, [&](absl::StatusOr<ReportHealthResponse> s) {
        absl::MutexLock lock(&mu);
        ++done;
        if (!s.ok()) ++errors;
      });
    }
    absl::MutexLock lock(&mu);
    auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return done == kNodes;
    };
    mu.Await(absl::Condition(&all_done));
  }
  if (errors > 0) state.SkipWithError("report failed");
  state.SetItemsProcessed(state.iterations() * kNodes);
  state.SetLabel(backend == Backend::kNull     ? "null"
                 : backend == Backend::kMemory ? "memory"
                                               : "sqlite");
}
BENCHMARK(BM_NodeCommit)
    ->ArgName("store")
    ->Arg(static_cast<int>(Backend::kNull))
    ->Arg(static_cast<int>(Backend::kMemory))
    ->Arg(static_cast<int>(Backend::kSqlite))
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_PolicyEvaluate(benchmark::State& state) {
  const bool xid = state.range(0) == 1;
  PolicyEvaluator evaluator;
  RegisterNodeRequest reg;
  FillRegister(kShape, 0, &reg);
  NodeInfo node = RecordFor(0, absl::FromUnixSeconds(1767225600)).node();
  ReportHealthRequest report = xid ? XidReport(0) : CleanReport(node.node_id());
  for (auto _ : state) {
    HealthEvaluation e = evaluator.Evaluate(node, report);
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(xid ? "xid79" : "clean");
}
BENCHMARK(BM_PolicyEvaluate)->ArgName("xid")->Arg(0)->Arg(1);

// Restart: a new fleet core loading N nodes from SQLite (Store::Load and the
// index).
void BM_StartFromSqlite(benchmark::State& state) {
  const int64_t nodes = state.range(0);
  BenchFleet* f = FleetOrSkip(state, Backend::kSqlite, nodes);
  if (f == nullptr) return;
  for (auto _ : state) {
    auto fleet = std::make_unique<FleetService>(
        *f->store, f->clock, f->evaluator, NullLogger(), FleetOptions{});
    absl::Status s = fleet->Start();
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    // Stopping and freeing the index is not part of a start.
    state.PauseTiming();
    fleet->Stop();
    fleet.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * nodes);
}
BENCHMARK(BM_StartFromSqlite)
    ->ArgName("nodes")
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A pool manager's tick over one pool of N nodes (every node of the fleet,
// each with one heartbeat's metrics), the fake provider, auto_replace on,
// nothing to replace or scale: the scan every tick pays.
void BM_PoolTick(benchmark::State& state) {
  const int64_t nodes = state.range(0);
  BenchFleet* f = FleetOrSkip(state, Backend::kNull, nodes);
  if (f == nullptr) return;
  HeartbeatRequest beat;
  FillHeartbeat(kShape, 0, 0, absl::FromUnixSeconds(1767225600), &beat);
  for (const auto& id : f->ids) {
    beat.set_node_id(id);
    f->fleet->SendHeartbeat(beat, [](absl::StatusOr<HeartbeatResponse>) {});
  }
  ProviderRegistry registry;
  if (!registry
           .Add(std::make_unique<FakeProvider>(f->clock, FakeProviderOptions{}))
           .ok()) {
    state.SkipWithError("provider");
    return;
  }
  Config config;
  ProviderConfig provider;
  provider.name = "fake";
  provider.type = ProviderType::kFake;
  config.providers["fake"] = provider;
  PoolConfig pool;
  pool.name = kShape.pool;
  pool.providers = {PoolProvider{.name = "fake"}};
  pool.instance_type = "h100-8x";
  pool.min_nodes = 0;
  pool.max_nodes = static_cast<int>(nodes);
  pool.health.auto_replace = true;
  pool.health.max_concurrent_replacements = 1000;
  config.pools[pool.name] = pool;
  NoopNotifier notifier;
  PoolManager manager(*f->fleet, registry, notifier, f->clock, config,
                      PoolManagerOptions{.seed = 1});
  if (!manager.Init().ok()) {
    state.SkipWithError("pool manager init");
    return;
  }
  for (auto _ : state) manager.Tick();
  auto status = manager.GetPool(pool.name);
  if (!status.ok() || status->current_nodes != nodes)
    state.SkipWithError("the pool does not hold the fleet");
  state.SetItemsProcessed(state.iterations() * nodes);
}
BENCHMARK(BM_PoolTick)
    ->ArgName("nodes")
    ->Arg(1000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace navarch::bench

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--absl_deadlock_detection=off") == 0) {
      absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
      continue;
    }
    args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
