#include "navarch/cli/parse.h"

#include "gtest/gtest.h"

namespace navarch::cli {
namespace {

TEST(ParseTest, HealthStatusShortFullAnyCase) {
  EXPECT_EQ(*ParseHealthStatus("healthy"), HEALTH_STATUS_HEALTHY);
  EXPECT_EQ(*ParseHealthStatus("Degraded"), HEALTH_STATUS_DEGRADED);
  EXPECT_EQ(*ParseHealthStatus("HEALTH_STATUS_UNHEALTHY"),
            HEALTH_STATUS_UNHEALTHY);
  EXPECT_EQ(*ParseHealthStatus("unknown"), HEALTH_STATUS_UNKNOWN);
  auto bad = ParseHealthStatus("sick");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "unknown health status \"sick\" (valid: unknown, healthy, "
            "degraded, unhealthy)");
}

TEST(ParseTest, InstanceState) {
  EXPECT_EQ(*ParseInstanceState("running"), INSTANCE_STATE_RUNNING);
  EXPECT_EQ(*ParseInstanceState("pending_registration"),
            INSTANCE_STATE_PENDING_REGISTRATION);
  EXPECT_FALSE(ParseInstanceState("gone").ok());
}

TEST(ParseTest, StatusFilterTreatsUnknownAsNoFilter) {
  EXPECT_EQ(**ParseStatusFilter("active"), NODE_STATUS_ACTIVE);
  EXPECT_EQ(**ParseStatusFilter("NODE_STATUS_CORDONED"), NODE_STATUS_CORDONED);
  EXPECT_FALSE(ParseStatusFilter("unknown")->has_value());
  EXPECT_FALSE(ParseStatusFilter("NODE_STATUS_UNKNOWN")->has_value());
  auto bad = ParseStatusFilter("asleep");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("valid: active, cordoned"),
            absl::string_view::npos);
}

TEST(ParseTest, LabelSelectors) {
  auto kv = *ParseLabelSelector("team=ml");
  EXPECT_EQ(kv.key, "team");
  EXPECT_EQ(kv.value, "ml");
  auto empty_value = *ParseLabelSelector("team=");
  EXPECT_EQ(empty_value.value, "");
  auto key = *ParseLabelSelector("gpu");
  EXPECT_FALSE(key.value.has_value());
  auto with_eq = *ParseLabelSelector("expr=a=b");
  EXPECT_EQ(with_eq.value, "a=b");
  EXPECT_FALSE(ParseLabelSelector("=ml").ok());
  EXPECT_FALSE(ParseLabelSelector("").ok());

  google::protobuf::Map<std::string, std::string> labels;
  labels["team"] = "ml";
  EXPECT_TRUE(Matches(kv, labels));
  EXPECT_TRUE(Matches(*ParseLabelSelector("team"), labels));
  EXPECT_FALSE(Matches(*ParseLabelSelector("team=infra"), labels));
  EXPECT_FALSE(Matches(*ParseLabelSelector("zone"), labels));
}

TEST(ParseTest, SinceTakesDurationsBackOrRfc3339) {
  absl::Time now = absl::FromUnixSeconds(1767225600);
  EXPECT_EQ(*ParseSince("1h", now), now - absl::Hours(1));
  EXPECT_EQ(*ParseSince("1h30m", now), now - absl::Minutes(90));
  EXPECT_EQ(*ParseSince("2026-01-19T14:00:00Z", now),
            absl::FromUnixSeconds(1768831200));
  EXPECT_EQ(*ParseSince("2026-01-19T15:00:00+01:00", now),
            absl::FromUnixSeconds(1768831200));
  EXPECT_FALSE(ParseSince("yesterday", now).ok());
  EXPECT_FALSE(ParseSince("-5m", now).ok());
  EXPECT_FALSE(ParseSince("10", now).ok());
}

TEST(ParseTest, TimeoutMustBePositive) {
  EXPECT_EQ(*ParseTimeout("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseTimeout("1m30s"), absl::Seconds(90));
  EXPECT_FALSE(ParseTimeout("0").ok());
  EXPECT_FALSE(ParseTimeout("-1s").ok());
  EXPECT_FALSE(ParseTimeout("30").ok());
}

}  // namespace
}  // namespace navarch::cli
