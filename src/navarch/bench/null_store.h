// A Store that keeps nothing and answers at once: the fleet core's own cost,
// measured without any store's (benchmarks only; it breaks the durability
// contract on purpose).
#ifndef NAVARCH_BENCH_NULL_STORE_H_
#define NAVARCH_BENCH_NULL_STORE_H_

#include <string>
#include <vector>

#include "navarch/store/store.h"

namespace navarch::bench {

class NullStore final : public Store {
 public:
  void Commit(WriteBatch, std::function<void(absl::Status)> done) override {
    if (done) done(absl::OkStatus());
  }
  absl::Status UpdateHeartbeats(const std::vector<HeartbeatUpdate>&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<StoreSnapshot> Load() override { return StoreSnapshot{}; }
  absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string&) override {
    return std::optional<NodeRecord>();
  }
  absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string&) override {
    return std::optional<CommandRecord>();
  }
  absl::StatusOr<EventPage> ListEvents(const EventQuery&) override {
    return EventPage{};
  }
  using Store::Prune;
  absl::StatusOr<int64_t> Prune(const PruneRequest&) override { return 0; }
  absl::Status Ping() override { return absl::OkStatus(); }
  void Close() override {}
  std::string Name() const override { return "null"; }
};

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_NULL_STORE_H_
