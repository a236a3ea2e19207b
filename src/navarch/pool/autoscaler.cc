#include "navarch/pool/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace navarch {
namespace {

int Clamp(int v, int lo, int hi) { return std::max(lo, std::min(v, hi)); }

ScaleRecommendation Hold(const PoolState& state, std::string reason) {
  return {state.current_nodes, std::move(reason)};
}

}  // namespace

absl::StatusOr<ScaleRecommendation> ReactiveAutoscaler::Recommend(
    const PoolState& s) {
  // Upstream also required healthy > 0 here, so a pool whose nodes were all
  // unhealthy was never given a healthy one.
  if (s.healthy_nodes < s.min_nodes && s.healthy_nodes < s.current_nodes &&
      s.current_nodes < s.max_nodes) {
    return ScaleRecommendation{
        std::min(s.current_nodes + 1, s.max_nodes),
        absl::StrCat("healthy nodes below minimum: ", s.healthy_nodes, " < ",
                     s.min_nodes)};
  }
  if (s.current_nodes < s.min_nodes) {
    return ScaleRecommendation{
        s.min_nodes,
        absl::StrCat("below minimum: ", s.current_nodes, " < ", s.min_nodes)};
  }
  if (!s.utilization.has_value()) {
    return Hold(s, "no utilization data");
  }
  const double u = *s.utilization;
  if (u > up_ && s.current_nodes < s.max_nodes) {
    return ScaleRecommendation{
        std::min(s.current_nodes + 1, s.max_nodes),
        absl::StrFormat("utilization %.1f%% > %d%% threshold", u, up_)};
  }
  if (u < down_ && s.current_nodes > s.min_nodes) {
    return ScaleRecommendation{
        std::max(s.current_nodes - 1, s.min_nodes),
        absl::StrFormat("utilization %.1f%% < %d%% threshold", u, down_)};
  }
  return Hold(s, absl::StrFormat("no scaling needed (utilization %.1f%%)", u));
}

absl::StatusOr<ScaleRecommendation> QueueAutoscaler::Recommend(
    const PoolState& s) {
  if (jobs_per_node_ <= 0) return Hold(s, "jobs_per_node not configured");
  // Upstream read an always-zero queue depth and drove the pool to min.
  if (!s.queue_depth.has_value()) return Hold(s, "queue depth unavailable");
  const int q = std::max(0, *s.queue_depth);
  const int needed = (q + jobs_per_node_ - 1) / jobs_per_node_;
  return ScaleRecommendation{
      Clamp(needed, s.min_nodes, s.max_nodes),
      absl::StrCat("queue depth ", q, " requires ", needed, " nodes (",
                   jobs_per_node_, " jobs/node)")};
}

absl::StatusOr<ScaleRecommendation> ScheduledAutoscaler::Recommend(
    const PoolState& s) {
  const absl::CivilHour hour = absl::ToCivilHour(s.now, s.time_zone);
  const absl::Weekday day = absl::GetWeekday(absl::CivilDay(hour));
  for (const ScheduleWindow& w : schedule_) {
    const bool day_ok =
        w.days.empty() ||
        std::find(w.days.begin(), w.days.end(), day) != w.days.end();
    // End-exclusive: a 9..17 window covers 09:00 up to 16:59.
    if (!day_ok || hour.hour() < w.start || hour.hour() >= w.end) continue;
    PoolState inner = s;
    inner.min_nodes = w.min_nodes;
    inner.max_nodes = w.max_nodes;
    const std::string window =
        absl::StrCat("schedule ", w.start, "-", w.end, "h [", w.min_nodes, ", ",
                     w.max_nodes, "]");
    ScaleRecommendation r;
    if (fallback_ != nullptr) {
      absl::StatusOr<ScaleRecommendation> f = fallback_->Recommend(inner);
      if (!f.ok()) return f.status();
      r = *std::move(f);
    } else {
      // Upstream returned the current size here, so a schedule without a
      // fallback never scaled.
      r = Hold(s, "no fallback autoscaler");
    }
    r.target_nodes = Clamp(r.target_nodes, w.min_nodes, w.max_nodes);
    r.reason = absl::StrCat(window, ": ", r.reason);
    return r;
  }
  if (fallback_ != nullptr) return fallback_->Recommend(s);
  return Hold(s, "no schedule window active");
}

absl::StatusOr<ScaleRecommendation> PredictiveAutoscaler::Recommend(
    const PoolState& s) {
  const auto& h = s.utilization_history;
  const size_t n = h.size();
  const size_t lookback = static_cast<size_t>(std::max(lookback_, 1));
  if (n < lookback || n == 0) {
    if (fallback_ != nullptr) return fallback_->Recommend(s);
    return Hold(s, absl::StrCat("insufficient history (", n, " of ", lookback,
                                " samples)"));
  }
  const double trend =
      lookback >= 2 ? h[n - 1].percent - h[n - lookback].percent : 0.0;
  const double base = s.utilization.value_or(h[n - 1].percent);
  const double predicted = base + trend * growth_;
  if (predicted > threshold_ && s.current_nodes < s.max_nodes) {
    // Upstream truncated (1 node at 85% stayed 1) and gave 0 for an empty
    // pool; round up and count an empty pool as one node.
    const int base_nodes = std::max(s.current_nodes, 1);
    const int want =
        static_cast<int>(std::ceil(base_nodes * predicted / target_ - 1e-9));
    return ScaleRecommendation{
        std::min(std::max(want, s.current_nodes + 1), s.max_nodes),
        absl::StrFormat("predicted utilization %.1f%% (trend: %+.1f)",
                        predicted, trend)};
  }
  if (fallback_ != nullptr) return fallback_->Recommend(s);
  return Hold(
      s, absl::StrFormat("prediction below threshold (%.1f%%)", predicted));
}

absl::StatusOr<ScaleRecommendation> CompositeAutoscaler::Recommend(
    const PoolState& s) {
  if (children_.empty()) return Hold(s, "no autoscalers configured");
  std::vector<ScaleRecommendation> ok;
  for (const auto& child : children_) {
    absl::StatusOr<ScaleRecommendation> r = child->Recommend(s);
    if (r.ok()) ok.push_back(*std::move(r));
  }
  if (ok.empty()) return absl::UnavailableError("all autoscalers failed");
  std::vector<int> targets;
  for (const auto& r : ok) targets.push_back(r.target_nodes);
  const std::string list = absl::StrCat("[", absl::StrJoin(targets, " "), "]");
  const std::string mode(CompositeModeName(mode_));
  if (mode_ == CompositeMode::kAvg) {
    int sum = 0;
    for (int t : targets) sum += t;
    // Floor, as upstream: the average never scales past every child.
    return ScaleRecommendation{
        sum / static_cast<int>(targets.size()),
        absl::StrCat("avg of ", targets.size(), " autoscalers: ", list)};
  }
  auto pick = mode_ == CompositeMode::kMax
                  ? std::max_element(ok.begin(), ok.end(),
                                     [](const auto& a, const auto& b) {
                                       return a.target_nodes < b.target_nodes;
                                     })
                  : std::min_element(ok.begin(), ok.end(),
                                     [](const auto& a, const auto& b) {
                                       return a.target_nodes < b.target_nodes;
                                     });
  return ScaleRecommendation{
      pick->target_nodes,
      absl::StrCat(mode, " of ", targets.size(), " autoscalers: ", list, "; ",
                   pick->reason)};
}

std::unique_ptr<Autoscaler> MakeAutoscaler(const AutoscalingConfig& c) {
  auto fallback = [&]() -> std::unique_ptr<Autoscaler> {
    return c.fallback.empty() ? nullptr : MakeAutoscaler(c.fallback.front());
  };
  switch (c.type) {
    case AutoscalerType::kReactive:
      return std::make_unique<ReactiveAutoscaler>(c.scale_up_at,
                                                  c.scale_down_at);
    case AutoscalerType::kQueue:
      return std::make_unique<QueueAutoscaler>(c.jobs_per_node);
    case AutoscalerType::kScheduled:
      return std::make_unique<ScheduledAutoscaler>(c.schedule, fallback());
    case AutoscalerType::kPredictive:
      return std::make_unique<PredictiveAutoscaler>(
          c.lookback_window, c.growth_factor, fallback());
    case AutoscalerType::kComposite: {
      std::vector<std::unique_ptr<Autoscaler>> children;
      for (const AutoscalingConfig& child : c.autoscalers) {
        children.push_back(MakeAutoscaler(child));
      }
      return std::make_unique<CompositeAutoscaler>(c.mode, std::move(children));
    }
  }
  return nullptr;
}

bool InCooldown(const PoolState& s) {
  return CooldownLeft(s) > absl::ZeroDuration();
}

absl::Duration CooldownLeft(const PoolState& s) {
  if (s.last_scale_time == absl::InfinitePast()) return absl::ZeroDuration();
  const absl::Duration left = s.last_scale_time + s.cooldown - s.now;
  return left > absl::ZeroDuration() ? left : absl::ZeroDuration();
}

ScaleRecommendation Decide(Autoscaler* autoscaler, const PoolState& s) {
  // What min/max alone require; applies even in cooldown.
  const int forced = Clamp(s.current_nodes, s.min_nodes, s.max_nodes);
  std::string forced_reason =
      s.current_nodes < s.min_nodes
          ? absl::StrCat("below minimum: ", s.current_nodes, " < ", s.min_nodes)
      : s.current_nodes > s.max_nodes
          ? absl::StrCat("above maximum: ", s.current_nodes, " > ", s.max_nodes)
          : "no scaling needed";
  ScaleRecommendation r{forced, forced_reason};
  if (autoscaler != nullptr) {
    absl::StatusOr<ScaleRecommendation> rec = autoscaler->Recommend(s);
    if (rec.ok()) {
      r = *std::move(rec);
      const int clamped = Clamp(r.target_nodes, s.min_nodes, s.max_nodes);
      if (clamped != r.target_nodes) {
        absl::StrAppend(&r.reason, " (clamped to [", s.min_nodes, ", ",
                        s.max_nodes, "])");
        r.target_nodes = clamped;
      }
    } else {
      absl::StrAppend(&r.reason, " (autoscaler: ", rec.status().message(), ")");
    }
  }
  if (r.target_nodes != forced && r.target_nodes != s.current_nodes &&
      InCooldown(s)) {
    return ScaleRecommendation{
        forced, absl::StrCat("cooldown ", absl::FormatDuration(CooldownLeft(s)),
                             " left; holding at ", forced, " (wanted ",
                             r.target_nodes, ": ", r.reason, ")")};
  }
  return r;
}

}  // namespace navarch
