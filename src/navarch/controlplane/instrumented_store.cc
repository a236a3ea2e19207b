#include "navarch/controlplane/instrumented_store.h"

#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/store/sqlite/sqlite_store.h"

namespace navarch {

InstrumentedStore::InstrumentedStore(std::unique_ptr<Store> inner, Clock& clock,
                                     MetricsRegistry& registry)
    : inner_(std::move(inner)),
      clock_(clock),
      operations_(registry.AddCounter(
          "navarch_store_operations_total",
          "Store writes by operation (commit: a state change; heartbeats: a "
          "batch of liveness updates) and status code.",
          {"operation", "code"})),
      latency_(registry.AddHistogram(
          "navarch_store_commit_duration_seconds",
          "Time from submitting a write to the store until it is durable "
          "(group commit queueing, the transaction and its fsync).",
          {"operation"})) {
  // Group commit at work: jobs per transaction = jobs / transactions.
  if (auto* sqlite = dynamic_cast<SqliteStore*>(inner_.get())) {
    registry.AddCollector([sqlite](MetricWriter& w) {
      const SqliteStore::Stats s = sqlite->stats();
      w.Family("navarch_store_transactions_total",
               "SQLite write transactions committed.", MetricType::kCounter,
               {});
      w.Sample({}, static_cast<double>(s.transactions));
      w.Family("navarch_store_jobs_total",
               "Writes run inside SQLite transactions (several share one "
               "transaction under load).",
               MetricType::kCounter, {});
      w.Sample({}, static_cast<double>(s.jobs));
      w.Family("navarch_store_largest_group",
               "Most writes that shared one SQLite transaction so far.",
               MetricType::kGauge, {});
      w.Sample({}, static_cast<double>(s.largest_group));
    });
  }
}

void InstrumentedStore::Record(const char* operation, absl::Duration start,
                               const absl::Status& status) {
  operations_.Add({operation, std::string(StatusCodeName(status.code()))});
  latency_.Observe({operation},
                   absl::ToDoubleSeconds(clock_.SteadyNow() - start));
}

void InstrumentedStore::Commit(WriteBatch batch,
                               std::function<void(absl::Status)> done) {
  const absl::Duration start = clock_.SteadyNow();
  inner_->Commit(std::move(batch),
                 [this, start, done = std::move(done)](absl::Status s) {
                   Record("commit", start, s);
                   done(std::move(s));
                 });
}

absl::Status InstrumentedStore::UpdateHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  const absl::Duration start = clock_.SteadyNow();
  absl::Status s = inner_->UpdateHeartbeats(updates);
  Record("heartbeats", start, s);
  return s;
}

}  // namespace navarch
