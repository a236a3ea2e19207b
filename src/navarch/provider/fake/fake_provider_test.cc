#include "navarch/provider/fake/fake_provider.h"

#include "gtest/gtest.h"

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

}  // namespace
}  // namespace navarch
