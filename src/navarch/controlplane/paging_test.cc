#include "navarch/controlplane/paging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/control_plane.pb.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

ListNodesResponse Nodes(int n) {
  ListNodesResponse resp;
  for (int i = 0; i < n; ++i) resp.add_nodes()->set_node_id("node-0000");
  return resp;
}

TEST(PagingTest, AnUnpagedAnswerThatFitsIsSent) {
  const ListNodesResponse resp = Nodes(10);
  EXPECT_TRUE(
      CheckUnpagedAnswer(resp, 0, 10, "nodes", resp.ByteSizeLong()).ok());
}

TEST(PagingTest, AnUnpagedAnswerTooLargeSaysToPage) {
  const ListNodesResponse resp = Nodes(10);
  absl::Status s =
      CheckUnpagedAnswer(resp, 0, 10, "nodes", resp.ByteSizeLong() - 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("10 nodes"));
  EXPECT_THAT(s.message(), HasSubstr("page_size"));
}

TEST(PagingTest, APagedAnswerIsNeverRefused) {
  const ListNodesResponse resp = Nodes(10);
  EXPECT_TRUE(CheckUnpagedAnswer(resp, 10, 10, "nodes", 1).ok());
}

}  // namespace
}  // namespace navarch
