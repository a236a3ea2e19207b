#include "navarch/agent/node_token_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace navarch::agent {
namespace {

TEST(NodeTokenFileTest, KeepsTheTokenOfThisNodeOnly) {
  const std::string dir =
      ::testing::TempDir() + "/navarch-node-token-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/node-token";
  auto none = LoadNodeToken(path, "i-1");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
  ASSERT_TRUE(SaveNodeToken(path, "navarch-node.i-1.abc").ok());
  auto mine = LoadNodeToken(path, "i-1");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(*mine, "navarch-node.i-1.abc");
  // Another node's (a prefix of ours too), or anything else: not used.
  for (const char* other : {"i-12", "i"}) {
    EXPECT_EQ(LoadNodeToken(path, other).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << other;
  }
  std::ofstream(path) << "   \n";
  auto empty = LoadNodeToken(path, "i-1");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace navarch::agent
