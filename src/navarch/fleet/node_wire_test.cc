#include "navarch/fleet/node_wire.h"

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace navarch::fleet_internal {
namespace {

using google::protobuf::util::MessageDifferencer;

NodeRecord WholeNode() {
  NodeRecord r;
  r.set_version(3);
  NodeInfo* n = r.mutable_node();
  n->set_node_id("n1");
  n->set_status(NODE_STATUS_ACTIVE);
  for (int i = 0; i < 2; ++i) {
    GPUInfo* g = n->add_gpus();
    g->set_index(i);
    g->set_uuid("GPU-" + std::to_string(i));
  }
  n->mutable_metadata()->set_hostname("host-1");
  (*n->mutable_metadata()->mutable_labels())["pool"] = "train";
  auto* m = n->mutable_last_metrics();
  m->set_cpu_usage_percent(12.5);
  m->add_gpu_metrics()->set_utilization_percent(40);
  m->add_gpu_metrics()->set_utilization_percent(80);
  return r;
}

TEST(NodeWireTest, CompactThenExpandGivesTheWholeNodeBack) {
  const NodeRecord whole = WholeNode();
  NodeRecord hot = whole;
  NodeParts parts;
  Compact(hot, parts);
  EXPECT_EQ(hot.node().gpus_size(), 0);
  EXPECT_FALSE(hot.node().has_metadata());
  EXPECT_FALSE(hot.node().has_last_metrics());
  EXPECT_EQ(hot.node().node_id(), "n1");
  EXPECT_EQ(parts.gpu_count, 2);
  ASSERT_TRUE(parts.gpu_utilization.has_value());
  EXPECT_DOUBLE_EQ(*parts.gpu_utilization, 60);
  NodeInfo expanded = hot.node();
  ExpandNode(parts.cold, parts.metrics, &expanded);
  EXPECT_TRUE(MessageDifferencer::Equals(expanded, whole.node()))
      << expanded.DebugString();
}

TEST(NodeWireTest, PartsAreNodeInfoWireFormat) {
  // The store merges them into a serialized NodeRecord's node as they are.
  const NodeRecord whole = WholeNode();
  NodeParts parts;
  SetCold(parts, whole.node().gpus(), &whole.node().metadata());
  SetMetrics(parts, &whole.node().last_metrics());
  NodeInfo cold, metrics;
  ASSERT_TRUE(cold.ParseFromString(parts.cold));
  ASSERT_TRUE(metrics.ParseFromString(parts.metrics));
  EXPECT_EQ(cold.gpus_size(), 2);
  EXPECT_EQ(cold.metadata().hostname(), "host-1");
  EXPECT_FALSE(cold.has_last_metrics());
  EXPECT_EQ(metrics.last_metrics().gpu_metrics_size(), 2);
  EXPECT_EQ(metrics.gpus_size(), 0);
}

TEST(NodeWireTest, NoMetricsClearsAndNoGpuMetricsHasNoUtilization) {
  NodeParts parts;
  NodeMetrics m;
  m.set_cpu_usage_percent(1);
  SetMetrics(parts, &m);
  EXPECT_FALSE(parts.metrics.empty());
  EXPECT_FALSE(parts.gpu_utilization.has_value());
  EXPECT_FALSE(MeanGpuUtilization(m).has_value());
  m.add_gpu_metrics()->set_utilization_percent(30);
  SetMetrics(parts, &m);
  EXPECT_DOUBLE_EQ(parts.gpu_utilization.value_or(-1), 30);
  SetMetrics(parts, nullptr);
  EXPECT_TRUE(parts.metrics.empty());
  EXPECT_FALSE(parts.gpu_utilization.has_value());
  // No cold parts at all: an empty node expands to itself.
  SetCold(parts, {}, nullptr);
  EXPECT_EQ(parts.gpu_count, 0);
  NodeInfo n;
  n.set_node_id("x");
  ExpandNode(parts.cold, parts.metrics, &n);
  EXPECT_EQ(n.node_id(), "x");
  EXPECT_EQ(n.gpus_size(), 0);
  EXPECT_FALSE(n.has_metadata());
  EXPECT_FALSE(n.has_last_metrics());
}

}  // namespace
}  // namespace navarch::fleet_internal
