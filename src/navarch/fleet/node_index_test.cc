#include "navarch/fleet/node_index.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "navarch/api/time_util.h"

namespace navarch::fleet_internal {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

NodeRecord Record(const std::string& id, NodeStatus status) {
  NodeRecord r;
  r.set_version(1);
  r.mutable_node()->set_node_id(id);
  r.mutable_node()->set_status(status);
  r.mutable_node()->add_gpus()->set_uuid("GPU-0");
  return r;
}

std::vector<std::string> Ids(const std::vector<NodeEntry*>& entries) {
  std::vector<std::string> ids;
  for (const NodeEntry* e : entries) ids.push_back(e->record.node().node_id());
  return ids;
}

std::vector<std::string> Ordered(const NodeIndex& index) {
  std::vector<std::string> ids;
  for (auto it = index.begin(); it != index.end(); ++it)
    ids.push_back(it->first);
  return ids;
}

TEST(NodeIndexTest, LoadCompactsAndRestartsLivenessNow) {
  NodeIndex index;
  std::vector<NodeRecord> records = {Record("b", NODE_STATUS_ACTIVE),
                                     Record("a", NODE_STATUS_UNHEALTHY)};
  *records[0].mutable_node()->mutable_last_heartbeat() =
      ToTimestamp(kT0 + absl::Seconds(5));
  index.Load(std::move(records), kT0);
  EXPECT_EQ(Ordered(index), (std::vector<std::string>{"a", "b"}));
  NodeEntry* b = index.Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->record.node().gpus_size(), 0);  // packed
  EXPECT_EQ(b->parts.gpu_count, 1);
  EXPECT_EQ(b->alive_at, kT0 + absl::Seconds(5));
  EXPECT_EQ(index.Find("a")->alive_at, kT0);
  EXPECT_EQ(index.live_count(), 1u);  // a is unhealthy
  EXPECT_EQ(index.Find("c"), nullptr);
}

TEST(NodeIndexTest, TheLiveSetFollowsEveryStatusAndErase) {
  NodeIndex index;
  for (const char* id : {"d", "c", "b", "a"}) {
    NodeEntry& e = index.Insert(id);
    WriteBatch batch;
    index.Stage(e, Record(id, NODE_STATUS_ACTIVE), batch);
    index.Touch(e, kT0);
    ASSERT_EQ(batch.nodes.size(), 1u);
    ASSERT_EQ(batch.node_extras.size(), 1u);  // one per record
    EXPECT_EQ(batch.node_extras[0], e.parts.cold + e.parts.metrics);
  }
  EXPECT_EQ(index.live_count(), 4u);
  WriteBatch batch;
  index.Stage(*index.Find("b"), Record("b", NODE_STATUS_TERMINATED), batch);
  index.Stage(*index.Find("c"), Record("c", NODE_STATUS_CORDONED), batch);
  index.Erase("a");
  index.Erase("nope");
  EXPECT_EQ(index.live_count(), 2u);  // c, d
  EXPECT_EQ(Ordered(index), (std::vector<std::string>{"b", "c", "d"}));
  const absl::Duration timeout = absl::Seconds(90);
  index.Touch(*index.Find("b"), kT0 - absl::Hours(1));  // not live
  EXPECT_EQ(Ids(index.Silent(kT0 + absl::Seconds(91), timeout)),
            (std::vector<std::string>{"c", "d"}));
  index.Touch(*index.Find("d"), kT0 + absl::Seconds(60));
  EXPECT_EQ(Ids(index.Silent(kT0 + absl::Seconds(91), timeout)),
            (std::vector<std::string>{"c"}));
  // Back to live: watched again, with its last sign of life.
  index.Stage(*index.Find("b"), Record("b", NODE_STATUS_ACTIVE), batch);
  EXPECT_EQ(Ids(index.Silent(kT0, timeout)), (std::vector<std::string>{"b"}));
}

TEST(NodeIndexTest, AVouchedNodeIsNeverSilent) {
  NodeIndex index;
  NodeEntry& e = index.Insert("a");
  WriteBatch batch;
  index.Stage(e, Record("a", NODE_STATUS_ACTIVE), batch);
  index.Touch(e, kT0);
  index.SetVouched(e, true);
  const absl::Time later = kT0 + absl::Hours(1);
  EXPECT_TRUE(index.Silent(later, absl::Seconds(90)).empty());
  // Through a status change that leaves and re-enters the live set.
  index.Stage(e, Record("a", NODE_STATUS_UNHEALTHY), batch);
  index.Stage(e, Record("a", NODE_STATUS_ACTIVE), batch);
  EXPECT_TRUE(index.Silent(later, absl::Seconds(90)).empty());
  index.SetVouched(e, false);
  EXPECT_EQ(index.Silent(later, absl::Seconds(90)).size(), 1u);
}

TEST(NodeIndexTest, DirtyListsEachNodeOnceUntilTaken) {
  NodeIndex index;
  NodeEntry& a = index.Insert("a");
  NodeEntry& b = index.Insert("b");
  index.MarkDirty(a, "a");
  index.MarkDirty(b, "b");
  index.MarkDirty(a, "a");
  EXPECT_EQ(index.TakeDirty(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(index.TakeDirty().empty());
  // Still flagged (the flush clears the flag when it copies the beat).
  index.MarkDirty(a, "a");
  EXPECT_TRUE(index.TakeDirty().empty());
  a.heartbeat_dirty = false;
  index.MarkDirty(a, "a");
  EXPECT_EQ(index.TakeDirty(), (std::vector<std::string>{"a"}));
}

TEST(NodeIndexTest, OrderedViewPagesAfterAnyId) {
  NodeIndex index;
  for (const char* id : {"n3", "n1", "n2"}) index.Insert(id);
  EXPECT_EQ(index.after("n1")->first, "n2");
  EXPECT_EQ(index.after("n15")->first, "n2");  // need not exist
  EXPECT_EQ(index.after("n3"), index.end());
  EXPECT_EQ(index.size(), 3u);
  NodeEntry* n2 = index.Find("n2");
  index.Insert("n2");  // already there: the same entry
  EXPECT_EQ(index.Find("n2"), n2);
}

}  // namespace
}  // namespace navarch::fleet_internal
