#include "navarch/pool/pool_manager.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/api/time_util.h"
#include "navarch/bootstrap/ssh_bootstrap.h"
#include "navarch/pool/default_user_data.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

class PoolManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fleet_ = std::make_unique<FleetService>(store_, clock_, evaluator_,
                                            NullLogger(), FleetOptions{});
    ASSERT_TRUE(fleet_->Start().ok());
    FakeProviderOptions o;
    o.name = "sim";
    auto provider = std::make_unique<FakeProvider>(clock_, o);
    provider_ = provider.get();
    ASSERT_TRUE(registry_.Add(std::move(provider)).ok());
    provider_->set_on_terminated([this](const ProviderInstance&) {
      live_at_terminate_.push_back(provider_->live_count());
    });

    ProviderConfig pc;
    pc.name = "sim";
    pc.type = ProviderType::kFake;
    config_.providers["sim"] = pc;
    PoolConfig pool;
    pool.name = "train";
    pool.providers = {PoolProvider{.name = "sim"}};
    pool.instance_type = "h100-8x";
    pool.min_nodes = 2;
    pool.max_nodes = 5;
    pool.labels = {{"pool", "train"}};
    config_.pools["train"] = pool;
  }
  void TearDown() override { fleet_->Stop(); }

  PoolConfig& Pool() { return config_.pools["train"]; }

  // Each Build is a control-plane start; on a FakeClock two starts can share
  // an instant, which a real restart never does, so each gets its own seed.
  void Build() {
    manager_ = std::make_unique<PoolManager>(
        *fleet_, registry_, notifier_, clock_, config_,
        PoolManagerOptions{.instance_manager = config_.instance_manager,
                           .seed = ++starts_});
    ASSERT_TRUE(manager_->Init().ok());
  }

  // What an agent on the instance does when it starts.
  void Register(const std::string& id) {
    RegisterNodeRequest r;
    r.set_node_id(id);
    r.set_provider("sim");
    auto* g = r.add_gpus();
    g->set_index(0);
    g->set_uuid("GPU-" + id);
    (*r.mutable_metadata()->mutable_labels())["pool"] = "train";
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet_->RegisterNode(r, done);
                }).ok());
  }
  void Heartbeat(const std::string& id, double util = 50) {
    HeartbeatRequest r;
    r.set_node_id(id);
    auto* m = r.mutable_metrics()->add_gpu_metrics();
    m->set_utilization_percent(util);
    ASSERT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                  fleet_->SendHeartbeat(r, done);
                }).ok());
  }
  std::vector<InstanceInfo> Instances(InstanceState state) {
    ListInstancesRequest r;
    r.set_state(state);
    auto resp = fleet_->ListInstances(r);
    EXPECT_TRUE(resp.ok());
    std::vector<InstanceInfo> out;
    for (const auto& i : resp->instances()) {
      if (i.state() == state) out.push_back(i);
    }
    return out;
  }
  // Registers every instance waiting for its agent.
  std::vector<std::string> RegisterPending() {
    std::vector<std::string> ids;
    for (const auto& i : Instances(INSTANCE_STATE_PENDING_REGISTRATION)) {
      Register(i.instance_id());
      ids.push_back(i.instance_id());
    }
    return ids;
  }
  NodeInfo Node(const std::string& id) {
    GetNodeRequest r;
    r.set_node_id(id);
    auto resp = fleet_->GetNode(r);
    return resp.ok() ? resp->node() : NodeInfo();
  }
  std::vector<Event> Events(const std::string& kind) {
    ListEventsRequest r;
    r.add_kinds(kind);
    r.set_page_size(1000);
    auto resp = fleet_->ListEvents(r);
    EXPECT_TRUE(resp.ok());
    return {resp->events().begin(), resp->events().end()};
  }
  // Two registered, heartbeating nodes.
  std::vector<std::string> TwoNodes() {
    Build();
    manager_->Tick();
    std::vector<std::string> ids = RegisterPending();
    manager_->Tick();
    return ids;
  }

  MemoryStore store_;
  FakeClock clock_;
  PolicyEvaluator evaluator_;
  std::unique_ptr<FleetService> fleet_;
  ProviderRegistry registry_;
  FakeProvider* provider_ = nullptr;
  NoopNotifier notifier_;
  Config config_;
  std::unique_ptr<PoolManager> manager_;
  std::vector<int> live_at_terminate_;
  uint64_t starts_ = 0;
};

TEST_F(PoolManagerTest, KeepsMinNodesWithoutAutoscaler) {
  Build();
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  ASSERT_EQ(Instances(INSTANCE_STATE_PENDING_REGISTRATION).size(), 2u);
  auto changed = Events("pool.target_changed");
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].message(), "below minimum: 0 < 2 for pool train: 0 → 2");
  EXPECT_EQ(changed[0].pool(), "train");
  // Not registered yet: counted, so nothing more is bought.
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  RegisterPending();
  manager_->Tick();
  EXPECT_EQ(Instances(INSTANCE_STATE_RUNNING).size(), 2u);
  auto status = manager_->GetPool("train");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->current_nodes, 2);
  EXPECT_EQ(status->healthy_nodes, 2);
  EXPECT_EQ(status->target_nodes, 2);
  EXPECT_EQ(status->strategy, "priority");
  EXPECT_EQ(provider_->provision_calls(), 2);
}

TEST_F(PoolManagerTest, InstancesCarryPoolAndClusterLabels) {
  Build();
  manager_->Tick();
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_FALSE(listed->empty());
  EXPECT_EQ((*listed)[0].labels.at("pool"), "train");
  EXPECT_EQ((*listed)[0].labels.at("navarch-cluster"), "navarch");
  EXPECT_EQ((*listed)[0].labels.at("navarch-managed"), "true");
}

TEST_F(PoolManagerTest, RegistrationTimeoutFailsAndTerminates) {
  Build();
  manager_->Tick();
  ASSERT_EQ(provider_->live_count(), 2);
  clock_.Advance(absl::Minutes(10));
  manager_->Tick();  // exactly the timeout: still waiting
  EXPECT_TRUE(Instances(INSTANCE_STATE_FAILED).empty());
  clock_.Advance(absl::Seconds(1));
  manager_->Tick();
  auto failed = Instances(INSTANCE_STATE_FAILED);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_TRUE(failed[0].has_terminated_at());
  EXPECT_NE(failed[0].status_message().find("registration timeout exceeded"),
            std::string::npos);
  // Upstream kept paying for them; here they are gone and replaced.
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_EQ(provider_->provision_calls(), 4);
}

TEST_F(PoolManagerTest, InstancesOfAProviderNoPoolUsesAnyMoreAreStillManaged) {
  // The pool moved from provider "old" to "sim" across a restart; "old" is
  // still configured. Its instances that never registered are terminated
  // there, not left running with "provider not configured".
  FakeProviderOptions o;
  o.name = "old";
  auto old_owned = std::make_unique<FakeProvider>(clock_, o);
  FakeProvider* old = old_owned.get();
  ASSERT_TRUE(registry_.Add(std::move(old_owned)).ok());
  ProviderConfig pc;
  pc.name = "old";
  pc.type = ProviderType::kFake;
  config_.providers["old"] = pc;
  Pool().providers = {PoolProvider{.name = "old"}};
  Build();
  manager_->Tick();
  ASSERT_EQ(old->live_count(), 2);
  Pool().providers = {PoolProvider{.name = "sim"}};
  Build();
  clock_.Advance(absl::Minutes(11));
  manager_->Tick();
  EXPECT_EQ(old->live_count(), 0);
  auto failed = Instances(INSTANCE_STATE_FAILED);
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_TRUE(failed[0].has_terminated_at()) << failed[0].status_message();
}

TEST_F(PoolManagerTest, ReplacesUnhealthyNodeProvisioningFirst) {
  std::vector<std::string> ids = TwoNodes();
  ASSERT_EQ(ids.size(), 2u);
  // ids[0] goes silent; ids[1] keeps heartbeating.
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[1]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 1);
  ASSERT_EQ(Node(ids[0]).status(), NODE_STATUS_UNHEALTHY);
  manager_->Tick();
  EXPECT_EQ(Node(ids[0]).status(), NODE_STATUS_TERMINATED);
  // The replacement existed before the old instance was terminated.
  ASSERT_EQ(live_at_terminate_.size(), 1u);
  EXPECT_EQ(live_at_terminate_[0], 2);  // counted after: 3 before
  EXPECT_EQ(provider_->provision_calls(), 3);
  EXPECT_EQ(Events("pool.replacement_started").size(), 1u);
  EXPECT_EQ(Events("pool.replacement_provisioned").size(), 1u);
  // Which instance replaces which, for readers of the log (the simulator).
  const std::vector<Event> provisioned = Events("pool.replacement_provisioned");
  const auto& details = provisioned[0].details();
  ASSERT_TRUE(details.contains("replacement"));
  EXPECT_NE(details.at("replacement"), ids[0]);
  EXPECT_NE(details.at("replacement"), ids[1]);
  // The target did not move: a replacement is not a scaling decision.
  EXPECT_EQ(Events("pool.target_changed").size(), 1u);
  auto terminated = Instances(INSTANCE_STATE_TERMINATED);
  ASSERT_EQ(terminated.size(), 1u);
  EXPECT_EQ(terminated[0].instance_id(), ids[0]);
  RegisterPending();
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_EQ(manager_->GetPool("train")->healthy_nodes, 2);
}

TEST_F(PoolManagerTest, NoReplacementWithoutAutoReplace) {
  Pool().health.auto_replace = false;
  std::vector<std::string> ids = TwoNodes();
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[1]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 1);
  manager_->Tick();
  EXPECT_EQ(Node(ids[0]).status(), NODE_STATUS_UNHEALTHY);
  EXPECT_TRUE(Events("pool.replacement_started").empty());
}

TEST_F(PoolManagerTest, BreakerStopsMassReplacementUntilReset) {
  Pool().min_nodes = 4;
  Pool().health.max_unhealthy_percent = 50;
  Pool().health.max_concurrent_replacements = 2;
  Build();
  manager_->Tick();
  std::vector<std::string> ids = RegisterPending();
  ASSERT_EQ(ids.size(), 4u);
  manager_->Tick();
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[3]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 3);  // 75% > 50%
  manager_->Tick();
  EXPECT_EQ(Events("pool.breaker_tripped").size(), 1u);
  EXPECT_TRUE(Events("pool.replacement_started").empty());
  EXPECT_TRUE(manager_->GetPool("train")->breaker_open);
  manager_->Tick();
  EXPECT_EQ(Events("pool.breaker_tripped").size(), 1u);  // once
  absl::StatusOr<bool> was_open =
      manager_->ResetBreaker("train", Actor{"operator"});
  ASSERT_TRUE(was_open.ok());
  EXPECT_TRUE(*was_open);
  EXPECT_EQ(Events("pool.breaker_reset").size(), 1u);
  EXPECT_FALSE(*manager_->ResetBreaker("train", Actor{"operator"}));
  EXPECT_EQ(Events("pool.breaker_reset").size(), 1u);  // nothing to reset
  // Reset: the breaker re-checks; still 75%, so it trips again at once.
  manager_->Tick();
  EXPECT_EQ(Events("pool.breaker_tripped").size(), 2u);
}

TEST_F(PoolManagerTest, ConcurrentReplacementLimit) {
  Pool().min_nodes = 4;
  Pool().health.max_unhealthy_percent = 100;
  Pool().health.max_concurrent_replacements = 1;
  Pool().health.drain_timeout = absl::Minutes(5);
  Build();
  manager_->Tick();
  std::vector<std::string> ids = RegisterPending();
  manager_->Tick();
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[2]);
  Heartbeat(ids[3]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 2);
  manager_->Tick();
  EXPECT_EQ(Events("pool.replacement_started").size(), 1u);
  manager_->Tick();
  EXPECT_EQ(Events("pool.replacement_started").size(), 2u);
}

TEST_F(PoolManagerTest, ManualScaleWithinLimits) {
  std::vector<std::string> ids = TwoNodes();
  EXPECT_EQ(manager_->ScalePool("train", 6, Actor{"op"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->ScalePool("train", 1, Actor{"op"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->ScalePool("nope", 3, Actor{"op"}).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(manager_->ScalePool("train", 3, Actor{"op"}).ok());
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 3);
  auto changed = Events("pool.target_changed");
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[1].message(), "manual scale by op for pool train: 2 → 3");
  // The manual target holds on later ticks (no autoscaler).
  std::string newest = RegisterPending()[0];
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 3);
  // Scale down: the idle node goes first, then the newest.
  for (const auto& id : ids) Heartbeat(id, 50);
  Heartbeat(newest, 50);
  Heartbeat(ids[0], 0);  // idle
  ASSERT_TRUE(manager_->ScalePool("train", 2, Actor{"op"}).ok());
  manager_->Tick();
  EXPECT_EQ(Node(ids[0]).status(), NODE_STATUS_TERMINATED);
  EXPECT_EQ(Node(newest).status(), NODE_STATUS_ACTIVE);
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_EQ(Events("pool.scale_down_started").size(), 1u);
}

TEST_F(PoolManagerTest, ScaleDownWaitsForDrainUpToTimeout) {
  class SlowDrain final : public Notifier {
   public:
    absl::string_view name() const override { return "slow"; }
    absl::Status Cordon(const std::string&, const std::string&) override {
      return absl::OkStatus();
    }
    absl::Status Uncordon(const std::string&) override {
      return absl::OkStatus();
    }
    absl::Status Drain(const std::string&, const std::string&) override {
      return absl::OkStatus();
    }
    absl::StatusOr<bool> IsDrained(const std::string&) override {
      return false;
    }
  } slow;
  Pool().health.drain_timeout = absl::Minutes(5);
  Build();
  manager_->Tick();
  std::vector<std::string> ids = RegisterPending();
  manager_->Tick();
  // The same fleet, now with a notifier whose drains never finish.
  Pool().min_nodes = 1;
  manager_ =
      std::make_unique<PoolManager>(*fleet_, registry_, slow, clock_, config_);
  ASSERT_TRUE(manager_->Init().ok());
  manager_->Tick();  // adopts target 2
  ASSERT_TRUE(manager_->ScalePool("train", 1, Actor{"op"}).ok());
  manager_->Tick();
  int draining = 0;
  for (const auto& id : ids) {
    if (Node(id).status() == NODE_STATUS_DRAINING) ++draining;
  }
  EXPECT_EQ(draining, 1);
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  clock_.Advance(absl::Seconds(1));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 1);
}

TEST_F(PoolManagerTest, CapacityErrorIsAnEventAndRetriedAfterBackoff) {
  Build();
  provider_->FailNextProvision(absl::ResourceExhaustedError("no h100"));
  manager_->Tick();
  auto failed = Events("pool.provision_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].details().at("error_class"), "capacity");
  EXPECT_EQ(provider_->live_count(), 0);
  manager_->Tick();  // backed off: not called again
  EXPECT_EQ(provider_->provision_calls(), 1);
  clock_.Advance(absl::Seconds(30));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
}

TEST_F(PoolManagerTest, WhileEveryPlaceIsBackedOffTicksWriteNothing) {
  Build();
  provider_->FailNextProvision(absl::ResourceExhaustedError("no h100"));
  manager_->Tick();
  ASSERT_EQ(Events("pool.provision_failed").size(), 1u);
  ASSERT_EQ(Events("pool.provision_requested").size(), 1u);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(5));
    manager_->Tick();
  }
  // No intent recorded, no failure repeated, no call made.
  EXPECT_EQ(Events("pool.provision_failed").size(), 1u);
  EXPECT_EQ(Events("pool.provision_requested").size(), 1u);
  EXPECT_EQ(provider_->provision_calls(), 1);
  clock_.Advance(absl::Seconds(5));  // 30 s: the backoff is over
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
}

TEST_F(PoolManagerTest, FailoverToTheNextProviderIsAnEventWithTheCloudsWords) {
  FakeProviderOptions o;
  o.name = "second";
  auto second = std::make_unique<FakeProvider>(clock_, o);
  FakeProvider* second_ptr = second.get();
  ASSERT_TRUE(registry_.Add(std::move(second)).ok());
  ProviderConfig pc;
  pc.name = "second";
  pc.type = ProviderType::kFake;
  config_.providers["second"] = pc;
  Pool().providers = {PoolProvider{.name = "sim", .priority = 1},
                      PoolProvider{.name = "second", .priority = 2}};
  Pool().min_nodes = 1;
  Pool().region = "us-east-1";
  CloudErrorInfo info;
  info.scope = CloudErrorScope::kRegion;
  info.cloud_code = "QUOTA_EXCEEDED";
  info.region = "us-east-1";
  info.quota = true;
  provider_->FailNextProvision(CloudError(absl::StatusCode::kResourceExhausted,
                                          "sim", info,
                                          "Quota 'NVIDIA_H100_GPUS' exceeded"));
  Build();
  manager_->Tick();
  EXPECT_EQ(second_ptr->live_count(), 1);
  EXPECT_TRUE(Events("pool.provision_failed").empty());
  auto moved = Events("pool.provision_failover");
  ASSERT_EQ(moved.size(), 1u);
  const auto& d = moved[0].details();
  EXPECT_EQ(d.at("provider"), "sim");
  EXPECT_EQ(d.at("region"), "us-east-1");
  EXPECT_EQ(d.at("error_class"), "capacity");
  EXPECT_EQ(d.at("cloud_code"), "QUOTA_EXCEEDED");
  EXPECT_EQ(d.at("capacity_kind"), "quota");
  EXPECT_EQ(d.at("to_provider"), "second");
  EXPECT_NE(moved[0].message().find("Quota 'NVIDIA_H100_GPUS' exceeded"),
            std::string::npos)
      << moved[0].message();
  EXPECT_NE(moved[0].message().find("provisioned on second"), std::string::npos)
      << moved[0].message();
}

TEST_F(PoolManagerTest, ReactiveAutoscalerWithCooldown) {
  AutoscalingConfig a;
  a.type = AutoscalerType::kReactive;
  Pool().autoscaling = a;
  Pool().cooldown = absl::Minutes(5);
  std::vector<std::string> ids = TwoNodes();
  for (const auto& id : ids) Heartbeat(id, 95);
  clock_.Advance(absl::Minutes(5));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 3);
  auto changed = Events("pool.target_changed");
  EXPECT_EQ(changed.back().message(),
            "utilization 95.0% > 80% threshold for pool train: 2 → 3");
  std::vector<std::string> more = RegisterPending();
  Heartbeat(more[0], 95);
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 3);  // cooldown
  EXPECT_NE(manager_->GetPool("train")->cooldown_left, absl::ZeroDuration());
  clock_.Advance(absl::Seconds(1));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 4);
}

TEST_F(PoolManagerTest, FailedScaleUpStartsNoCooldown) {
  AutoscalingConfig a;
  a.type = AutoscalerType::kReactive;
  Pool().autoscaling = a;
  Pool().cooldown = absl::Minutes(5);
  std::vector<std::string> ids = TwoNodes();
  for (const auto& id : ids) Heartbeat(id, 95);
  clock_.Advance(absl::Minutes(5));
  provider_->FailNextProvision(absl::UnavailableError("503"));
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_EQ(manager_->GetPool("train")->cooldown_left, absl::ZeroDuration());
  manager_->Tick();  // retried at once (a transient error has no backoff)
  EXPECT_EQ(provider_->live_count(), 3);
}

TEST_F(PoolManagerTest, UnknownProviderIsAnError) {
  Pool().providers[0].name = "missing";
  PoolManager m(*fleet_, registry_, notifier_, clock_, config_);
  absl::Status s = m.Init();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "pool train: provider missing not available");
}

// A cloud whose key is missing does not take the pool down with it, nor does
// a pool that cannot be managed take the others.
TEST_F(PoolManagerTest, APoolRunsOnTheProvidersThatAreAvailable) {
  Pool().providers = {PoolProvider{.name = "no-key", .priority = 1},
                      PoolProvider{.name = "sim", .priority = 2}};
  PoolConfig other = Pool();
  other.name = "other";
  other.providers = {PoolProvider{.name = "no-key"}};
  other.labels = {{"pool", "other"}};
  config_.pools["other"] = other;
  PoolManager m(*fleet_, registry_, notifier_, clock_, config_);
  absl::Status s = m.Init();
  EXPECT_EQ(s.message(), "pool other: provider no-key not available");
  m.Tick();
  EXPECT_EQ(provider_->live_count(), 2);  // train, from sim
  EXPECT_TRUE(m.GetPool("train").ok());
  EXPECT_FALSE(m.GetPool("other").ok());
}

// --- Provision intents and start-up reconciliation.

TEST_F(PoolManagerTest, RecordsEachProvisionRequestBeforeTheCall) {
  Build();
  manager_->Tick();
  std::vector<Event> intents = Events("pool.provision_requested");
  ASSERT_EQ(intents.size(), 2u);
  std::set<std::string> tokens;
  for (const Event& e : intents) tokens.insert(e.details().at("token"));
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  for (const ProviderInstance& pi : *listed) {
    EXPECT_TRUE(tokens.contains(pi.labels.at("navarch-token"))) << pi.id;
    EXPECT_EQ(pi.labels.at("navarch-cluster"), "navarch");
  }
  PoolCounters c = manager_->counters();
  EXPECT_EQ(c.provider_calls["sim|provision|ok"], 2);
  EXPECT_EQ(c.scaling_actions["train|up"], 1);
}

TEST_F(PoolManagerTest, UserDataIsRenderedPerAttemptWithABootstrapToken) {
  Pool().min_nodes = 1;
  Pool().region = "us-east-1";
  Pool().user_data =
      "#!/bin/sh\nagent --server {{.ControlPlane}} --pool {{.Pool}} "
      "--node-id {{.NodeID}} --token {{.BootstrapToken}} # {{.Provider}} "
      "{{ .Region }} {{.InstanceType}}\n";
  std::vector<std::string> seen;
  provider_->set_provision_gate(
      [&](const ProvisionRequest& r) { seen.push_back(r.user_data); });
  std::vector<std::pair<std::string, absl::Time>> minted;
  PoolManagerOptions o{.instance_manager = config_.instance_manager,
                       .seed = ++starts_};
  o.control_plane = "https://cp.example:50051";
  o.mint_bootstrap_token = [&](const std::string& intent, absl::Time expiry) {
    minted.push_back({intent, expiry});
    return absl::StatusOr<std::string>("boot-" + intent);
  };
  manager_ = std::make_unique<PoolManager>(*fleet_, registry_, notifier_,
                                           clock_, config_, o);
  ASSERT_TRUE(manager_->Init().ok());
  manager_->Tick();
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(minted.size(), 1u);
  const std::string intent =
      Events("pool.provision_requested")[0].details().at("token");
  EXPECT_EQ(minted[0].first, intent);
  // Valid until the instance would fail for not registering, plus 5 min.
  EXPECT_EQ(minted[0].second,
            clock_.Now() + config_.instance_manager.registration_timeout +
                absl::Minutes(5));
  EXPECT_EQ(seen[0], absl::StrCat("#!/bin/sh\nagent --server "
                                  "https://cp.example:50051 --pool train "
                                  "--node-id auto --token boot-",
                                  intent, " # sim us-east-1 h100-8x\n"));
}

// A pool on clouds that sets no user data gets the default bootstrap, which
// installs the agent from this control plane; other pools get none.
TEST_F(PoolManagerTest, CloudPoolsWithoutUserDataGetTheDefaultBootstrap) {
  Pool().min_nodes = 1;
  Pool().region = "us-east-1";
  std::vector<std::string> seen;
  provider_->set_provision_gate(
      [&](const ProvisionRequest& r) { seen.push_back(r.user_data); });
  PoolManagerOptions o{.instance_manager = config_.instance_manager,
                       .seed = ++starts_};
  o.control_plane = "https://cp.example:50051";
  o.agent_downloads = "https://cp.example:8080";
  o.default_user_data = DefaultUserDataTemplate();
  o.ssh_runner = [](const bootstrap::SshTarget&,
                    const std::vector<std::string>&,
                    const bootstrap::BootstrapOptions&, Clock&) {
    bootstrap::BootstrapResult r;
    r.success = true;
    return r;
  };
  o.mint_bootstrap_token = [](const std::string& intent, absl::Time) {
    return absl::StatusOr<std::string>("boot-" + intent);
  };
  auto start = [&] {
    seen.clear();
    o.seed = ++starts_;  // a new start: new provision tokens
    manager_ = std::make_unique<PoolManager>(*fleet_, registry_, notifier_,
                                             clock_, config_, o);
    ASSERT_TRUE(manager_->Init().ok());
    manager_->Tick();
  };
  start();  // "sim" is a fake provider: no user data.
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "");

  config_.providers["sim"].type = ProviderType::kAws;
  Pool().min_nodes++;
  start();
  ASSERT_EQ(seen.size(), 1u);
  const std::string& script = seen[0];
  EXPECT_THAT(script, ::testing::StartsWith("#!/bin/sh\n"));
  EXPECT_THAT(script, ::testing::Not(::testing::HasSubstr("{{")));
  EXPECT_THAT(script, ::testing::HasSubstr(
                          "'https://cp.example:8080/api/v1/agent/package'"));
  EXPECT_THAT(script,
              ::testing::HasSubstr("NAVARCH_SERVER=https://cp.example:50051"));
  EXPECT_THAT(script, ::testing::HasSubstr("token='boot-navarch-train-"));
  EXPECT_THAT(script, ::testing::HasSubstr(
                          "--node-id auto --pool train --provider sim "
                          "--region us-east-1 --instance-type p5.48xlarge"));

  // Setup commands bootstrap over SSH instead.
  Pool().setup_commands = {"echo hi"};
  Pool().min_nodes++;
  start();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "");
}

// A scale-down whose terminate the cloud refuses leaves the instance as it
// was (and billed, so retried), not recorded as terminated.
TEST_F(PoolManagerTest, ARefusedTerminateIsRetriedNotRecordedAsDone) {
  Pool().min_nodes = 0;
  Build();
  ASSERT_TRUE(manager_->ScalePool("train", 2, Actor{"ops"}).ok());
  manager_->Tick();
  manager_->Tick();
  ASSERT_EQ(Instances(INSTANCE_STATE_PENDING_REGISTRATION).size(), 2u);
  // Refused for both (the pool tries the next when one is refused).
  provider_->FailNextTerminate(absl::UnavailableError("the cloud says no"));
  provider_->FailNextTerminate(absl::UnavailableError("the cloud says no"));
  ASSERT_TRUE(manager_->ScalePool("train", 1, Actor{"ops"}).ok());
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_TRUE(Instances(INSTANCE_STATE_TERMINATED).empty());
  const std::vector<InstanceInfo> pending =
      Instances(INSTANCE_STATE_PENDING_REGISTRATION);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_THAT(pending[0].status_message() + pending[1].status_message(),
              ::testing::HasSubstr("terminate failed: the cloud says no"));
  manager_->Tick();  // asked again, and this time it goes
  EXPECT_EQ(provider_->live_count(), 1);
  EXPECT_EQ(Instances(INSTANCE_STATE_TERMINATED).size(), 1u);
}

// --- SSH bootstrap (setup_commands), with a stand-in for the SSH side
// (bootstrap/ssh_bootstrap_test.cc runs the real one against sshd).

struct RunnerCall {
  bootstrap::SshTarget target;
  std::vector<std::string> commands;
  bootstrap::BootstrapOptions options;
};

class SshBootstrapTest : public PoolManagerTest {
 protected:
  void SetUp() override {
    PoolManagerTest::SetUp();
    Pool().min_nodes = 1;
    Pool().region = "us-east-1";
    Pool().setup_commands = {"echo {{.NodeID}} {{.Pool}}",
                             "install --token {{.BootstrapToken}}"};
    Pool().ssh_private_key_path = "/keys/id_ed25519";
    Pool().ssh_port = 2222;
    result_.success = true;
    result_.host_key = {"ssh-ed25519 AAAAC3first", "SHA256:first"};
    result_.steps = {{"rendered 1", 0, "out\n", "", absl::Seconds(1), false},
                     {"rendered 2", 0, "", "", absl::Seconds(2), false}};
  }
  void BuildWithRunner() {
    PoolManagerOptions o{.instance_manager = config_.instance_manager,
                         .seed = ++starts_};
    o.ssh_runner = [this](const bootstrap::SshTarget& t,
                          const std::vector<std::string>& commands,
                          const bootstrap::BootstrapOptions& options, Clock&) {
      calls_.push_back({t, commands, options});
      return result_;
    };
    o.mint_bootstrap_token = [](const std::string& intent, absl::Time) {
      return absl::StatusOr<std::string>("boot-" + intent);
    };
    manager_ = std::make_unique<PoolManager>(*fleet_, registry_, notifier_,
                                             clock_, config_, o);
    ASSERT_TRUE(manager_->Init().ok());
  }
  InstanceInfo Only() {
    ListInstancesRequest r;
    auto resp = fleet_->ListInstances(r);
    EXPECT_TRUE(resp.ok());
    EXPECT_GE(resp->instances_size(), 1);
    return resp->instances_size() > 0 ? resp->instances(0) : InstanceInfo();
  }

  bootstrap::BootstrapResult result_;
  std::vector<RunnerCall> calls_;
};

TEST_F(SshBootstrapTest, SetupCommandsRunOnceTheInstanceHasAnAddress) {
  BuildWithRunner();
  manager_->Tick();  // provisions
  manager_->Tick();  // bootstraps
  ASSERT_EQ(calls_.size(), 1u);
  const InstanceInfo inst = Only();
  const std::string& id = inst.instance_id();
  const RunnerCall& c = calls_[0];
  EXPECT_EQ(c.target.host, provider_->List()->at(0).ip_address);
  EXPECT_THAT(c.target.host, ::testing::StartsWith("127."));
  EXPECT_EQ(c.target.port, 2222);
  EXPECT_EQ(c.target.user, "ubuntu");
  EXPECT_EQ(c.target.private_key_path, "/keys/id_ed25519");
  EXPECT_EQ(c.commands[0], absl::StrCat("echo ", id, " train"));
  EXPECT_EQ(c.commands[1], absl::StrCat("install --token boot-",
                                        inst.labels().at("navarch-token")));
  EXPECT_EQ(c.options.host_key.policy, bootstrap::HostKeyPolicy::kTofu);
  EXPECT_EQ(c.options.host_key.pinned_key, "");
  EXPECT_EQ(c.options.ssh_timeout, absl::Minutes(10));
  EXPECT_EQ(c.options.command_timeout, absl::Minutes(5));

  const InstanceBootstrap& b = inst.bootstrap();
  EXPECT_EQ(b.state(), BOOTSTRAP_STATE_SUCCEEDED);
  EXPECT_EQ(b.host(), absl::StrCat(c.target.host, ":2222"));
  EXPECT_EQ(b.host_key_fingerprint(), "SHA256:first");
  EXPECT_EQ(b.host_key_policy(), "tofu");
  ASSERT_EQ(b.steps_size(), 2);
  // The templates are recorded, never the rendered token.
  EXPECT_EQ(b.steps(1).command(), "install --token {{.BootstrapToken}}");
  EXPECT_EQ(b.steps(0).stdout_text(), "out\n");
  EXPECT_EQ(b.steps(1).duration_ms(), 2000);
  EXPECT_EQ(fleet_->PinnedHostKey(id), "ssh-ed25519 AAAAC3first");
  EXPECT_EQ(inst.state(), INSTANCE_STATE_PENDING_REGISTRATION);
  EXPECT_EQ(Events("instance.bootstrap_started").size(), 1u);
  EXPECT_EQ(Events("instance.bootstrap_succeeded").size(), 1u);

  // Done once; the node registers and the instance runs.
  manager_->Tick();
  EXPECT_EQ(calls_.size(), 1u);
  Register(id);
  manager_->Tick();
  EXPECT_EQ(Only().state(), INSTANCE_STATE_RUNNING);
  EXPECT_EQ(Only().bootstrap().state(), BOOTSTRAP_STATE_SUCCEEDED);
}

TEST_F(SshBootstrapTest, AFailedBootstrapFailsTheInstanceAndItIsReplaced) {
  result_.success = false;
  result_.error_code = absl::StatusCode::kAborted;
  result_.error = "command 2 exited with status 3";
  result_.steps[1].exit_code = 3;
  BuildWithRunner();
  manager_->Tick();
  manager_->Tick();
  ASSERT_EQ(calls_.size(), 1u);
  std::vector<InstanceInfo> failed = Instances(INSTANCE_STATE_FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_THAT(
      failed[0].status_message(),
      ::testing::HasSubstr("bootstrap failed: command 2 exited with status 3"));
  EXPECT_TRUE(failed[0].has_terminated_at());
  EXPECT_EQ(failed[0].bootstrap().state(), BOOTSTRAP_STATE_FAILED);
  EXPECT_EQ(failed[0].bootstrap().steps(1).exit_code(), 3);
  EXPECT_EQ(provider_->live_count(), 0);
  ASSERT_EQ(Events("instance.bootstrap_failed").size(), 1u);
  EXPECT_THAT(Events("instance.bootstrap_failed")[0].message(),
              ::testing::HasSubstr("command 2 exited with status 3"));
  // The key of a connection that worked is pinned, though a command failed.
  EXPECT_EQ(fleet_->PinnedHostKey(failed[0].instance_id()),
            "ssh-ed25519 AAAAC3first");
  manager_->Tick();  // the pool is short: a new instance
  EXPECT_EQ(provider_->live_count(), 1);
}

TEST_F(SshBootstrapTest, ARefusedHostKeyIsNotPinnedAndThePinIsPassedOn) {
  Pool().ssh_host_key_policy = SshHostKeyPolicy::kKnownHosts;
  Pool().ssh_known_hosts_file = "/etc/ssh/ssh_known_hosts";
  result_.success = false;
  result_.error_code = absl::StatusCode::kFailedPrecondition;
  result_.error = "host key of 127.0.0.1:2222 (SHA256:first) is not known";
  result_.steps.clear();
  BuildWithRunner();
  manager_->Tick();
  manager_->Tick();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].options.host_key.policy,
            bootstrap::HostKeyPolicy::kKnownHosts);
  EXPECT_EQ(calls_[0].options.host_key.known_hosts_path,
            "/etc/ssh/ssh_known_hosts");
  const std::vector<InstanceInfo> failed = Instances(INSTANCE_STATE_FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(fleet_->PinnedHostKey(failed[0].instance_id()), "");
  EXPECT_EQ(failed[0].bootstrap().host_key_policy(), "known_hosts");
}

TEST_F(SshBootstrapTest, ARestartRunsAnUnfinishedBootstrapAgainWithThePin) {
  result_.error_code = absl::StatusCode::kCancelled;  // stopped mid-way
  result_.success = false;
  BuildWithRunner();
  manager_->Tick();
  manager_->Tick();
  ASSERT_EQ(calls_.size(), 1u);
  const std::string id = Only().instance_id();
  EXPECT_EQ(Only().bootstrap().state(), BOOTSTRAP_STATE_RUNNING);
  EXPECT_EQ(Only().state(), INSTANCE_STATE_PENDING_REGISTRATION);
  // A key pinned by an earlier connection is handed to the next one.
  InstanceBootstrap b = Only().bootstrap();
  ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                fleet_->RecordBootstrap(id, b, "ssh-ed25519 AAAApinned",
                                        Actor{"test"}, done);
              }).ok());
  result_.error_code = absl::StatusCode::kOk;
  result_.success = true;
  BuildWithRunner();  // the next start
  manager_->Tick();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].options.host_key.pinned_key, "ssh-ed25519 AAAApinned");
  EXPECT_EQ(Only().bootstrap().state(), BOOTSTRAP_STATE_SUCCEEDED);
  EXPECT_EQ(fleet_->PinnedHostKey(id), "ssh-ed25519 AAAApinned");
}

TEST_F(SshBootstrapTest, TheRegistrationDeadlineStartsWhenTheBootstrapEnds) {
  BuildWithRunner();
  manager_->Tick();
  clock_.Advance(config_.instance_manager.registration_timeout -
                 absl::Minutes(1));
  manager_->Tick();  // bootstraps now, 9 minutes after the launch
  ASSERT_EQ(calls_.size(), 1u);
  clock_.Advance(absl::Minutes(5));
  manager_->Tick();
  EXPECT_EQ(Only().state(), INSTANCE_STATE_PENDING_REGISTRATION);
  clock_.Advance(config_.instance_manager.registration_timeout);
  manager_->Tick();
  EXPECT_EQ(Only().state(), INSTANCE_STATE_FAILED);
  EXPECT_THAT(Only().status_message(),
              ::testing::HasSubstr("registration timeout"));
}

TEST_F(PoolManagerTest, UserDataProblemsFailInit) {
  Pool().user_data = "token {{.BootstrapToken}}";
  PoolManager no_minter(*fleet_, registry_, notifier_, clock_, config_);
  absl::Status s = no_minter.Init();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), ::testing::HasSubstr("auth.node_token_key"));

  Pool().user_data.clear();
  Pool().user_data_file = "/nonexistent/navarch-user-data.sh";
  PoolManager missing(*fleet_, registry_, notifier_, clock_, config_);
  EXPECT_THAT(missing.Init().message(), ::testing::HasSubstr("cannot be read"));

  const std::string path =
      ::testing::TempDir() + "/navarch-user-data-" + std::to_string(getpid());
  {
    std::ofstream f(path);
    f << "#!/bin/sh\necho {{.Pool}} {{.Nope}}\n";
  }
  Pool().user_data_file = path;
  PoolManager unknown(*fleet_, registry_, notifier_, clock_, config_);
  EXPECT_THAT(unknown.Init().message(),
              ::testing::HasSubstr("unknown variable {{.Nope}}"));
  {
    std::ofstream f(path);
    f << "#!/bin/sh\necho {{.Pool}}\n";
  }
  std::vector<std::string> seen;
  provider_->set_provision_gate(
      [&](const ProvisionRequest& r) { seen.push_back(r.user_data); });
  PoolManager good(*fleet_, registry_, notifier_, clock_, config_);
  ASSERT_TRUE(good.Init().ok());
  good.Tick();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], "#!/bin/sh\necho train\n");
  std::remove(path.c_str());
}

// The control plane died after the provider accepted a request but before
// the answer was recorded: the instance is adopted, not paid for twice.
TEST_F(PoolManagerTest, ReconcileAdoptsAnInstanceWhoseAnswerWasLost) {
  ASSERT_TRUE(Await<Event>([&](auto done) {
                fleet_->RecordEvent("pool.provision_requested", "", "train",
                                    Actor{"pool-manager"}, "requesting",
                                    {{"token", "tok-1"}}, done);
              }).ok());
  ProvisionRequest req;
  req.idempotency_token = "tok-1";
  req.labels = {{"pool", "train"},
                {"navarch-cluster", "navarch"},
                {"navarch-managed", "true"},
                {"navarch-token", "tok-1"}};
  auto pi = provider_->Provision(req);
  ASSERT_TRUE(pi.ok());
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  auto pending = Instances(INSTANCE_STATE_PENDING_REGISTRATION);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].instance_id(), pi->id);
  EXPECT_EQ(pending[0].pool_name(), "train");
  EXPECT_EQ(Events("pool.instance_adopted").size(), 1u);
  EXPECT_EQ(manager_->counters().reconciled["adopted"], 1);
  // min_nodes 2: the adopted one counts, so only one more is bought.
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
}

// A replacement lives in the pool manager's memory while it runs; a
// restart (or a new leader) between buying the replacement and terminating
// the old node must carry it on, not buy a second machine for the node.
TEST_F(PoolManagerTest, ARestartMidReplacementFinishesItWithoutBuyingAgain) {
  std::vector<std::string> ids = TwoNodes();
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[1]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 1);
  provider_->FailNextTerminate(absl::UnavailableError("the cloud says no"));
  manager_->Tick();  // replacement bought; the old one not let go yet
  ASSERT_EQ(provider_->provision_calls(), 3);
  ASSERT_EQ(Events("pool.replacement_provisioned").size(), 1u);
  const std::string fresh =
      Events("pool.replacement_provisioned")[0].details().at("replacement");
  ASSERT_EQ(Node(ids[0]).status(), NODE_STATUS_UNHEALTHY);

  Build();  // the control plane restarts
  ASSERT_TRUE(manager_->Reconcile().ok());
  manager_->Tick();
  EXPECT_EQ(provider_->provision_calls(), 3);  // nothing bought again
  EXPECT_EQ(Node(ids[0]).status(), NODE_STATUS_TERMINATED);
  const std::vector<Event> resumed = Events("pool.removal_resumed");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].node_id(), ids[0]);
  EXPECT_EQ(resumed[0].details().at("replacement"), fresh);
  EXPECT_EQ(Events("pool.replacement_provisioned").size(), 1u);
  EXPECT_EQ(provider_->live_count(), 2);  // ids[1] and the replacement
  auto pending = Instances(INSTANCE_STATE_PENDING_REGISTRATION);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].instance_id(), fresh);  // kept, not scaled down
  // A later restart has nothing left to resume.
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  EXPECT_EQ(Events("pool.removal_resumed").size(), 1u);
}

// The replacement was bought but its answer was never recorded: adopted by
// its token at start-up, and linked to the node it replaces.
TEST_F(PoolManagerTest, ARestartLinksAnAdoptedReplacementToItsNode) {
  std::vector<std::string> ids = TwoNodes();
  clock_.Advance(absl::Seconds(100));
  Heartbeat(ids[1]);
  ASSERT_EQ(fleet_->CheckHeartbeats(), 1);
  auto record = [&](const std::string& kind, const std::string& node,
                    const std::string& message,
                    std::map<std::string, std::string> details) {
    ASSERT_TRUE(Await<Event>([&](auto done) {
                  fleet_->RecordEvent(kind, node, "train",
                                      Actor{"pool-manager"}, message, details,
                                      done);
                }).ok());
  };
  record("pool.replacement_started", ids[0],
         "replacing node " + ids[0] + ": node unhealthy: silent", {});
  record("pool.provision_requested", "", "requesting",
         {{"token", "tok-r"}, {"purpose", "replacement of " + ids[0]}});
  ProvisionRequest req;
  req.idempotency_token = "tok-r";
  req.labels = {{"pool", "train"},
                {"navarch-cluster", "navarch"},
                {"navarch-managed", "true"},
                {"navarch-token", "tok-r"}};
  auto pi = provider_->Provision(req);  // the call whose answer was lost
  ASSERT_TRUE(pi.ok());
  Build();
  const int calls = provider_->provision_calls();
  ASSERT_TRUE(manager_->Reconcile().ok());
  manager_->Tick();
  EXPECT_EQ(provider_->provision_calls(), calls);  // nothing bought again
  EXPECT_EQ(Node(ids[0]).status(), NODE_STATUS_TERMINATED);
  EXPECT_EQ(provider_->live_count(), 2);
  const std::vector<Event> resumed = Events("pool.removal_resumed");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].details().at("replacement"), pi->id);
}

TEST_F(PoolManagerTest, ReconcileTerminatesUnknownInstancesWithOurTags) {
  ProvisionRequest ours;
  ours.idempotency_token = "stranger";
  ours.labels = {{"pool", "train"},
                 {"navarch-cluster", "navarch"},
                 {"navarch-managed", "true"}};
  ASSERT_TRUE(provider_->Provision(ours).ok());
  ProvisionRequest theirs;
  theirs.idempotency_token = "by-hand";
  theirs.labels = {{"pool", "train"}};  // No cluster tag: not ours to touch.
  ASSERT_TRUE(provider_->Provision(theirs).ok());
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  EXPECT_EQ(provider_->live_count(), 1);
  std::vector<Event> e = Events("pool.unknown_instance");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].details().at("action"), "terminate");
  EXPECT_EQ(manager_->counters().reconciled["unknown_terminated"], 1);
}

TEST_F(PoolManagerTest, ReconcileOnlyReportsUnknownInstancesWhenAsked) {
  config_.instance_manager.terminate_unknown = false;
  ProvisionRequest ours;
  ours.idempotency_token = "stranger";
  ours.labels = {{"pool", "train"},
                 {"navarch-cluster", "navarch"},
                 {"navarch-managed", "true"}};
  ASSERT_TRUE(provider_->Provision(ours).ok());
  manager_ = std::make_unique<PoolManager>(
      *fleet_, registry_, notifier_, clock_, config_,
      PoolManagerOptions{.instance_manager = config_.instance_manager});
  ASSERT_TRUE(manager_->Init().ok());
  ASSERT_TRUE(manager_->Reconcile().ok());
  EXPECT_EQ(provider_->live_count(), 1);
  std::vector<Event> e = Events("pool.unknown_instance");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].details().at("action"), "report");
}

TEST_F(PoolManagerTest, ReconcileMarksInstancesGoneAtTheProvider) {
  Build();
  manager_->Tick();
  auto listed = provider_->List();
  ASSERT_TRUE(listed.ok());
  const std::string gone = (*listed)[0].id;
  ASSERT_TRUE(provider_->Terminate(gone).ok());  // Behind our back.
  Build();                                       // A restarted control plane.
  ASSERT_TRUE(manager_->Reconcile().ok());
  auto failed = Instances(INSTANCE_STATE_FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].instance_id(), gone);
  EXPECT_TRUE(failed[0].has_terminated_at());
  EXPECT_EQ(manager_->counters().reconciled["vanished"], 1);
  EXPECT_EQ(manager_->counters().reconciled["adopted"], 1);
  manager_->Tick();  // And the pool is made whole.
  EXPECT_EQ(provider_->live_count(), 2);
}

// Issue 15: after a restart whose provider lost every machine (the local
// provider's processes die with the control plane), the nodes of the
// vanished instances end too, and the pool is made whole at the next tick,
// without tripping the breaker.
TEST_F(PoolManagerTest, ReconcileTerminatesTheNodesOfVanishedInstances) {
  std::vector<std::string> ids = TwoNodes();
  ASSERT_EQ(ids.size(), 2u);
  for (const std::string& id : ids) ASSERT_TRUE(provider_->Terminate(id).ok());
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  for (const std::string& id : ids) {
    EXPECT_EQ(Node(id).status(), NODE_STATUS_TERMINATED) << id;
  }
  manager_->Tick();
  EXPECT_EQ(provider_->live_count(), 2);
  EXPECT_TRUE(Events("pool.breaker_tripped").empty());
  // Their heartbeats stopped long ago: still nothing to trip.
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(fleet_->CheckHeartbeats(), 0);
}

TEST_F(PoolManagerTest, ReconcileTerminatesAgainWhatStillRuns) {
  Build();
  manager_->Tick();
  auto pending = Instances(INSTANCE_STATE_PENDING_REGISTRATION);
  ASSERT_EQ(pending.size(), 2u);
  InstanceInfo rec = pending[0];
  rec.set_state(INSTANCE_STATE_TERMINATED);
  *rec.mutable_terminated_at() = ToTimestamp(clock_.Now());
  ASSERT_TRUE(Await<InstanceInfo>([&](auto done) {
                fleet_->UpsertInstance(rec, Actor{"test"}, done);
              }).ok());
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  EXPECT_EQ(provider_->live_count(), 1);
  EXPECT_EQ(manager_->counters().reconciled["terminated_again"], 1);
}

// --- External metrics sources.

TEST_F(PoolManagerTest, MetricsSourceFeedsTheQueueAutoscalerAndHoldsOnFailure) {
  const std::string file = ::testing::TempDir() + "/queue.json";
  auto write = [&](const std::string& body) {
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(body.c_str(), f);
    fclose(f);
  };
  write(R"({"queue_depth": 30})");
  Pool().min_nodes = 1;
  Pool().cooldown = absl::ZeroDuration();
  AutoscalingConfig a;
  a.type = AutoscalerType::kQueue;
  a.jobs_per_node = 10;
  Pool().autoscaling = a;
  Pool().metrics.type = MetricsSourceType::kCommand;
  Pool().metrics.command = {"cat", file};
  Build();
  manager_->Tick();
  auto st = manager_->GetPool("train");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->target_nodes, 3);
  EXPECT_EQ(st->queue_depth, 30);
  EXPECT_EQ(st->metrics_source, "command");
  EXPECT_TRUE(st->metrics_source_up);

  write("squeue: error");
  manager_->Tick();
  manager_->Tick();
  st = manager_->GetPool("train");
  EXPECT_EQ(st->target_nodes, 3);  // Held, not collapsed to min_nodes.
  EXPECT_FALSE(st->metrics_source_up);
  EXPECT_NE(st->metrics_source_error.find("squeue: error"), std::string::npos);
  EXPECT_EQ(Events("pool.metrics_source_failed").size(), 1u);  // Not 2.
  EXPECT_EQ(manager_->counters().metrics_source_errors["train"], 2);

  write(R"({"queue_depth": 45})");
  manager_->Tick();
  st = manager_->GetPool("train");
  EXPECT_TRUE(st->metrics_source_up);
  EXPECT_EQ(st->target_nodes, 5);
  EXPECT_EQ(Events("pool.metrics_source_recovered").size(), 1u);
}

}  // namespace
}  // namespace navarch
