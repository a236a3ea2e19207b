#include "navarch/pool/autoscaler.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"

namespace navarch {
namespace {

PoolState State(int current, int min, int max,
                std::optional<double> util = std::nullopt) {
  PoolState s;
  s.name = "train";
  s.current_nodes = current;
  s.healthy_nodes = current;
  s.min_nodes = min;
  s.max_nodes = max;
  s.utilization = util;
  s.now = FakeClock().Now();
  return s;
}

int Target(Autoscaler& a, const PoolState& s) {
  absl::StatusOr<ScaleRecommendation> r = a.Recommend(s);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->target_nodes : -1;
}

TEST(ReactiveTest, ThresholdsAreStrict) {
  ReactiveAutoscaler a(80, 20);
  EXPECT_EQ(Target(a, State(3, 1, 10, 80.0)), 3);  // equal: no change
  EXPECT_EQ(Target(a, State(3, 1, 10, 80.1)), 4);
  EXPECT_EQ(Target(a, State(3, 1, 10, 20.0)), 3);
  EXPECT_EQ(Target(a, State(3, 1, 10, 19.9)), 2);
  auto r = a.Recommend(State(5, 1, 10, 87.34));
  EXPECT_EQ(r->reason, "utilization 87.3% > 80% threshold");
}

TEST(ReactiveTest, MinMaxEdges) {
  ReactiveAutoscaler a(80, 20);
  EXPECT_EQ(Target(a, State(10, 1, 10, 99.0)), 10);  // at max
  EXPECT_EQ(Target(a, State(1, 1, 10, 0.0)), 1);     // at min
  EXPECT_EQ(Target(a, State(0, 2, 10)), 2);          // below min, no data
  EXPECT_EQ(a.Recommend(State(0, 2, 10))->reason, "below minimum: 0 < 2");
  EXPECT_EQ(Target(a, State(3, 1, 10)), 3);  // no data: hold
}

TEST(ReactiveTest, AllUnhealthyStillGetsAHealthyNode) {
  ReactiveAutoscaler a(80, 20);
  PoolState s = State(2, 2, 5, 50.0);
  s.healthy_nodes = 0;  // upstream did nothing here
  EXPECT_EQ(Target(a, s), 3);
  s.current_nodes = 5;  // at max: nothing to add
  EXPECT_EQ(Target(a, s), 5);
}

TEST(QueueTest, CeilAndClamp) {
  QueueAutoscaler a(10);
  PoolState s = State(2, 1, 5);
  s.queue_depth = 0;
  EXPECT_EQ(Target(a, s), 1);
  s.queue_depth = 10;
  EXPECT_EQ(Target(a, s), 1);
  s.queue_depth = 11;
  EXPECT_EQ(Target(a, s), 2);
  s.queue_depth = 1000;
  EXPECT_EQ(Target(a, s), 5);
  EXPECT_EQ(a.Recommend(s)->reason,
            "queue depth 1000 requires 100 nodes (10 jobs/node)");
  s.queue_depth.reset();  // a failing source holds, not min
  EXPECT_EQ(Target(a, s), 2);
  QueueAutoscaler off(0);
  s.queue_depth = 50;
  EXPECT_EQ(Target(off, s), 2);
}

TEST(ScheduledTest, WindowIsEndExclusiveAndDayFiltered) {
  ScheduleWindow w;
  w.start = 9;
  w.end = 17;
  w.min_nodes = 4;
  w.max_nodes = 8;
  w.days = {absl::Weekday::thursday};  // 2026-01-01 is a Thursday
  ScheduledAutoscaler a({w}, nullptr);
  PoolState s = State(2, 1, 10);
  const absl::Time midnight =
      absl::FromCivil(absl::CivilSecond(2026, 1, 1), absl::UTCTimeZone());
  s.now = midnight + absl::Hours(9);
  EXPECT_EQ(Target(a, s), 4);  // start inclusive: clamped into the window
  s.now = midnight + absl::Hours(17) - absl::Seconds(1);
  EXPECT_EQ(Target(a, s), 4);
  s.now = midnight + absl::Hours(17);
  EXPECT_EQ(Target(a, s), 2);  // end exclusive
  s.now = midnight + absl::Hours(8) + absl::Minutes(59);
  EXPECT_EQ(Target(a, s), 2);
  s.now = midnight + absl::Hours(24 + 10);  // Friday
  EXPECT_EQ(Target(a, s), 2);
}

TEST(ScheduledTest, FallbackSeesWindowLimits) {
  ScheduleWindow w;
  w.start = 0;
  w.end = 24;
  w.min_nodes = 1;
  w.max_nodes = 3;
  ScheduledAutoscaler a({w}, std::make_unique<ReactiveAutoscaler>(80, 20));
  PoolState s = State(3, 1, 10, 95.0);
  EXPECT_EQ(Target(a, s), 3);  // window max 3 stops the reactive step
  s.current_nodes = s.healthy_nodes = 2;
  EXPECT_EQ(Target(a, s), 3);
}

TEST(PredictiveTest, NeedsLookbackSamples) {
  PredictiveAutoscaler a(3, 1.2, nullptr);
  PoolState s = State(2, 1, 10, 75.0);
  s.utilization_history = {{s.now - absl::Minutes(1), 60}, {s.now, 75}};
  EXPECT_EQ(Target(a, s), 2);
  EXPECT_EQ(a.Recommend(s)->reason, "insufficient history (2 of 3 samples)");
  PredictiveAutoscaler with_fallback(
      3, 1.2, std::make_unique<ReactiveAutoscaler>(70, 20));
  EXPECT_EQ(Target(with_fallback, s), 3);
}

TEST(PredictiveTest, TrendFormula) {
  PredictiveAutoscaler a(3, 1.2, nullptr);
  PoolState s = State(2, 1, 10, 70.0);
  s.utilization_history = {{s.now - absl::Minutes(2), 60},
                           {s.now - absl::Minutes(1), 65},
                           {s.now, 70}};
  // trend 10, predicted 70 + 12 = 82 > 80: ceil(2 * 82 / 70) = 3
  auto r = a.Recommend(s);
  EXPECT_EQ(r->target_nodes, 3);
  EXPECT_EQ(r->reason, "predicted utilization 82.0% (trend: +10.0)");
  // predicted exactly 80: not above the threshold
  s.utilization = 68.0;
  EXPECT_EQ(Target(a, s), 2);
  // one node at 85% grows (upstream truncated to 1)
  PoolState one = State(1, 0, 10, 85.0);
  one.utilization_history = {{one.now, 85}, {one.now, 85}, {one.now, 85}};
  EXPECT_EQ(Target(a, one), 2);
  one.current_nodes = 10;
  EXPECT_EQ(Target(a, one), 10);
}

std::unique_ptr<Autoscaler> Fixed(int target) {
  class FixedAutoscaler final : public Autoscaler {
   public:
    explicit FixedAutoscaler(int t) : t_(t) {}
    absl::string_view name() const override { return "fixed"; }
    absl::StatusOr<ScaleRecommendation> Recommend(const PoolState&) override {
      if (t_ < 0) return absl::UnavailableError("broken");
      return ScaleRecommendation{t_, absl::StrCat("fixed ", t_)};
    }

   private:
    int t_;
  };
  return std::make_unique<FixedAutoscaler>(target);
}

TEST(CompositeTest, Modes) {
  auto make = [](CompositeMode m) {
    std::vector<std::unique_ptr<Autoscaler>> c;
    c.push_back(Fixed(2));
    c.push_back(Fixed(5));
    c.push_back(Fixed(-1));  // failing child is skipped
    c.push_back(Fixed(4));
    return CompositeAutoscaler(m, std::move(c));
  };
  PoolState s = State(3, 1, 10);
  auto max = make(CompositeMode::kMax);
  auto min = make(CompositeMode::kMin);
  auto avg = make(CompositeMode::kAvg);
  EXPECT_EQ(Target(max, s), 5);
  EXPECT_EQ(max.Recommend(s)->reason, "max of 3 autoscalers: [2 5 4]; fixed 5");
  EXPECT_EQ(Target(min, s), 2);
  EXPECT_EQ(Target(avg, s), 3);  // floor(11 / 3)
  std::vector<std::unique_ptr<Autoscaler>> broken;
  broken.push_back(Fixed(-1));
  CompositeAutoscaler all_failed(CompositeMode::kMax, std::move(broken));
  EXPECT_FALSE(all_failed.Recommend(s).ok());
  CompositeAutoscaler none(CompositeMode::kMax, {});
  EXPECT_EQ(Target(none, s), 3);
}

TEST(DecideTest, ClampsToMinMax) {
  auto big = Fixed(50);
  EXPECT_EQ(Decide(big.get(), State(3, 1, 10)).target_nodes, 10);
  auto zero = Fixed(0);
  EXPECT_EQ(Decide(zero.get(), State(3, 2, 10)).target_nodes, 2);
  // Without an autoscaler min_nodes is still kept (upstream: never).
  EXPECT_EQ(Decide(nullptr, State(0, 2, 10)).target_nodes, 2);
  EXPECT_EQ(Decide(nullptr, State(12, 2, 10)).target_nodes, 10);
  EXPECT_EQ(Decide(nullptr, State(5, 2, 10)).target_nodes, 5);
  auto broken = Fixed(-1);
  EXPECT_EQ(Decide(broken.get(), State(5, 2, 10)).target_nodes, 5);
}

TEST(DecideTest, CooldownEdges) {
  auto up = Fixed(6);
  PoolState s = State(5, 1, 10);
  s.cooldown = absl::Minutes(5);
  s.last_scale_time = s.now - absl::Minutes(5) + absl::Seconds(1);
  ScaleRecommendation r = Decide(up.get(), s);
  EXPECT_EQ(r.target_nodes, 5);
  EXPECT_EQ(r.reason.rfind("cooldown 1s left", 0), 0u) << r.reason;
  s.last_scale_time = s.now - absl::Minutes(5);  // exactly elapsed
  EXPECT_EQ(Decide(up.get(), s).target_nodes, 6);
  // Cooldown never blocks reaching min_nodes.
  PoolState low = State(0, 2, 10);
  low.cooldown = absl::Minutes(5);
  low.last_scale_time = low.now;
  EXPECT_EQ(Decide(up.get(), low).target_nodes, 2);
}

TEST(MakeAutoscalerTest, FromConfig) {
  AutoscalingConfig c;
  c.type = AutoscalerType::kComposite;
  c.mode = CompositeMode::kMin;
  AutoscalingConfig q;
  q.type = AutoscalerType::kQueue;
  AutoscalingConfig p;
  p.type = AutoscalerType::kPredictive;
  p.fallback.push_back(AutoscalingConfig{});
  c.autoscalers = {q, p};
  auto a = MakeAutoscaler(c);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name(), "composite");
  PoolState s = State(4, 1, 10, 50.0);
  s.queue_depth = 25;
  EXPECT_EQ(Target(*a, s), 3);  // min(queue 3, reactive fallback 4)
}

}  // namespace
}  // namespace navarch
