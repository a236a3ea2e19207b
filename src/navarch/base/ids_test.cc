#include "navarch/base/ids.h"

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace navarch {
namespace {

TEST(IdsTest, UuidsAreVersion4AndDistinct) {
  std::mt19937_64 rng(7);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = NewUuid(rng);
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '4');
    EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(IdsTest, UuidFromBitsSetsVersionAndVariant) {
  EXPECT_EQ(UuidFromBits(0x0123456789abcdefULL, 0xfedcba9876543210ULL),
            "01234567-89ab-4def-bedc-ba9876543210");
  EXPECT_EQ(UuidFromBits(0, 0), "00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(UuidFromBits(~0ULL, ~0ULL), "ffffffff-ffff-4fff-bfff-ffffffffffff");
  // NewUuid draws hi, then lo.
  std::mt19937_64 a(3), b(3);
  const uint64_t hi = b(), lo = b();
  EXPECT_EQ(NewUuid(a), UuidFromBits(hi, lo));
}

TEST(IdsTest, ValidatesNodeIds) {
  EXPECT_TRUE(ValidateId("node_id", "gpu-node-1.us-east:a_b").ok());
  EXPECT_TRUE(ValidateId("node_id", std::string(253, 'a')).ok());
  EXPECT_EQ(ValidateId("node_id", "").message(), "node_id is required");
  EXPECT_FALSE(ValidateId("node_id", std::string(254, 'a')).ok());
  auto st = ValidateId("node_id", "bad/id");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'/'"), std::string::npos) << st.message();
  EXPECT_FALSE(ValidateId("node_id", "a b").ok());
  EXPECT_FALSE(ValidateId("node_id", "caf\xc3\xa9").ok());
}

TEST(IdsTest, ValidatesText) {
  EXPECT_TRUE(ValidateText("message", "héllo", 10).ok());
  EXPECT_FALSE(ValidateText("message", std::string(11, 'x'), 10).ok());
  EXPECT_FALSE(ValidateText("message", "\xff\xfe", 10).ok());
  EXPECT_FALSE(ValidateText("message", "\xc3", 10).ok());
  // Long ASCII runs are read eight bytes at a time: a bad byte anywhere
  // after (or within) one is still found, a good sequence still accepted.
  const std::string ascii(21, 'a');
  for (size_t at = 0; at <= ascii.size(); ++at) {
    std::string bad = ascii, good = ascii, cut = ascii;
    bad.insert(at, "\xff");
    good.insert(at, "\xc3\xa9");
    cut.insert(at, "\xe2\x82");  // a three-byte sequence, one byte short
    EXPECT_FALSE(ValidateText("m", bad, 100).ok()) << at;
    EXPECT_TRUE(ValidateText("m", good, 100).ok()) << at;
    EXPECT_FALSE(ValidateText("m", cut, 100).ok()) << at;
  }
  EXPECT_TRUE(ValidateText("m", ascii + "\xe2\x82\xac", 100).ok());
}

}  // namespace
}  // namespace navarch
