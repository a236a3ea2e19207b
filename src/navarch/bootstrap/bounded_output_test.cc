#include "navarch/bootstrap/bounded_output.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch::bootstrap {
namespace {

using ::testing::HasSubstr;

TEST(BoundedOutputTest, KeepsEverythingUpToTheLimit) {
  BoundedOutput out(10);
  out.Append("hello");
  out.Append("world");
  EXPECT_FALSE(out.truncated());
  EXPECT_EQ(out.total(), 10u);
  EXPECT_EQ(out.Text(), "helloworld");
}

TEST(BoundedOutputTest, KeepsHeadAndTailWithAMarker) {
  BoundedOutput out(10);
  out.Append("HEAD");
  for (int i = 0; i < 1000; ++i) out.Append("middle");
  out.Append("TAIL!");
  EXPECT_TRUE(out.truncated());
  EXPECT_EQ(out.total(), 4u + 6000u + 5u);
  const std::string text = out.Text();
  EXPECT_EQ(text.substr(0, 5), "HEADm");
  EXPECT_EQ(text.substr(text.size() - 5), "TAIL!");
  EXPECT_THAT(text, HasSubstr("[... 5999 bytes of output dropped ...]"));
}

TEST(BoundedOutputTest, OneLargeAppend) {
  BoundedOutput out(4);
  out.Append("abcdefgh");
  EXPECT_EQ(out.Text(), "ab\n[... 4 bytes of output dropped ...]\ngh");
}

TEST(BoundedOutputTest, ZeroLimitKeepsOnlyTheMarker) {
  BoundedOutput out(0);
  out.Append("abc");
  EXPECT_EQ(out.Text(), "\n[... 3 bytes of output dropped ...]\n");
}

}  // namespace
}  // namespace navarch::bootstrap
