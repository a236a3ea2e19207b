// Autoscalers: given a pool's state, the number of nodes it should have.
// The formulas are upstream's (inventory §4) with its bugs fixed; each one is
// written out in docs/autoscaling.md. Autoscalers are pure functions of the
// state (no clock, no I/O), so they are tested at their boundaries directly.
// Cooldown and the min/max clamp are applied once, by Decide(), for every
// autoscaler alike.
#ifndef NAVARCH_POOL_AUTOSCALER_H_
#define NAVARCH_POOL_AUTOSCALER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/config/config.h"

namespace navarch {

// One pool-wide utilisation reading (mean over the pool's GPUs).
struct UtilizationSample {
  absl::Time time;
  double percent = 0;
};

struct PoolState {
  std::string name;
  int current_nodes = 0;  // Live nodes plus instances not yet registered.
  int healthy_nodes = 0;  // Live nodes not UNHEALTHY, plus pending instances.
  int min_nodes = 0;
  int max_nodes = 0;
  // Unset: the metrics source failed or there is no sample; autoscalers
  // that need it hold the pool's size rather than guessing.
  std::optional<double> utilization;
  std::optional<int> pending_jobs;
  std::optional<int> queue_depth;
  // Time-ordered, oldest first.
  std::vector<UtilizationSample> utilization_history;
  absl::Time now = absl::InfinitePast();
  absl::TimeZone time_zone = absl::UTCTimeZone();
  absl::Time last_scale_time = absl::InfinitePast();
  absl::Duration cooldown = absl::ZeroDuration();
};

struct ScaleRecommendation {
  int target_nodes = 0;
  std::string reason;
};

// Thread-compatible; the pool manager calls one from one thread at a time.
class Autoscaler {
 public:
  virtual ~Autoscaler() = default;
  virtual absl::string_view name() const = 0;
  // The target before cooldown and clamping. An error means "no opinion";
  // the caller holds the pool's size.
  virtual absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) = 0;
};

// Reactive: step by one on utilisation thresholds (strict inequalities).
class ReactiveAutoscaler final : public Autoscaler {
 public:
  ReactiveAutoscaler(int scale_up_at, int scale_down_at)
      : up_(scale_up_at), down_(scale_down_at) {}
  absl::string_view name() const override { return "reactive"; }
  absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) override;

 private:
  int up_, down_;
};

// Queue: ceil(queue_depth / jobs_per_node) nodes.
class QueueAutoscaler final : public Autoscaler {
 public:
  explicit QueueAutoscaler(int jobs_per_node) : jobs_per_node_(jobs_per_node) {}
  absl::string_view name() const override { return "queue"; }
  absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) override;

 private:
  int jobs_per_node_;
};

// Scheduled: the first matching window replaces min/max; the fallback (or,
// without one, the current size clamped into the window) decides.
class ScheduledAutoscaler final : public Autoscaler {
 public:
  ScheduledAutoscaler(std::vector<ScheduleWindow> schedule,
                      std::unique_ptr<Autoscaler> fallback)
      : schedule_(std::move(schedule)), fallback_(std::move(fallback)) {}
  absl::string_view name() const override { return "scheduled"; }
  absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) override;

 private:
  std::vector<ScheduleWindow> schedule_;
  std::unique_ptr<Autoscaler> fallback_;
};

// Predictive: extrapolates the utilisation trend over the last
// `lookback_window` samples.
class PredictiveAutoscaler final : public Autoscaler {
 public:
  // Upstream hard-coded 80 and 70; they are parameters here (defaults equal).
  PredictiveAutoscaler(int lookback_window, double growth_factor,
                       std::unique_ptr<Autoscaler> fallback,
                       double threshold = 80, double target = 70)
      : lookback_(lookback_window),
        growth_(growth_factor),
        fallback_(std::move(fallback)),
        threshold_(threshold),
        target_(target) {}
  absl::string_view name() const override { return "predictive"; }
  absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) override;

 private:
  int lookback_;
  double growth_;
  std::unique_ptr<Autoscaler> fallback_;
  double threshold_, target_;
};

class CompositeAutoscaler final : public Autoscaler {
 public:
  CompositeAutoscaler(CompositeMode mode,
                      std::vector<std::unique_ptr<Autoscaler>> children)
      : mode_(mode), children_(std::move(children)) {}
  absl::string_view name() const override { return "composite"; }
  absl::StatusOr<ScaleRecommendation> Recommend(
      const PoolState& state) override;

 private:
  CompositeMode mode_;
  std::vector<std::unique_ptr<Autoscaler>> children_;
};

// Builds the autoscaler a pool's `autoscaling:` describes.
std::unique_ptr<Autoscaler> MakeAutoscaler(const AutoscalingConfig& config);

// True while a scaling action happened less than `cooldown` ago. At exactly
// `cooldown` after it, the cooldown is over.
bool InCooldown(const PoolState& state);
absl::Duration CooldownLeft(const PoolState& state);

// What the pool manager does with a pool: the autoscaler's recommendation
// (or, without one, the current size), clamped to [min, max], and held at
// the current size while in cooldown. Clamping into [min, max] is not an
// autoscaling decision and ignores cooldown: min_nodes is kept with or
// without `autoscaling:` (upstream never provisioned it without one).
ScaleRecommendation Decide(Autoscaler* autoscaler, const PoolState& state);

}  // namespace navarch

#endif  // NAVARCH_POOL_AUTOSCALER_H_
