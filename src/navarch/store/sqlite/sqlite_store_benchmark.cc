// Commit throughput of the SQLite store: one writer against many, with the
// WAL fsynced at every commit (FULL) or not (NORMAL). Each iteration is one
// CommitSync of a new node and one event, what a node registration costs.
//
//   build/bin/sqlite_store_benchmark [--benchmark_filter=...]
//
// items_per_second is acknowledged commits per second across all threads;
// commits_per_txn shows how many commits group commit put in one fsync.
//
// BM_UpdateHeartbeats is the once-a-second liveness flush alone: every one of
// N registered nodes (records of about the size RegisterNode stores) gets a
// newer heartbeat with metrics, in one UpdateHeartbeats call (FULL sync).
// items_per_second is heartbeats per second; the time is one flush. On a
// busy machine wall time is noisy; the counters measure the work itself, per
// flush: cpu_ms (CPU of the whole process, mostly the writer thread) and
// written_MB (bytes the process handed to write(2): WAL and checkpoints).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "navarch/api/time_util.h"
#include "navarch/store/sqlite/sqlite_store.h"

namespace navarch {
namespace {

std::unique_ptr<SqliteStore> g_store;
std::filesystem::path g_dir;
std::atomic<int64_t> g_next{0};

WriteBatch Registration(int64_t n) {
  std::string id = absl::StrCat("node-", n);
  WriteBatch b;
  NodeRecord& r = b.nodes.emplace_back();
  r.set_version(1);
  r.mutable_node()->set_node_id(id);
  r.mutable_node()->set_pool("bench");
  r.mutable_node()->set_status(NODE_STATUS_ACTIVE);
  for (int g = 0; g < 8; ++g) r.mutable_node()->add_gpus()->set_index(g);
  Event& e = b.events.emplace_back();
  e.set_kind("node.registered");
  e.set_node_id(id);
  e.set_pool("bench");
  *e.mutable_time() = ToTimestamp(absl::FromUnixSeconds(1767225600 + n));
  return b;
}

void BM_Commit(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_dir = std::filesystem::temp_directory_path() /
            absl::StrCat("navarch-bench-", getpid());
    std::filesystem::remove_all(g_dir);
    SqliteOptions options;
    options.path = (g_dir / "bench.db").string();
    options.sync = state.range(0) == 0 ? SqliteOptions::Sync::kFull
                                       : SqliteOptions::Sync::kNormal;
    auto store = SqliteStore::Open(options);
    if (!store.ok()) {
      state.SkipWithError(std::string(store.status().message()).c_str());
      return;
    }
    g_store = *std::move(store);
  }
  // The benchmark library holds every thread here until thread 0 is ready.
  for (auto _ : state) {
    absl::Status s = g_store->CommitSync(Registration(g_next++));
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    SqliteStore::Stats stats = g_store->stats();
    state.counters["commits_per_txn"] =
        stats.transactions > 0
            ? static_cast<double>(stats.jobs) / stats.transactions
            : 0;
    state.SetLabel(state.range(0) == 0 ? "sync=FULL" : "sync=NORMAL");
  }
}

// Thread 0 tears down after every thread has left the loop.
void Teardown(const benchmark::State&) {
  if (g_store) g_store->Close();
  g_store.reset();
  std::filesystem::remove_all(g_dir);
}

// A registered node's record, about the size of a real one (8 GPUs with
// their uuids and names, host metadata): ~1.5 KB serialized.
NodeRecord WideNode(int64_t n) {
  NodeRecord r;
  r.set_version(1);
  NodeInfo* node = r.mutable_node();
  node->set_node_id(absl::StrCat("node-", n));
  node->set_pool("bench");
  node->set_provider("fake");
  node->set_region("us-east-1");
  node->set_zone("us-east-1a");
  node->set_instance_type("p5.48xlarge");
  node->set_status(NODE_STATUS_ACTIVE);
  node->set_status_reason("registered");
  for (int g = 0; g < 8; ++g) {
    GPUInfo* gpu = node->add_gpus();
    gpu->set_index(g);
    gpu->set_uuid(absl::StrCat("GPU-", n, "-", g,
                               "-0000-1111-2222-333344445555-66667777"));
    gpu->set_name("NVIDIA H100 80GB HBM3");
    gpu->set_pci_bus_id(absl::StrCat("00000000:", 10 + g, ":00.0"));
    gpu->set_memory_total(int64_t{80} << 30);
    gpu->set_driver_version("550.90.07");
    gpu->set_cuda_version("12.4");
  }
  node->mutable_metadata()->set_hostname(absl::StrCat("gpu-node-", n));
  node->mutable_metadata()->set_internal_ip("10.0.0.1");
  *node->mutable_registered_at() =
      ToTimestamp(absl::FromUnixSeconds(1767225600));
  return r;
}

NodeMetrics Metrics(int64_t seq) {
  NodeMetrics m;
  m.set_cpu_usage_percent(31.5 + seq % 7);
  m.set_memory_usage_percent(62.25);
  for (int g = 0; g < 8; ++g) {
    GPUMetrics* gm = m.add_gpu_metrics();
    gm->set_gpu_index(g);
    gm->set_temperature(62 + (seq + g) % 9);
    gm->set_power_usage(540);
    gm->set_utilization_percent(88.0);
    gm->set_memory_used(int64_t{70} << 30);
  }
  return m;
}

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Bytes this process has passed to write(2) and the like so far.
int64_t WrittenBytes() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

void BM_UpdateHeartbeats(benchmark::State& state) {
  const int64_t nodes = state.range(0);
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("navarch-bench-hb-", getpid(), "-", nodes);
  std::filesystem::remove_all(dir);
  SqliteOptions options;
  options.path = (dir / "bench.db").string();
  auto opened = SqliteStore::Open(options);
  if (!opened.ok()) {
    state.SkipWithError(std::string(opened.status().message()).c_str());
    return;
  }
  std::unique_ptr<SqliteStore> store = *std::move(opened);
  for (int64_t i = 0; i < nodes;) {
    WriteBatch b;
    for (int64_t end = std::min(nodes, i + 1000); i < end; ++i)
      b.nodes.push_back(WideNode(i));
    if (absl::Status s = store->CommitSync(std::move(b)); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      return;
    }
  }
  std::vector<HeartbeatUpdate> updates(nodes);
  int64_t seq = 0;
  double cpu = 0;
  int64_t written = 0;
  for (auto _ : state) {
    state.PauseTiming();
    ++seq;
    for (int64_t i = 0; i < nodes; ++i) {
      updates[i].node_id = absl::StrCat("node-", i);
      updates[i].last_heartbeat =
          absl::FromUnixSeconds(1767225600) + absl::Seconds(seq);
      updates[i].metrics = Metrics(seq + i);
    }
    double cpu_before = CpuSeconds();
    int64_t written_before = WrittenBytes();
    state.ResumeTiming();
    if (absl::Status s = store->UpdateHeartbeats(updates); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    state.PauseTiming();
    cpu += CpuSeconds() - cpu_before;
    written += WrittenBytes() - written_before;
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * nodes);
  if (state.iterations() > 0) {
    double n = static_cast<double>(state.iterations());
    state.counters["cpu_ms"] = cpu * 1e3 / n;
    state.counters["written_MB"] = written / 1e6 / n;
  }
  store->Close();
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_UpdateHeartbeats)
    ->ArgName("nodes")
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_Commit)
    ->Arg(0)
    ->Arg(1)
    ->ThreadRange(1, 16)
    ->UseRealTime()
    ->MinTime(1.0)
    ->Teardown(Teardown);

}  // namespace
}  // namespace navarch

BENCHMARK_MAIN();
