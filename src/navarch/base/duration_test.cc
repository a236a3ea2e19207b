#include "navarch/base/duration.h"

#include "gtest/gtest.h"

namespace navarch {
namespace {

TEST(DurationTest, ParsesGoSyntax) {
  EXPECT_EQ(*ParseGoDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseGoDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseGoDuration("5m"), absl::Minutes(5));
  EXPECT_EQ(*ParseGoDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseGoDuration("1.5h"), absl::Minutes(90));
  EXPECT_EQ(*ParseGoDuration("-2s"), absl::Seconds(-2));
  EXPECT_EQ(*ParseGoDuration("250us"), absl::Microseconds(250));
  EXPECT_EQ(*ParseGoDuration("10ns"), absl::Nanoseconds(10));
  EXPECT_EQ(*ParseGoDuration("0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseGoDuration("1h2m3.5s"),
            absl::Hours(1) + absl::Minutes(2) + absl::Milliseconds(3500));
}

TEST(DurationTest, RejectsBadInput) {
  for (const char* bad :
       {"", "30", "5 m", "5x", "m", "-", "1h-2m", "ms5", "1e3s"}) {
    auto d = ParseGoDuration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(ParseGoDuration("30").status().message().find("missing unit"),
            std::string::npos);
}

TEST(DurationTest, FormatsShortestAndRoundTrips) {
  EXPECT_EQ(FormatGoDuration(absl::Minutes(90)), "1h30m");
  EXPECT_EQ(FormatGoDuration(absl::Minutes(5)), "5m");
  EXPECT_EQ(FormatGoDuration(absl::Seconds(30)), "30s");
  EXPECT_EQ(FormatGoDuration(absl::Milliseconds(500)), "500ms");
  EXPECT_EQ(FormatGoDuration(absl::Milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatGoDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatGoDuration(absl::Seconds(-3)), "-3s");
  EXPECT_EQ(FormatGoDuration(absl::Hours(25) + absl::Seconds(1)), "25h1s");
  for (absl::Duration d :
       {absl::Milliseconds(1), absl::Microseconds(7), absl::Nanoseconds(3),
        absl::Hours(100) + absl::Milliseconds(5), absl::Seconds(61)}) {
    auto back = ParseGoDuration(FormatGoDuration(d));
    ASSERT_TRUE(back.ok()) << FormatGoDuration(d);
    EXPECT_EQ(*back, d) << FormatGoDuration(d);
  }
}

}  // namespace
}  // namespace navarch
