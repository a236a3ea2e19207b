#include "navarch/cli/format.h"

#include <sstream>

#include "gtest/gtest.h"
#include "navarch/api/time_util.h"

namespace navarch::cli {
namespace {

TEST(TableTest, PadsToTheWidestCellAndLeavesNoTrailingBlanks) {
  Table t({"NODE ID", "STATUS", "GPUs"});
  t.AddRow({"gpu-1", "Active", "8"});
  t.AddRow({"a-much-longer-node", "Cordoned", "0"});
  std::ostringstream out;
  t.Print(out, /*color=*/false);
  EXPECT_EQ(out.str(),
            "NODE ID              STATUS     GPUs\n"
            "gpu-1                Active     8\n"
            "a-much-longer-node   Cordoned   0\n");
}

TEST(TableTest, ColourDoesNotMoveColumns) {
  Table t({"A", "B"});
  t.AddRow({Cell("ok", Color::kGreen), "x"});
  t.AddRow({Cell("broken", Color::kRed), "y"});
  std::ostringstream plain, painted;
  t.Print(plain, false);
  t.Print(painted, true);
  EXPECT_EQ(plain.str(), "A        B\nok       x\nbroken   y\n");
  EXPECT_EQ(
      painted.str(),
      "A        B\n\033[32mok\033[0m       x\n\033[31mbroken\033[0m   y\n");
}

TEST(TableTest, WidthCountsCharactersNotBytes) {
  Table t({"T", "X"});
  t.AddRow({"45°C", "a"});
  t.AddRow({"100°C", "b"});
  std::ostringstream out;
  t.Print(out, false);
  EXPECT_EQ(out.str(), "T       X\n45°C    a\n100°C   b\n");
}

TEST(TableTest, ShortRowsAreFilledWithBlanks) {
  Table t({"A", "B", "C"});
  t.AddRow({"1"});
  std::ostringstream out;
  t.Print(out, false);
  EXPECT_EQ(out.str(), "A   B   C\n1\n");
}

TEST(FieldsTest, AlignsValuesAfterTheLongestKey) {
  Fields f(2);
  f.Add("Node ID", "gpu-1").Add("Instance Type", "p5").Add("Empty", "");
  std::ostringstream out;
  f.Print(out, false);
  EXPECT_EQ(out.str(),
            "  Node ID:       gpu-1\n"
            "  Instance Type: p5\n"
            "  Empty:\n");
}

TEST(AgoTest, UpstreamUnits) {
  absl::Time now = absl::FromUnixSeconds(1767225600);
  EXPECT_EQ(Ago(now, now), "0s ago");
  EXPECT_EQ(Ago(now - absl::Seconds(12), now), "12s ago");
  EXPECT_EQ(Ago(now - absl::Seconds(59.9), now), "59s ago");
  EXPECT_EQ(Ago(now - absl::Seconds(60), now), "1m ago");
  EXPECT_EQ(Ago(now - absl::Minutes(3) - absl::Seconds(59), now), "3m ago");
  EXPECT_EQ(Ago(now - absl::Minutes(59), now), "59m ago");
  EXPECT_EQ(Ago(now - absl::Hours(1), now), "1h ago");
  EXPECT_EQ(Ago(now - absl::Hours(23.9), now), "23h ago");
  EXPECT_EQ(Ago(now - absl::Hours(24), now), "1d ago");
  EXPECT_EQ(Ago(now - absl::Hours(24 * 400), now), "400d ago");
}

TEST(AgoTest, NeverForUnsetTimes) {
  absl::Time now = absl::FromUnixSeconds(1767225600);
  EXPECT_EQ(Ago(absl::InfinitePast(), now), "Never");
  EXPECT_EQ(Ago(google::protobuf::Timestamp(), now), "Never");
  EXPECT_EQ(Ago(ToTimestamp(now - absl::Seconds(5)), now), "5s ago");
}

TEST(AgoTest, SkewIsForgivenButTheFarFutureIsSaid) {
  absl::Time now = absl::FromUnixSeconds(1767225600);
  EXPECT_EQ(Ago(now + absl::Seconds(3), now), "0s ago");
  EXPECT_EQ(Ago(now + absl::Minutes(5), now), "in 5m");
  EXPECT_EQ(Ago(now + absl::Hours(50), now), "in 2d");
}

TEST(AbsoluteTest, WholeSecondsUtc) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(1768831200);
  ts.set_nanos(500000000);
  EXPECT_EQ(Absolute(ts), "2026-01-19T14:00:00Z");
  EXPECT_EQ(Absolute(google::protobuf::Timestamp()), "");
  EXPECT_EQ(When(ts, absl::FromUnixSeconds(1768831230)),
            "29s ago (2026-01-19T14:00:00Z)");
  EXPECT_EQ(
      When(google::protobuf::Timestamp(), absl::FromUnixSeconds(1768831230)),
      "Never");
  EXPECT_EQ(When(google::protobuf::Timestamp(),
                 absl::FromUnixSeconds(1768831230), ""),
            "");
}

TEST(WordsTest, UpstreamStatusWords) {
  EXPECT_EQ(Title(NODE_STATUS_ACTIVE), "Active");
  EXPECT_EQ(Title(NODE_STATUS_CORDONED), "Cordoned");
  EXPECT_EQ(Title(NODE_STATUS_UNKNOWN), "Unknown");
  EXPECT_EQ(Title(HEALTH_STATUS_DEGRADED), "Degraded");
  EXPECT_EQ(Title(INSTANCE_STATE_PENDING_REGISTRATION), "Pending registration");
  EXPECT_EQ(ColorOf(NODE_STATUS_UNHEALTHY), Color::kRed);
  EXPECT_EQ(ColorOf(HEALTH_STATUS_HEALTHY), Color::kGreen);
}

TEST(NumbersTest, BytesAndPercent) {
  EXPECT_EQ(Bytes(0), "0 B");
  EXPECT_EQ(Bytes(512), "512 B");
  EXPECT_EQ(Bytes(1536), "1.5 KiB");
  EXPECT_EQ(Bytes(85899345920), "80 GiB");
  EXPECT_EQ(Bytes(1610612736), "1.5 GiB");
  EXPECT_EQ(Percent(12.5), "12.5%");
  EXPECT_EQ(Percent(40), "40%");
  EXPECT_EQ(Percent(99.96), "100%");
}

TEST(PaintTest, OnlyWhenEnabled) {
  EXPECT_EQ(Paint("x", Color::kRed, false), "x");
  EXPECT_EQ(Paint("x", Color::kNone, true), "x");
  EXPECT_EQ(Paint("x", Color::kYellow, true), "\033[33mx\033[0m");
}

}  // namespace
}  // namespace navarch::cli
