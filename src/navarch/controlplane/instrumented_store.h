// A Store that measures the one it wraps: how long commits take as the fleet
// core sees them (queueing, the transaction and its fsync, until `done`
// runs), and how they end. A decorator, so no backend needs a metrics hook.
#ifndef NAVARCH_CONTROLPLANE_INSTRUMENTED_STORE_H_
#define NAVARCH_CONTROLPLANE_INSTRUMENTED_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "navarch/base/clock.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/store/store.h"

namespace navarch {

class InstrumentedStore final : public Store {
 public:
  // Registers navarch_store_* families in `registry`, which must outlive
  // this. Every call is forwarded to `inner`.
  InstrumentedStore(std::unique_ptr<Store> inner, Clock& clock,
                    MetricsRegistry& registry);

  void Commit(WriteBatch batch,
              std::function<void(absl::Status)> done) override;
  absl::Status UpdateHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) override;
  absl::StatusOr<StoreSnapshot> Load() override { return inner_->Load(); }
  absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string& node_id) override {
    return inner_->GetNode(node_id);
  }
  absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string& command_id) override {
    return inner_->GetCommand(command_id);
  }
  absl::StatusOr<EventPage> ListEvents(const EventQuery& query) override {
    return inner_->ListEvents(query);
  }
  using Store::Prune;
  absl::StatusOr<int64_t> Prune(const PruneRequest& request) override {
    return inner_->Prune(request);
  }
  absl::Status Ping() override { return inner_->Ping(); }
  void Close() override { inner_->Close(); }
  std::string Name() const override { return inner_->Name(); }

 private:
  void Record(const char* operation, absl::Duration start,
              const absl::Status& status);

  std::unique_ptr<Store> inner_;
  Clock& clock_;
  CounterFamily& operations_;
  HistogramFamily& latency_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_INSTRUMENTED_STORE_H_
