#include "gtest/gtest.h"
#include "navarch/api/grpc_status.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"

namespace navarch {
namespace {

TEST(TimeUtilTest, RoundTripsAndKeepsUnsetAsNever) {
  absl::Time t = absl::FromUnixSeconds(1767225600) + absl::Nanoseconds(123);
  EXPECT_EQ(FromTimestamp(ToTimestamp(t)), t);
  EXPECT_FALSE(IsSet(ToTimestamp(absl::InfinitePast())));
  EXPECT_EQ(FromTimestamp(google::protobuf::Timestamp()), absl::InfinitePast());
  EXPECT_EQ(MaxTimestamp(ToTimestamp(t), ToTimestamp(t + absl::Nanoseconds(1)))
                .nanos(),
            124);
}

TEST(NamesTest, ShortAndPolicyNames) {
  EXPECT_EQ(ShortName(NODE_STATUS_CORDONED), "cordoned");
  EXPECT_EQ(ShortName(HEALTH_STATUS_DEGRADED), "degraded");
  EXPECT_EQ(ShortName(NODE_COMMAND_TYPE_RUN_DIAGNOSTIC), "run_diagnostic");
  EXPECT_EQ(PolicyName(HEALTH_EVENT_TYPE_ECC_DBE), "ecc_dbe");
  EXPECT_EQ(PolicyName(HEALTH_EVENT_TYPE_XID), "xid");
  EXPECT_EQ(PolicyName(HEALTH_WATCH_SYSTEM_MEM), "DCGM_HEALTH_WATCH_MEM");
  EXPECT_EQ(PolicyName(HEALTH_EVENT_TYPE_UNKNOWN), "");
  // Every value, twice (the names are computed once and kept), and values
  // a newer peer may send that this build does not know.
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_EQ(ShortName(NODE_STATUS_UNKNOWN), "unknown");
    EXPECT_EQ(ShortName(NODE_STATUS_TERMINATED), "terminated");
    EXPECT_EQ(ShortName(HEALTH_STATUS_UNHEALTHY), "unhealthy");
    EXPECT_EQ(ShortName(INSTANCE_STATE_RUNNING), "running");
    EXPECT_EQ(ShortName(static_cast<NodeStatus>(99)), "");
    EXPECT_EQ(PolicyName(static_cast<HealthEventType>(-1)), "");
  }
}

TEST(NamesTest, ParsesShortAndFullNames) {
  EXPECT_EQ(*ParseNodeStatus("active"), NODE_STATUS_ACTIVE);
  EXPECT_EQ(*ParseNodeStatus("NODE_STATUS_UNHEALTHY"), NODE_STATUS_UNHEALTHY);
  EXPECT_EQ(*ParseCommandType("Uncordon"), NODE_COMMAND_TYPE_UNCORDON);
  auto bad = ParseNodeStatus("sleepy");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("active, cordoned"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(ParseNodeStatus("unknown").ok());
}

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  auto g = ToGrpcStatus(absl::NotFoundError("node n1 not found"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(g.error_message(), "node n1 not found");
  EXPECT_EQ(FromGrpcStatus(g).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace navarch

#include "navarch/api/json.h"

namespace navarch {
namespace {

TEST(JsonTest, UsesUpstreamFieldNamesEnumNamesAndKeepsZeroFields) {
  NodeInfo n;
  n.set_node_id("gpu-1");
  n.set_status(NODE_STATUS_ACTIVE);
  *n.mutable_last_heartbeat() = ToTimestamp(absl::FromUnixSeconds(1767225600));
  auto j = ToJson(n);
  EXPECT_EQ(j["node_id"], "gpu-1");
  EXPECT_EQ(j["status"], "NODE_STATUS_ACTIVE");
  EXPECT_EQ(j["health_status"], "HEALTH_STATUS_UNKNOWN");
  EXPECT_EQ(j["last_heartbeat"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(j["provider"], "");
  NodeInfo back;
  ASSERT_TRUE(FromJson(j.dump(), &back).ok());
  EXPECT_EQ(back.node_id(), "gpu-1");
  ASSERT_TRUE(FromJson(R"({"nodeId": "x"})", &back).ok());
  EXPECT_EQ(back.node_id(), "x");
  auto bad = FromJson(R"({"no_such": 1})", &back);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace navarch
