#include "navarch/fleet/node_state.h"

#include "gtest/gtest.h"

namespace navarch {
namespace {

constexpr NodeStatus A = NODE_STATUS_ACTIVE, C = NODE_STATUS_CORDONED,
                     D = NODE_STATUS_DRAINING, U = NODE_STATUS_UNHEALTHY,
                     T = NODE_STATUS_TERMINATED,
                     X = NODE_STATUS_UNKNOWN;  // X in the table: refused

struct Row {
  NodeStatus from;
  NodeStatus reg, unhealthy, timeout, cordon, uncordon, drain, terminated;
};

// The table in node_state.h, executable.
const Row kTable[] = {
    {A, A, U, U, C, X, D, T}, {C, C, U, U, C, A, D, T},
    {D, D, U, U, D, A, D, T}, {U, U, U, U, U, A, U, T},
    {T, X, T, T, X, X, X, T},
};

TEST(NodeStateTest, FollowsTheTable) {
  const NodeTrigger triggers[] = {
      NodeTrigger::kRegister,         NodeTrigger::kUnhealthy,
      NodeTrigger::kHeartbeatTimeout, NodeTrigger::kCordon,
      NodeTrigger::kUncordon,         NodeTrigger::kDrain,
      NodeTrigger::kTerminated};
  for (const Row& row : kTable) {
    const NodeStatus expected[] = {row.reg,       row.unhealthy, row.timeout,
                                   row.cordon,    row.uncordon,  row.drain,
                                   row.terminated};
    for (int i = 0; i < 7; ++i) {
      auto got = NextStatus("n1", row.from, triggers[i]);
      if (expected[i] == X) {
        EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition)
            << NodeStatus_Name(row.from) << " " << TriggerName(triggers[i]);
      } else {
        ASSERT_TRUE(got.ok())
            << NodeStatus_Name(row.from) << " " << TriggerName(triggers[i]);
        EXPECT_EQ(*got, expected[i])
            << NodeStatus_Name(row.from) << " " << TriggerName(triggers[i]);
      }
    }
  }
}

TEST(NodeStateTest, NewNodesOnlyRegister) {
  EXPECT_EQ(*NextStatus("n1", NODE_STATUS_UNKNOWN, NodeTrigger::kRegister),
            NODE_STATUS_ACTIVE);
  EXPECT_FALSE(
      NextStatus("n1", NODE_STATUS_UNKNOWN, NodeTrigger::kCordon).ok());
}

TEST(NodeStateTest, UncordonOfActiveSaysWhy) {
  auto s = NextStatus("gpu-7", NODE_STATUS_ACTIVE, NodeTrigger::kUncordon);
  EXPECT_EQ(s.status().message(),
            "node gpu-7 is not cordoned (current status: NODE_STATUS_ACTIVE)");
}

}  // namespace
}  // namespace navarch
