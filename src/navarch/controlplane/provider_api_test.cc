// The provider RPCs without a transport: what ListProviders says of each
// configured provider, and ListInstanceTypes with the fake provider, a
// provider that fails, one that hangs (on a FakeClock), and Lambda's fake
// API, whose prices and regions with capacity must come through.
#include "navarch/controlplane/provider_api.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/controlplane/testing/scripted_provider.h"
#include "navarch/health/evaluator.h"
#include "navarch/notifier/notifier.h"
#include "navarch/provider/fake/fake_provider.h"
#include "navarch/provider/lambda/lambda_provider.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "navarch/store/memory/memory_store.h"

namespace navarch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScriptedProvider;

InstanceTypeInfo Type(std::string name, int gpus, double price,
                      std::vector<std::string> regions = {}) {
  InstanceTypeInfo t;
  t.name = std::move(name);
  t.gpu_count = gpus;
  t.gpu_type = "H100";
  t.memory_gb = 1800;
  t.vcpus = 208;
  t.price_per_hour = price;
  t.regions = std::move(regions);
  return t;
}

ProviderConfig Conf(const std::string& name, ProviderType type) {
  ProviderConfig c;
  c.name = name;
  c.type = type;
  return c;
}

// Collects the answer of an asynchronous call.
struct Answer {
  absl::Mutex mu;
  std::optional<absl::StatusOr<ListInstanceTypesResponse>> value
      ABSL_GUARDED_BY(mu);
  int answers ABSL_GUARDED_BY(mu) = 0;

  Done<ListInstanceTypesResponse> Callback() {
    return [this](absl::StatusOr<ListInstanceTypesResponse> r) {
      absl::MutexLock lock(&mu);
      value = std::move(r);
      ++answers;
    };
  }
  bool ready() {
    absl::MutexLock lock(&mu);
    return value.has_value();
  }
  absl::StatusOr<ListInstanceTypesResponse> Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](Answer* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->mu) {
          return a->value.has_value();
        },
        this));
    return *value;
  }
  int count() {
    absl::MutexLock lock(&mu);
    return answers;
  }
};

class ProviderApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.providers["sim"] = Conf("sim", ProviderType::kFake);
    config_.providers["broken"] = Conf("broken", ProviderType::kLambda);
    config_.providers["slow"] = Conf("slow", ProviderType::kLambda);
    config_.providers["lam"] = Conf("lam", ProviderType::kLambda);
    config_.providers["idle"] = Conf("idle", ProviderType::kGcp);
    PoolConfig train;
    train.providers = {PoolProvider{.name = "sim"},
                       PoolProvider{.name = "lam", .priority = 1}};
    config_.pools["train"] = train;
    PoolConfig infer;
    infer.providers = {PoolProvider{.name = "sim"}};
    config_.pools["infer"] = infer;

    FakeProviderOptions fo;
    fo.name = "sim";
    fo.instance_types = {Type("h100-8x", 8, 0), Type("a100-8x", 8, 12.5)};
    ASSERT_TRUE(registry_.Add(std::make_unique<FakeProvider>(clock_, fo)).ok());
    auto broken = std::make_unique<ScriptedProvider>(
        "broken", absl::UnavailableError(
                      "broken: GET /instance-types: 503 global/internal-error "
                      "(try again later)"));
    ASSERT_TRUE(registry_.Add(std::move(broken)).ok());
    auto slow = std::make_unique<ScriptedProvider>(
        "slow", std::vector<InstanceTypeInfo>{Type("x", 1, 1)}, true);
    slow_ = slow.get();
    ASSERT_TRUE(registry_.Add(std::move(slow)).ok());
    auto lam = std::make_unique<ScriptedProvider>(
        "lam", std::vector<InstanceTypeInfo>{
                   Type("gpu_8x_h100_sxm5", 8, 23.92, {"us-east-1"})});
    ASSERT_TRUE(registry_.Add(std::move(lam)).ok());
    api_ = std::make_unique<ProviderApi>(
        config_, &registry_, nullptr, clock_,
        std::map<std::string, std::string>{{"idle",
                                            "credentials_file: no "
                                            "such file"}});
  }

  void TearDown() override {
    slow_->Release();
    api_->AwaitNoCallsRunning();
  }

  absl::StatusOr<ListInstanceTypesResponse> Types(const std::string& name) {
    ListInstanceTypesRequest r;
    r.set_provider(name);
    return api_->ListInstanceTypes(r);
  }

  FakeClock clock_;
  Config config_;
  ProviderRegistry registry_;
  ScriptedProvider* slow_ = nullptr;
  std::unique_ptr<ProviderApi> api_;
};

TEST_F(ProviderApiTest, ListsEveryConfiguredProviderWithItsPools) {
  absl::StatusOr<ListProvidersResponse> r = api_->ListProviders();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->providers_size(), 5);
  std::vector<std::string> names;
  for (const ProviderInfo& p : r->providers()) names.push_back(p.name());
  EXPECT_THAT(names, ElementsAre("broken", "idle", "lam", "sim", "slow"));
  const ProviderInfo& sim = r->providers(3);
  EXPECT_EQ(sim.type(), "fake");
  EXPECT_THAT(sim.pools(), ElementsAre("infer", "train"));
  EXPECT_TRUE(sim.available());
  EXPECT_EQ(sim.unavailable_reason(), "");
  EXPECT_THAT(r->providers(2).pools(), ElementsAre("train"));
  EXPECT_EQ(r->providers(2).type(), "lambda");
  const ProviderInfo& idle = r->providers(1);
  EXPECT_EQ(idle.type(), "gcp");
  EXPECT_TRUE(idle.pools().empty());
  EXPECT_FALSE(idle.available());
  EXPECT_EQ(idle.unavailable_reason(), "credentials_file: no such file");
}

TEST_F(ProviderApiTest, WithoutPoolsEveryProviderIsListedAsNotBuilt) {
  ProviderApi api(config_, nullptr, nullptr, clock_);
  absl::StatusOr<ListProvidersResponse> r = api.ListProviders();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->providers_size(), 5);
  for (const ProviderInfo& p : r->providers()) {
    EXPECT_FALSE(p.available()) << p.name();
    EXPECT_THAT(p.unavailable_reason(), HasSubstr("no pool is configured"));
  }
  ListInstanceTypesRequest req;
  req.set_provider("sim");
  absl::StatusOr<ListInstanceTypesResponse> t = api.ListInstanceTypes(req);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(), HasSubstr("provider sim is unavailable"));
}

TEST_F(ProviderApiTest, FakeTypesSortedWithPriceOnlyWhereKnown) {
  absl::StatusOr<ListInstanceTypesResponse> r = Types("sim");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->provider(), "sim");
  EXPECT_EQ(r->type(), "fake");
  ASSERT_EQ(r->instance_types_size(), 2);
  const ProviderInstanceType& a100 = r->instance_types(0);
  EXPECT_EQ(a100.name(), "a100-8x");
  EXPECT_TRUE(a100.has_price_per_hour());
  EXPECT_DOUBLE_EQ(a100.price_per_hour(), 12.5);
  EXPECT_EQ(a100.gpu_model(), "H100");
  EXPECT_EQ(a100.gpu_count(), 8);
  EXPECT_EQ(a100.memory_gb(), 1800);
  EXPECT_EQ(a100.vcpus(), 208);
  EXPECT_TRUE(a100.available());
  EXPECT_THAT(a100.abstract_types(), ElementsAre("a100-8x"));
  const ProviderInstanceType& h100 = r->instance_types(1);
  EXPECT_EQ(h100.name(), "h100-8x");
  EXPECT_FALSE(h100.has_price_per_hour());  // 0 from the provider: unknown
  // The fake takes any name, so an abstract name maps to itself.
  EXPECT_THAT(h100.abstract_types(), ElementsAre("h100-8x"));
}

TEST_F(ProviderApiTest, AbstractTypesFollowTheProvidersType) {
  absl::StatusOr<ListInstanceTypesResponse> r = Types("lam");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->instance_types_size(), 1);
  EXPECT_THAT(r->instance_types(0).abstract_types(), ElementsAre("h100-8x"));
  EXPECT_THAT(r->instance_types(0).regions(), ElementsAre("us-east-1"));
  InstanceTypeInfo gcp = Type("a3-highgpu-8g", 8, 0);
  EXPECT_THAT(ToProviderInstanceType(gcp, ProviderType::kGcp).abstract_types(),
              ElementsAre("h100-8x"));
  EXPECT_TRUE(ToProviderInstanceType(gcp, ProviderType::kLambda)
                  .abstract_types()
                  .empty());
}

TEST_F(ProviderApiTest, TheCloudsErrorComesBackAsIs) {
  absl::StatusOr<ListInstanceTypesResponse> r = Types("broken");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "broken: GET /instance-types: 503 global/internal-error (try again "
            "later)");
  // The fake provider without types says it cannot list them.
  FakeProviderOptions fo;
  fo.name = "bare";
  ProviderRegistry registry;
  ASSERT_TRUE(registry.Add(std::make_unique<FakeProvider>(clock_, fo)).ok());
  Config config;
  config.providers["bare"] = Conf("bare", ProviderType::kFake);
  ProviderApi api(config, &registry, nullptr, clock_);
  ListInstanceTypesRequest req;
  req.set_provider("bare");
  // Not UNIMPLEMENTED, which clients read as a server without the RPC.
  absl::Status bare = api.ListInstanceTypes(req).status();
  EXPECT_EQ(bare.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(bare.message(),
            "provider bare cannot list instance types: fake provider lists no "
            "instance types");
}

TEST_F(ProviderApiTest, BadRequestsAreAnsweredWithoutAskingAnyone) {
  EXPECT_EQ(Types("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status missing = Types("nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.message(),
            "provider nope not found (configured: broken, idle, lam, sim, "
            "slow)");
  absl::Status idle = Types("idle").status();
  EXPECT_EQ(idle.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(idle.message(),
            "provider idle is unavailable: credentials_file: no such file");
  EXPECT_EQ(api_->calls_running(), 0);
}

TEST_F(ProviderApiTest, AHungProviderIsDeadlineExceededAfterTheTimeout) {
  ListInstanceTypesRequest req;
  req.set_provider("slow");
  Answer answer;
  // Returns at once: the provider runs on a thread of its own.
  api_->ListInstanceTypes(req, answer.Callback());
  EXPECT_EQ(api_->calls_running(), 1);
  clock_.Advance(absl::Seconds(24));
  EXPECT_FALSE(answer.ready());
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<ListInstanceTypesResponse> r = answer.Wait();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().message(),
            "provider slow: no answer within 25s (ListInstanceTypes)");
  EXPECT_NE(slow_->thread(), std::this_thread::get_id());
  // The abandoned call's late answer is dropped: `done` ran once.
  slow_->Release();
  api_->AwaitNoCallsRunning();
  EXPECT_EQ(answer.count(), 1);
}

TEST_F(ProviderApiTest, StopAnswersWaitingCallsAndRefusesNewOnes) {
  ListInstanceTypesRequest req;
  req.set_provider("slow");
  Answer answer;
  api_->ListInstanceTypes(req, answer.Callback());
  api_->Stop();
  EXPECT_EQ(answer.Wait().status().code(), absl::StatusCode::kUnavailable);
  req.set_provider("sim");
  EXPECT_EQ(api_->ListInstanceTypes(req).status().code(),
            absl::StatusCode::kUnavailable);
  clock_.Advance(absl::Minutes(1));  // the deadline timer was cancelled
  EXPECT_EQ(answer.count(), 1);
}

// A capacity error backs the pool's provider/region off; ListProviders
// shows it, with the pool whose selector holds it.
TEST(ProviderApiBackoffTest, ListsTheBackoffsOfItsPoolsSelectors) {
  FakeClock clock;
  MemoryStore store;
  PolicyEvaluator evaluator;
  FleetService fleet(store, clock, evaluator, NullLogger(), FleetOptions{});
  ASSERT_TRUE(fleet.Start().ok());
  FakeProviderOptions fo;
  fo.name = "sim";
  auto fake = std::make_unique<FakeProvider>(clock, fo);
  fake->FailNextProvision(absl::ResourceExhaustedError("no h100 here"));
  ProviderRegistry registry;
  ASSERT_TRUE(registry.Add(std::move(fake)).ok());
  Config config;
  config.providers["sim"] = Conf("sim", ProviderType::kFake);
  PoolConfig pool;
  pool.name = "train";
  pool.providers = {PoolProvider{.name = "sim"}};
  pool.instance_type = "h100-8x";
  pool.region = "us-east-1";
  pool.min_nodes = 1;
  pool.max_nodes = 2;
  pool.labels = {{"pool", "train"}};
  config.pools["train"] = pool;
  NoopNotifier notifier;
  PoolManager pools(fleet, registry, notifier, clock, config);
  ASSERT_TRUE(pools.Init().ok());
  pools.Tick();
  ProviderApi api(config, &registry, &pools, clock);
  absl::StatusOr<ListProvidersResponse> r = api.ListProviders();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->providers_size(), 1);
  ASSERT_EQ(r->providers(0).backoffs_size(), 1) << r->DebugString();
  const ProviderBackoff& b = r->providers(0).backoffs(0);
  EXPECT_EQ(b.pool(), "train");
  EXPECT_EQ(b.region(), "us-east-1");
  EXPECT_EQ(b.zone(), "");
  EXPECT_EQ(b.remaining_seconds(), 30);  // the first back-off
  pools.Stop(absl::ZeroDuration());
  fleet.Stop();
}

// Lambda's fake API through the real Lambda provider: the price in cents,
// the GPUs from the specs and the regions with capacity arrive as the API
// answers them.
TEST(ProviderApiLambdaTest, PricesAndRegionsWithCapacityComeThrough) {
  FakeClock clock;
  FakeLambda fake(clock, "secret_key_abc");
  fake.AddType({"gpu_8x_h100_sxm5",
                "8x H100 (80 GB SXM5)",
                "H100 (80 GB SXM5)",
                2392,
                208,
                1800,
                24780,
                8,
                {"us-east-1", "us-west-1"}});
  fake.AddType({"gpu_1x_a10",
                "1x A10 (24 GB PCIe)",
                "A10 (24 GB PCIe)",
                75,
                30,
                200,
                1400,
                1,
                {}});
  LambdaProviderOptions o;
  o.name = "lam";
  o.endpoint = fake.endpoint();
  o.api_key = "secret_key_abc";
  o.ssh_key_name = "ops";
  ProviderRegistry registry;
  ASSERT_TRUE(
      registry.Add(std::make_unique<LambdaProvider>(clock, std::move(o))).ok());
  Config config;
  config.providers["lam"] = Conf("lam", ProviderType::kLambda);
  ProviderApi api(config, &registry, nullptr, clock);
  ListInstanceTypesRequest req;
  req.set_provider("lam");
  absl::StatusOr<ListInstanceTypesResponse> r = api.ListInstanceTypes(req);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->instance_types_size(), 2);
  const ProviderInstanceType& a10 = r->instance_types(0);
  EXPECT_EQ(a10.name(), "gpu_1x_a10");
  EXPECT_DOUBLE_EQ(a10.price_per_hour(), 0.75);
  EXPECT_EQ(a10.gpu_count(), 1);
  EXPECT_EQ(a10.gpu_model(), "A10");
  EXPECT_TRUE(a10.regions().empty());
  EXPECT_FALSE(a10.available());  // no region has capacity
  EXPECT_THAT(a10.abstract_types(), ElementsAre("a10-1x"));
  const ProviderInstanceType& h100 = r->instance_types(1);
  EXPECT_EQ(h100.name(), "gpu_8x_h100_sxm5");
  EXPECT_DOUBLE_EQ(h100.price_per_hour(), 23.92);
  EXPECT_EQ(h100.gpu_count(), 8);
  EXPECT_EQ(h100.gpu_model(), "H100");
  EXPECT_EQ(h100.vcpus(), 208);
  EXPECT_EQ(h100.memory_gb(), 1800);
  EXPECT_THAT(h100.regions(), ElementsAre("us-east-1", "us-west-1"));
  EXPECT_TRUE(h100.available());
  EXPECT_THAT(h100.abstract_types(), ElementsAre("h100-8x"));

  // Lambda's own error, with its code and message, and no key. A refused
  // key is the control plane's problem, not the caller's: not
  // UNAUTHENTICATED, which clients would read as their own token refused.
  fake.ForceNext("types", {401, "", "global/invalid-api-key",
                           "API key was invalid, expired, or deleted.", ""});
  r = api.ListInstanceTypes(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("provider lam: the cloud refused the control plane's "
                        "credentials (UNAUTHENTICATED): "));
  EXPECT_THAT(r.status().message(), HasSubstr("global/invalid-api-key"));
  EXPECT_THAT(r.status().message(), HasSubstr("API key was invalid"));
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("secret_key")));
}

}  // namespace
}  // namespace navarch
