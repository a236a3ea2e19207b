// Which committed events wake the pool manager and which become notices:
// shared by the server and the simulator (controllers.h).
#include "navarch/controllers/controllers.h"

#include "gtest/gtest.h"

namespace navarch {
namespace {

Event Issued(NodeCommandType type, const std::string& reason) {
  Event e;
  e.set_kind("command.issued");
  e.set_node_id("gpu-1");
  (*e.mutable_details())["type"] = NodeCommandType_Name(type);
  if (!reason.empty()) (*e.mutable_details())["reason"] = reason;
  return e;
}

TEST(ControllersTest, CordonUncordonAndDrainBecomeNotices) {
  std::optional<Notice> n =
      NoticeFor(Issued(NODE_COMMAND_TYPE_CORDON, "xid 79"));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, NoticeType::kCordon);
  EXPECT_EQ(n->node_id, "gpu-1");
  EXPECT_EQ(n->reason, "xid 79");
  n = NoticeFor(Issued(NODE_COMMAND_TYPE_UNCORDON, ""));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, NoticeType::kUncordon);
  EXPECT_EQ(n->reason, "");
  n = NoticeFor(Issued(NODE_COMMAND_TYPE_DRAIN, "scale down"));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, NoticeType::kDrain);
  EXPECT_FALSE(NoticeFor(Issued(NODE_COMMAND_TYPE_TERMINATE, "")).has_value());
  EXPECT_FALSE(
      NoticeFor(Issued(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC, "")).has_value());
  Event other = Issued(NODE_COMMAND_TYPE_CORDON, "");
  other.set_kind("command.acknowledged");
  EXPECT_FALSE(NoticeFor(other).has_value());
}

TEST(ControllersTest, APoolNodeTurningUnhealthyWakesThePoolManager) {
  Event e;
  e.set_kind("node.status_changed");
  e.set_pool("train");
  (*e.mutable_details())["to"] = NodeStatus_Name(NODE_STATUS_UNHEALTHY);
  EXPECT_TRUE(WantsPoolTick(e));
  (*e.mutable_details())["to"] = NodeStatus_Name(NODE_STATUS_CORDONED);
  EXPECT_FALSE(WantsPoolTick(e));
  (*e.mutable_details())["to"] = NodeStatus_Name(NODE_STATUS_UNHEALTHY);
  e.set_pool("");
  EXPECT_FALSE(WantsPoolTick(e));  // not a pool's node
}

}  // namespace
}  // namespace navarch
