#include "navarch/controlplane/node_bootstrap.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/health/evaluator.h"
#include "navarch/provider/provider.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

class NodeBootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fleet_.Start().ok()); }

  void Put(const std::string& id, const std::string& intent,
           InstanceState state) {
    InstanceInfo inst;
    inst.set_instance_id(id);
    inst.set_pool_name("train");
    inst.set_state(state);
    (*inst.mutable_labels())[std::string(kLabelToken)] = intent;
    ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                  fleet_.UpsertInstance(inst, Actor{"pool-manager"}, done);
                }).ok());
  }

  FakeClock clock_;
  MemoryStore store_;
  PolicyEvaluator evaluator_;
  FleetService fleet_{store_, clock_, evaluator_, NullLogger(), FleetOptions{}};
};

// Lambda: the agent cannot learn its instance id; its bootstrap token's
// intent names the instance.
TEST_F(NodeBootstrapTest, TheIntentFindsTheInstanceItBought) {
  Put("0920582c7ff041399e34823a0be62549", "c-train-n-1",
      INSTANCE_STATE_PENDING_REGISTRATION);
  Put("i-2", "c-train-n-2", INSTANCE_STATE_PENDING_REGISTRATION);
  absl::StatusOr<std::string> id = BootstrapInstanceId(fleet_, "c-train-n-1");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "0920582c7ff041399e34823a0be62549");
  EXPECT_EQ(*BootstrapInstanceId(fleet_, "c-train-n-2"), "i-2");
  // An empty node id is checked as the instance the intent bought.
  EXPECT_TRUE(CheckBootstrap(fleet_, "c-train-n-1", "").ok());
}

// The agent may ask before the launch that buys its instance has returned:
// retryable, not refused.
TEST_F(NodeBootstrapTest, AnInstanceNotRecordedYetIsUnavailable) {
  absl::StatusOr<std::string> id = BootstrapInstanceId(fleet_, "c-train-n-7");
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(id.status().message(), HasSubstr("not recorded yet"));
  EXPECT_EQ(CheckBootstrap(fleet_, "c-train-n-7", "").code(),
            absl::StatusCode::kUnavailable);
  Put("i-7", "c-train-n-7", INSTANCE_STATE_PROVISIONING);
  EXPECT_TRUE(CheckBootstrap(fleet_, "c-train-n-7", "").ok());
}

TEST_F(NodeBootstrapTest, AFailedInstanceIsRefusedForAnEmptyNodeIdToo) {
  Put("i-3", "c-train-n-3", INSTANCE_STATE_FAILED);
  absl::Status s = CheckBootstrap(fleet_, "c-train-n-3", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("i-3 is failed"));
}

// Intents are unique per attempt; should two instances carry one, the live
// one is chosen.
TEST_F(NodeBootstrapTest, TheLiveInstanceWinsOverATerminatedOne) {
  Put("i-1", "c-train-n-4", INSTANCE_STATE_TERMINATED);
  Put("i-2", "c-train-n-4", INSTANCE_STATE_RUNNING);
  EXPECT_EQ(*BootstrapInstanceId(fleet_, "c-train-n-4"), "i-2");
}

TEST_F(NodeBootstrapTest, OnlyABootstrapTokenWithAnEmptyNodeIdIsAssignedOne) {
  Put("i-5", "c-train-n-5", INSTANCE_STATE_PENDING_REGISTRATION);
  Identity boot;
  boot.bootstrap_intent = "c-train-n-5";
  Identity ops;
  ops.actor = "operator:ops";
  RegisterNodeRequest empty;
  RegisterNodeRequest named;
  named.set_node_id("gpu-1");
  EXPECT_EQ(*RegisteringNodeId(fleet_, boot, empty), "i-5");
  EXPECT_EQ(*RegisteringNodeId(fleet_, boot, named), "gpu-1");
  // Without a bootstrap token the empty id stays (the fleet refuses it).
  EXPECT_EQ(*RegisteringNodeId(fleet_, ops, empty), "");
  const absl::Status refused = Await<RegisterNodeResponse>([&](auto done) {
                                 fleet_.RegisterNode(empty, done);
                               }).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace navarch
