#include "navarch/provider/fake/fake_provider.h"

#include <thread>

#include "gtest/gtest.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {
namespace {

ProvisionRequest Request(const std::string& token) {
  ProvisionRequest r;
  r.idempotency_token = token;
  r.instance_type = "h100-8x";
  r.region = "us-east";
  r.labels = {{"pool", "train"}};
  return r;
}

TEST(FakeProviderTest, BecomesRunningAfterDelay) {
  FakeClock clock;
  FakeProviderOptions options;
  options.provisioning_delay = absl::Seconds(30);
  FakeProvider provider(clock, options);
  int running = 0;
  provider.set_on_running([&](const ProviderInstance&) { ++running; });
  absl::StatusOr<ProviderInstance> i = provider.Provision(Request("t1"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->state, ProviderInstanceState::kProvisioning);
  EXPECT_EQ(i->labels.at("pool"), "train");
  clock.Advance(absl::Seconds(29));
  EXPECT_EQ(running, 0);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(running, 1);
  auto list = provider.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, ProviderInstanceState::kRunning);
}

TEST(FakeProviderTest, IdempotencyTokenReturnsSameInstance) {
  FakeClock clock;
  FakeProvider provider(clock, {});
  auto a = provider.Provision(Request("same"));
  auto b = provider.Provision(Request("same"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(provider.live_count(), 1);
  EXPECT_EQ(provider.Provision(Request("")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FakeProviderTest, CapacityCapIsResourceExhausted) {
  FakeClock clock;
  FakeProviderOptions options;
  options.capacity = 2;
  FakeProvider provider(clock, options);
  auto a = provider.Provision(Request("a"));
  ASSERT_TRUE(provider.Provision(Request("b")).ok());
  EXPECT_EQ(provider.Provision(Request("c")).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Terminating frees capacity.
  ASSERT_TRUE(provider.Terminate(a->id).ok());
  EXPECT_TRUE(provider.Provision(Request("c")).ok());
}

TEST(FakeProviderTest, TerminateIsIdempotentAndUnknownIsNotFound) {
  FakeClock clock;
  FakeProviderOptions options;
  options.provisioning_delay = absl::Seconds(10);
  FakeProvider provider(clock, options);
  int running = 0, terminated = 0;
  provider.set_on_running([&](const ProviderInstance&) { ++running; });
  provider.set_on_terminated([&](const ProviderInstance&) { ++terminated; });
  auto a = provider.Provision(Request("a"));
  ASSERT_TRUE(provider.Terminate(a->id).ok());
  ASSERT_TRUE(provider.Terminate(a->id).ok());
  EXPECT_EQ(terminated, 1);
  clock.Advance(absl::Seconds(20));
  EXPECT_EQ(running, 0);  // Terminated while provisioning: never runs.
  EXPECT_TRUE(provider.List()->empty());
  EXPECT_EQ(provider.Terminate("fake-99").code(), absl::StatusCode::kNotFound);
}

TEST(FakeProviderTest, FailureProbabilityIsSeeded) {
  auto run = [](uint64_t seed) {
    FakeClock clock;
    FakeProviderOptions options;
    options.failure_probability = 0.5;
    options.seed = seed;
    FakeProvider provider(clock, options);
    std::string pattern;
    for (int i = 0; i < 32; ++i) {
      auto r = provider.Provision(Request(std::to_string(i)));
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
      }
      pattern += r.ok() ? '1' : '0';
    }
    return pattern;
  };
  const std::string a = run(7);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a.find('0'), std::string::npos);
  EXPECT_NE(a.find('1'), std::string::npos);
}

TEST(FakeProviderTest, ScriptedFailuresComeFirst) {
  FakeClock clock;
  FakeProvider provider(clock, {});
  provider.FailNextProvision(absl::ResourceExhaustedError("no h100"));
  EXPECT_EQ(provider.Provision(Request("a")).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(provider.Provision(Request("a")).ok());
  EXPECT_EQ(provider.provision_calls(), 2);
  EXPECT_EQ(provider.ListInstanceTypes().status().code(),
            absl::StatusCode::kUnimplemented);
}

ProvisionRequest In(const std::string& token, const std::string& region,
                    const std::string& zone = "") {
  ProvisionRequest r = Request(token);
  r.region = region;
  r.zone = zone;
  return r;
}

// The scope, cloud code and quota flag of a CloudError; "ok" for OK.
std::string Describe(const absl::StatusOr<ProviderInstance>& r) {
  if (r.ok()) return "ok";
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(r.status());
  if (!info) return absl::StrCat("plain ", r.status().ToString());
  return absl::StrCat(absl::StatusCodeToString(r.status().code()), " ",
                      CloudErrorScopeName(info->scope), " ", info->cloud_code,
                      info->quota ? " quota" : "", " ", info->region, "/",
                      info->zone);
}

TEST(FakeProviderTest, ZoneCapacityRunsOutAndComesBack) {
  FakeClock clock;
  FakeProviderOptions options;
  options.name = "gcp";
  options.regions["us-central1"].zones = {{"us-central1-a", 1}};
  FakeProvider provider(clock, options);
  auto a = provider.Provision(In("a", "us-central1", "us-central1-a"));
  ASSERT_TRUE(a.ok()) << a.status();
  auto full = provider.Provision(In("b", "us-central1", "us-central1-a"));
  EXPECT_EQ(Describe(full),
            "RESOURCE_EXHAUSTED zone ZONE_RESOURCE_POOL_EXHAUSTED "
            "us-central1/us-central1-a");
  EXPECT_EQ(full.status().message(),
            "gcp us-central1/us-central1-a: ZONE_RESOURCE_POOL_EXHAUSTED: no "
            "capacity in the zone (1 of 1 in use)");
  // Another zone of the region has no cap.
  EXPECT_EQ(Describe(provider.Provision(In("c", "us-central1", "b"))), "ok");
  // A terminated instance gives its place back; so does a raised cap.
  ASSERT_TRUE(provider.Terminate(a->id).ok());
  EXPECT_EQ(
      Describe(provider.Provision(In("d", "us-central1", "us-central1-a"))),
      "ok");
  provider.SetZoneCapacity("us-central1", "us-central1-a", 2);
  EXPECT_EQ(
      Describe(provider.Provision(In("e", "us-central1", "us-central1-a"))),
      "ok");
  provider.SetZoneCapacity("us-central1", "us-central1-a", 0);
  EXPECT_EQ(
      Describe(provider.Provision(In("f", "us-central1", "us-central1-a"))),
      "RESOURCE_EXHAUSTED zone ZONE_RESOURCE_POOL_EXHAUSTED "
      "us-central1/us-central1-a");
  EXPECT_EQ(provider.stats().capacity_errors, 2);
  EXPECT_EQ(provider.stats().provisioned, 4);
}

TEST(FakeProviderTest, RegionCapacityAndQuotasCarryTheirScope) {
  FakeClock clock;
  FakeProviderOptions options;
  options.name = "aws";
  options.quota = 3;
  options.regions["us-east-1"].capacity = 1;
  options.regions["us-west-2"].quota = 1;
  FakeProvider provider(clock, options);
  EXPECT_EQ(Describe(provider.Provision(In("a", "us-east-1"))), "ok");
  EXPECT_EQ(Describe(provider.Provision(In("b", "us-east-1"))),
            "RESOURCE_EXHAUSTED region InsufficientInstanceCapacity "
            "us-east-1/");
  EXPECT_EQ(Describe(provider.Provision(In("c", "us-west-2"))), "ok");
  EXPECT_EQ(Describe(provider.Provision(In("d", "us-west-2"))),
            "RESOURCE_EXHAUSTED region QUOTA_EXCEEDED quota us-west-2/");
  EXPECT_EQ(Describe(provider.Provision(In("e", "eu-west-1"))), "ok");
  auto over = provider.Provision(In("f", "eu-west-1"));
  EXPECT_EQ(Describe(over),
            "RESOURCE_EXHAUSTED provider QUOTA_EXCEEDED quota /");
  EXPECT_EQ(over.status().message(),
            "aws: QUOTA_EXCEEDED: instance quota of 3 reached (3 in use)");
  EXPECT_EQ(ClassifyProviderError(over.status()),
            ProviderErrorClass::kCapacity);
  // Lifted at run time.
  provider.SetQuota("", -1);
  EXPECT_EQ(Describe(provider.Provision(In("g", "eu-west-1"))), "ok");
  provider.SetRegionCapacity("us-east-1", -1);
  EXPECT_EQ(Describe(provider.Provision(In("h", "us-east-1"))), "ok");
  const FakeProviderStats stats = provider.stats();
  EXPECT_EQ(stats.calls, 8);
  EXPECT_EQ(stats.provisioned, 5);
  EXPECT_EQ(stats.capacity_errors, 1);
  EXPECT_EQ(stats.quota_errors, 2);
  EXPECT_EQ(stats.other_errors, 0);
}

TEST(FakeProviderTest, TheOldProviderWideCapacityIsUnchanged) {
  FakeClock clock;
  FakeProviderOptions options;
  options.capacity = 1;
  FakeProvider provider(clock, options);
  ASSERT_TRUE(provider.Provision(Request("a")).ok());
  auto full = provider.Provision(Request("b"));
  EXPECT_EQ(full.status(), absl::ResourceExhaustedError(
                               "fake: no capacity (1 of 1 instances in use)"));
  EXPECT_FALSE(CloudErrorInfoOf(full.status()).has_value());
}

TEST(FakeProviderTest, LatencyBlocksOnTheClockByDefault) {
  FakeClock clock;
  FakeProviderOptions options;
  options.call_latency = absl::Seconds(5);
  FakeProvider provider(clock, options);
  const absl::Time start = clock.Now();
  absl::StatusOr<ProviderInstance> result;
  std::thread call([&] { result = provider.Provision(Request("a")); });
  // The call waits on a timer of the clock until the clock passes it.
  while (clock.PendingTimers() == 0) absl::SleepFor(absl::Milliseconds(1));
  clock.Advance(absl::Seconds(4));
  EXPECT_EQ(provider.live_count(), 0);
  clock.Advance(absl::Seconds(1));
  call.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->created_at, start + absl::Seconds(5));
  EXPECT_EQ(result->state, ProviderInstanceState::kRunning);
  EXPECT_EQ(provider.stats().latency, absl::Seconds(5));
}

TEST(FakeProviderTest, LatencyAHookDoesNotSpendDelaysTheInstance) {
  FakeClock clock;
  FakeProviderOptions options;
  options.call_latency = absl::Seconds(5);
  options.provisioning_delay = absl::Seconds(10);
  std::vector<absl::Duration> waited;
  options.wait = [&](absl::Duration d) {
    waited.push_back(d);
    clock.Advance(absl::Seconds(2));  // 2 s pass, 3 s are owed
  };
  FakeProvider provider(clock, options);
  int running = 0;
  provider.set_on_running([&](const ProviderInstance&) { ++running; });
  const absl::Time start = clock.Now();
  auto i = provider.Provision(Request("a"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(waited, std::vector<absl::Duration>{absl::Seconds(5)});
  EXPECT_EQ(i->created_at, start + absl::Seconds(5));
  clock.Advance(absl::Seconds(12));  // 14 s after the call
  EXPECT_EQ(running, 0);
  clock.Advance(absl::Seconds(1));  // 5 s answer + 10 s boot
  EXPECT_EQ(running, 1);
}

}  // namespace
}  // namespace navarch
