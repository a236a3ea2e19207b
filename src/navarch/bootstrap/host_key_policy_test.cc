#include "gtest/gtest.h"
#include "navarch/bootstrap/ssh_client.h"

namespace navarch::bootstrap {
namespace {

TEST(HostKeyPolicyTest, NamesRoundTrip) {
  for (HostKeyPolicy p : {HostKeyPolicy::kKnownHosts, HostKeyPolicy::kTofu,
                          HostKeyPolicy::kInsecure}) {
    auto parsed = ParseHostKeyPolicy(HostKeyPolicyName(p));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_EQ(HostKeyPolicyName(HostKeyPolicy::kKnownHosts), "known_hosts");
  EXPECT_EQ(ParseHostKeyPolicy("Insecure").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHostKeyPolicy("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace navarch::bootstrap
