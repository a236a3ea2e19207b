// A provider call that takes 30 s (a cloud API having a bad day) must not
// stop the control plane: the pool manager runs with worker threads, as in
// the server, against a fake provider whose Provision blocks on a latch the
// test releases. Time is a FakeClock; the threads are real.
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "navarch/base/logging.h"
#include "navarch/controllers/controllers.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

class BlockingProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"slow", "quick"}) {
      ProviderConfig pc;
      pc.name = name;
      pc.type = ProviderType::kFake;
      config_.providers[name] = pc;
      PoolConfig pool;
      pool.name = name;
      pool.providers = {PoolProvider{.name = name}};
      pool.min_nodes = 1;
      pool.max_nodes = 3;
      pool.instance_type = "h100-8x";
      config_.pools[name] = pool;
      FakeProviderOptions o;
      o.name = name;
      auto p = std::make_unique<FakeProvider>(clock_, o);
      (std::string(name) == "slow" ? slow_ : quick_) = p.get();
      ASSERT_TRUE(registry_.Add(std::move(p)).ok());
    }
    fleet_ =
        std::make_unique<FleetService>(store_, clock_, evaluator_, NullLogger(),
                                       FleetOptionsFromConfig(config_));
    ASSERT_TRUE(fleet_->Start().ok());
    // The slow provider's Provision blocks until the test says.
    slow_->set_provision_gate([this](const ProvisionRequest&) {
      if (!entered_.HasBeenNotified()) entered_.Notify();
      release_.WaitForNotification();
    });
  }
  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (manager_ != nullptr) {
      manager_->AwaitNoProviderCalls();
      manager_->Stop(absl::ZeroDuration());
    }
    manager_.reset();
    fleet_->Stop();
  }

  void Build() {
    PoolManagerOptions o;
    o.threads = true;
    o.provider_call_timeout = absl::Minutes(10);
    o.seed = ++starts_;
    o.on_pool_ticked = [this](const std::string& pool) {
      absl::MutexLock lock(&mu_);
      ++ticks_[pool];
    };
    manager_ = std::make_unique<PoolManager>(*fleet_, registry_, notifier_,
                                             clock_, config_, o);
    ASSERT_TRUE(manager_->Init().ok());
  }
  int Ticks(const std::string& pool) {
    absl::MutexLock lock(&mu_);
    return ticks_[pool];
  }
  // Waits (real time, bounded) until `pool` has finished `n` ticks.
  bool AwaitTicks(const std::string& pool, int n) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ticks_[pool] >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }
  void Register(const std::string& id, const std::string& pool = "") {
    RegisterNodeRequest r;
    r.set_node_id(id);
    if (!pool.empty()) (*r.mutable_metadata()->mutable_labels())["pool"] = pool;
    r.add_gpus()->set_uuid("GPU-" + id);
    ASSERT_TRUE(Await<RegisterNodeResponse>([&](auto done) {
                  fleet_->RegisterNode(r, done);
                }).ok());
  }
  std::vector<InstanceInfo> InstancesOf(const std::string& pool) {
    std::vector<InstanceInfo> out;
    auto resp = fleet_->ListInstances({});
    EXPECT_TRUE(resp.ok());
    for (const auto& i : resp->instances()) {
      if (i.pool_name() == pool) out.push_back(i);
    }
    return out;
  }
  std::vector<Event> Events(const std::string& kind) {
    ListEventsRequest r;
    r.add_kinds(kind);
    auto resp = fleet_->ListEvents(r);
    EXPECT_TRUE(resp.ok());
    return {resp->events().begin(), resp->events().end()};
  }

  MemoryStore store_;
  FakeClock clock_;
  PolicyEvaluator evaluator_;
  Config config_;
  std::unique_ptr<FleetService> fleet_;
  ProviderRegistry registry_;
  FakeProvider* slow_ = nullptr;
  FakeProvider* quick_ = nullptr;
  NoopNotifier notifier_;
  std::unique_ptr<PoolManager> manager_;
  absl::Notification entered_;
  absl::Notification release_;
  absl::Mutex mu_;
  std::map<std::string, int> ticks_ ABSL_GUARDED_BY(mu_);
  uint64_t starts_ = 0;
};

TEST_F(BlockingProviderTest, AHungProvisionBlocksNeitherTheFleetNorOtherPools) {
  Register("worker");
  Register("silent");
  Build();
  // The server's controllers, the pool tick among them, on the same clock.
  std::vector<std::unique_ptr<PeriodicTask>> controllers = MakeControllers(
      clock_, *fleet_, config_, kHistoryRetention, [this] { manager_->Tick(); },
      NullLogger());
  for (auto& c : controllers) c->Start();

  manager_->Tick();  // Returns although the slow pool's Provision hangs.
  entered_.WaitForNotification();
  ASSERT_TRUE(AwaitTicks("quick", 1));
  EXPECT_EQ(InstancesOf("quick").size(), 1u);
  EXPECT_EQ(Ticks("slow"), 0);

  // Meanwhile the fleet answers: a heartbeat and a ListNodes.
  HeartbeatRequest hb;
  hb.set_node_id("worker");
  EXPECT_TRUE(Await<HeartbeatResponse>([&](auto done) {
                fleet_->SendHeartbeat(hb, done);
              }).ok());
  ListNodesRequest list;
  auto nodes = fleet_->ListNodes(list);
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->nodes_size(), 2);

  // Two minutes pass: the heartbeat monitor finds the silent node, and the
  // quick pool ticks again (scaled to 2) while the slow one is skipped.
  ASSERT_TRUE(manager_->ScalePool("quick", 2, Actor{"test"}).ok());
  const int before = Ticks("quick");
  clock_.Advance(absl::Minutes(2));
  GetNodeRequest get;
  get.set_node_id("silent");
  EXPECT_EQ(fleet_->GetNode(get)->node().status(), NODE_STATUS_UNHEALTHY);
  ASSERT_TRUE(AwaitTicks("quick", before + 1));
  for (auto& c : controllers) c->Stop();
  EXPECT_EQ(InstancesOf("quick").size(), 2u);
  EXPECT_TRUE(InstancesOf("slow").empty());
  EXPECT_EQ(Ticks("slow"), 0);

  // The call returns: its instance is recorded as any other.
  release_.Notify();
  ASSERT_TRUE(AwaitTicks("slow", 1));
  std::vector<InstanceInfo> slow = InstancesOf("slow");
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_EQ(slow[0].provider(), "slow");
  EXPECT_TRUE(Events("pool.provision_failed").empty());
  EXPECT_EQ(manager_->counters().provider_calls["slow|provision|ok"], 1);
}

TEST_F(BlockingProviderTest, StopWaitsABoundedTimeThenTheNextStartAdopts) {
  Build();
  manager_->Tick();
  entered_.WaitForNotification();
  // The pools tick on worker threads: the quick one may still be recording
  // its intent when the slow one's call has begun.
  ASSERT_TRUE(AwaitTicks("quick", 1));
  // The intent was recorded before the call.
  std::vector<Event> intents = Events("pool.provision_requested");
  ASSERT_EQ(intents.size(), 2u);  // One per pool.

  // Stop waits its grace period (on the clock), then gives up on the call.
  absl::Notification stopped;
  std::thread stopper([&] {
    manager_->Stop(absl::Seconds(10));
    stopped.Notify();
  });
  EXPECT_FALSE(stopped.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  clock_.Advance(absl::Seconds(10));
  stopped.WaitForNotification();
  stopper.join();
  EXPECT_EQ(manager_->provider_calls_in_flight(), 1);  // Abandoned, running.
  std::vector<Event> failed = Events("pool.provision_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].pool(), "slow");
  EXPECT_TRUE(InstancesOf("slow").empty());
  manager_->Tick();  // Stopped: does nothing.
  EXPECT_EQ(Events("pool.provision_requested").size(), 2u);

  // The abandoned call completes at the provider after the stop...
  release_.Notify();
  manager_->AwaitNoProviderCalls();
  EXPECT_EQ(slow_->live_count(), 1);
  EXPECT_TRUE(InstancesOf("slow").empty());
  // ...and the next start adopts its instance by the recorded token.
  manager_.reset();
  Build();
  ASSERT_TRUE(manager_->Reconcile().ok());
  std::vector<InstanceInfo> slow = InstancesOf("slow");
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_EQ(manager_->counters().reconciled["adopted"], 2);  // quick's too.
  EXPECT_EQ(Events("pool.instance_adopted").size(), 1u);
}

// A pool tick runs on a worker while the next Tick() reads the nodes; if
// that tick replaced and terminated a node after the read, the old read
// must not tick the pool: the node would look unhealthy and unclaimed and
// be replaced twice (seen once under ASan in clouds_e2e_test).
TEST_F(BlockingProviderTest, APoolIsNeverTickedWithNodesReadBeforeItsLastTick) {
  release_.Notify();  // The slow pool plays no part here.
  // A pool whose instance stays PROVISIONING, so every Tick() lists its
  // provider: the test holds Tick() there, between the read and the claim.
  FakeProviderOptions o;
  o.name = "boot";
  o.provisioning_delay = absl::Hours(1);
  auto boot_owned = std::make_unique<FakeProvider>(clock_, o);
  FakeProvider* boot = boot_owned.get();
  ASSERT_TRUE(registry_.Add(std::move(boot_owned)).ok());
  config_.providers["boot"] =
      ProviderConfig{.name = "boot", .type = ProviderType::kFake};
  PoolConfig pool = config_.pools["quick"];
  pool.name = "boot";
  pool.providers = {PoolProvider{.name = "boot"}};
  config_.pools["boot"] = pool;
  Build();
  manager_->Tick();
  ASSERT_TRUE(AwaitTicks("quick", 1));
  std::vector<InstanceInfo> quick = InstancesOf("quick");
  ASSERT_EQ(quick.size(), 1u);
  const std::string bad = quick[0].instance_id();
  Register(bad, "quick");
  manager_->Tick();
  ASSERT_TRUE(AwaitTicks("quick", 2));
  clock_.Advance(absl::Seconds(100));  // It never beat: unhealthy.
  ASSERT_EQ(fleet_->CheckHeartbeats(), 1);

  // The replacement's Provision waits; then the next Tick()'s List does.
  absl::Notification provisioning, provision_go, listing, list_go;
  quick_->set_provision_gate([&](const ProvisionRequest&) {
    if (!provisioning.HasBeenNotified()) provisioning.Notify();
    provision_go.WaitForNotification();
  });
  manager_->Tick();  // Starts the replacement, held in Provision.
  provisioning.WaitForNotification();
  boot->set_list_gate([&] {
    if (!listing.HasBeenNotified()) listing.Notify();
    list_go.WaitForNotification();
  });
  std::thread next([this] { manager_->Tick(); });  // Reads, then held.
  listing.WaitForNotification();
  provision_go.Notify();  // The replacement finishes; `bad` is terminated.
  ASSERT_TRUE(AwaitTicks("quick", 3));
  GetNodeRequest get;
  get.set_node_id(bad);
  EXPECT_EQ(fleet_->GetNode(get)->node().status(), NODE_STATUS_TERMINATED);
  list_go.Notify();
  next.join();
  manager_->Tick();
  ASSERT_TRUE(AwaitTicks("quick", 4));
  EXPECT_EQ(Events("pool.replacement_provisioned").size(), 1u);
  EXPECT_EQ(quick_->provision_calls(), 2);  // The first, its replacement.
}

}  // namespace
}  // namespace navarch
