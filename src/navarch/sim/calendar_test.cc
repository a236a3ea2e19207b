#include "navarch/sim/calendar.h"

#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace navarch::sim {
namespace {

using Ran = std::tuple<int, uint32_t, int>;  // seconds, agent, kind

absl::Time S(int s) { return absl::FromUnixSeconds(s); }

TEST(AgentCalendarTest, TicksRunByTimeThenAgentThenKindNotByQueueOrder) {
  AgentCalendar cal;
  cal.Add(S(20), 1, AgentCalendar::kHealth, 0);
  cal.Add(S(10), 7, AgentCalendar::kHeartbeat, 0);
  cal.Add(S(10), 2, AgentCalendar::kHealth, 0);
  cal.Add(S(10), 2, AgentCalendar::kHeartbeat, 0);
  cal.Add(S(20), 0, AgentCalendar::kHeartbeat, 5);
  EXPECT_EQ(cal.NextAt(), S(10));
  std::vector<Ran> ran;
  auto record = [&](absl::Time t) {
    return [&ran, t](uint32_t agent, AgentCalendar::Kind kind, uint64_t) {
      ran.emplace_back(absl::ToUnixSeconds(t), agent, kind);
    };
  };
  cal.RunAt(S(10), record(S(10)));
  EXPECT_EQ(ran, (std::vector<Ran>{{10, 2, 0}, {10, 2, 1}, {10, 7, 0}}));
  EXPECT_EQ(cal.NextAt(), S(20));
  ran.clear();
  uint64_t epoch = 0;
  cal.RunAt(S(20), [&](uint32_t agent, AgentCalendar::Kind kind, uint64_t e) {
    ran.emplace_back(20, agent, kind);
    if (agent == 0) epoch = e;
  });
  EXPECT_EQ(ran, (std::vector<Ran>{{20, 0, 0}, {20, 1, 1}}));
  EXPECT_EQ(epoch, 5u);
  EXPECT_EQ(cal.NextAt(), absl::InfiniteFuture());
  EXPECT_EQ(cal.size(), 0u);
}

TEST(AgentCalendarTest, FiredIsWhatTheRuleWouldHaveRunByNow) {
  AgentCalendar cal;
  // Outside a run: everything due up to now has run (the instant's ticks
  // come before the clock's timers).
  EXPECT_TRUE(cal.Fired(S(9), 3, AgentCalendar::kHealth, S(10)));
  EXPECT_TRUE(cal.Fired(S(10), 3, AgentCalendar::kHealth, S(10)));
  EXPECT_FALSE(cal.Fired(S(11), 0, AgentCalendar::kHeartbeat, S(10)));
  // Inside the run at 10, while agent 3's heartbeat runs: keys up to it
  // have run, later ones not; ticks queued meanwhile for 10 still run.
  cal.Add(S(10), 3, AgentCalendar::kHeartbeat, 0);
  std::vector<Ran> ran;
  cal.RunAt(S(10), [&](uint32_t agent, AgentCalendar::Kind kind, uint64_t) {
    ran.emplace_back(10, agent, kind);
    if (agent != 3) return;
    EXPECT_TRUE(cal.Fired(S(10), 2, AgentCalendar::kHealth, S(10)));
    EXPECT_TRUE(cal.Fired(S(10), 3, AgentCalendar::kHeartbeat, S(10)));
    EXPECT_FALSE(cal.Fired(S(10), 3, AgentCalendar::kHealth, S(10)));
    EXPECT_FALSE(cal.Fired(S(10), 4, AgentCalendar::kHeartbeat, S(10)));
    EXPECT_TRUE(cal.Fired(S(5), 9, AgentCalendar::kHeartbeat, S(10)));
    cal.Add(S(10), 4, AgentCalendar::kHeartbeat, 0);
  });
  EXPECT_EQ(ran, (std::vector<Ran>{{10, 3, 0}, {10, 4, 0}}));
  EXPECT_TRUE(cal.Fired(S(10), 9, AgentCalendar::kHealth, S(10)));
}

}  // namespace
}  // namespace navarch::sim
