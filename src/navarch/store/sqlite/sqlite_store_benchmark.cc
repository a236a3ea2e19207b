// Commit throughput of the SQLite store: one writer against many, with the
// WAL fsynced at every commit (FULL) or not (NORMAL). Each iteration is one
// CommitSync of a new node and one event, what a node registration costs.
//
//   build/bin/sqlite_store_benchmark [--benchmark_filter=...]
//
// items_per_second is acknowledged commits per second across all threads;
// commits_per_txn shows how many commits group commit put in one fsync.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>

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
