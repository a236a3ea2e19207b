#include "navarch/pool/selector.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/fake/fake_provider.h"

namespace navarch {
namespace {

class SelectorTest : public ::testing::Test {
 protected:
  FakeProvider& Add(const std::string& name, int priority,
                    std::vector<InstanceTypeInfo> types = {}) {
    FakeProviderOptions o;
    o.name = name;
    o.instance_types = std::move(types);
    providers_.push_back(std::make_unique<FakeProvider>(clock_, o));
    SelectorCandidate c;
    c.provider = providers_.back().get();
    c.priority = priority;
    candidates_.push_back(c);
    return *providers_.back();
  }
  ProviderSelector Make(SelectionStrategy strategy) {
    SelectorOptions o;
    o.strategy = strategy;
    o.region = "us-east";
    o.instance_type = "h100-8x";
    return ProviderSelector(clock_, o, candidates_);
  }
  ProvisionRequest Req() {
    ProvisionRequest r;
    r.idempotency_token = absl::StrCat("t", token_++);
    return r;
  }
  static std::vector<std::string> Names(const std::vector<SelectorAttempt>& p) {
    std::vector<std::string> n;
    for (const auto& a : p) n.push_back(a.provider->name());
    return n;
  }

  FakeClock clock_;
  std::vector<std::unique_ptr<FakeProvider>> providers_;
  std::vector<SelectorCandidate> candidates_;
  int token_ = 0;
};

using ::testing::ElementsAre;

TEST_F(SelectorTest, PriorityIsStable) {
  Add("b", 1);
  Add("a", 0);
  Add("c", 1);
  auto s = Make(SelectionStrategy::kPriority);
  EXPECT_THAT(Names(s.Plan()), ElementsAre("a", "b", "c"));
}

TEST_F(SelectorTest, CapacityErrorFailsOverAndBacksOffExponentially) {
  FakeProvider& a = Add("a", 0);
  Add("b", 1);
  auto s = Make(SelectionStrategy::kPriority);
  a.FailNextProvision(absl::ResourceExhaustedError("no h100"));
  auto i = s.Provision(Req());
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->provider, "b");
  EXPECT_EQ(s.BackoffLeft("a", "us-east"), absl::Seconds(30));
  EXPECT_THAT(Names(s.Plan()), ElementsAre("b"));
  clock_.Advance(absl::Seconds(29));
  EXPECT_THAT(Names(s.Plan()), ElementsAre("b"));
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Names(s.Plan()), ElementsAre("a", "b"));
  // Second consecutive capacity error: 60 s; growth stops at 10 min.
  a.FailNextProvision(absl::ResourceExhaustedError("no h100"));
  ASSERT_TRUE(s.Provision(Req()).ok());
  EXPECT_EQ(s.BackoffLeft("a", "us-east"), absl::Seconds(60));
  for (int k = 0; k < 10; ++k) {
    clock_.Advance(absl::Minutes(10));
    a.FailNextProvision(absl::ResourceExhaustedError("no h100"));
    ASSERT_TRUE(s.Provision(Req()).ok());
  }
  EXPECT_EQ(s.BackoffLeft("a", "us-east"), absl::Minutes(10));
  // A success clears it.
  clock_.Advance(absl::Minutes(10));
  auto ok = s.Provision(Req());
  EXPECT_EQ(ok->provider, "a");
  EXPECT_EQ(s.BackoffLeft("a", "us-east"), absl::ZeroDuration());
}

TEST_F(SelectorTest, NoLockoutAfterAllFail) {
  FakeProvider& a = Add("a", 0);
  auto s = Make(SelectionStrategy::kPriority);
  a.FailNextProvision(absl::ResourceExhaustedError("no h100"));
  auto failed = s.Provision(Req());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted);
  auto backed_off = s.Provision(Req());
  EXPECT_EQ(backed_off.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(backed_off.status().message().find("next retry in 30s"),
            absl::string_view::npos)
      << backed_off.status();
  clock_.Advance(absl::Seconds(30));
  EXPECT_TRUE(s.Provision(Req()).ok());  // upstream: locked out forever
}

TEST_F(SelectorTest, TransientDoesNotBackOffInvalidBacksOffMax) {
  FakeProvider& a = Add("a", 0);
  FakeProvider& b = Add("b", 1);
  auto s = Make(SelectionStrategy::kPriority);
  a.FailNextProvision(absl::UnavailableError("503"));
  b.FailNextProvision(absl::InvalidArgumentError("bad type"));
  auto r = s.Provision(Req());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.BackoffLeft("a", "us-east"), absl::ZeroDuration());
  EXPECT_EQ(s.BackoffLeft("b", "us-east"), absl::Minutes(10));
}

TEST_F(SelectorTest, RegionsAreTriedAndBackedOffSeparately) {
  FakeProvider& a = Add("a", 0);
  candidates_[0].regions = {"r1", "r2"};
  auto s = Make(SelectionStrategy::kPriority);
  a.FailNextProvision(absl::ResourceExhaustedError("r1 full"));
  auto r = s.Provision(Req());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->region, "r2");
  EXPECT_GT(s.BackoffLeft("a", "r1"), absl::ZeroDuration());
  EXPECT_EQ(s.BackoffLeft("a", "r2"), absl::ZeroDuration());
}

TEST_F(SelectorTest, RoundRobinByWeight) {
  Add("a", 0);
  Add("b", 0);
  candidates_[0].weight = 2;
  auto s = Make(SelectionStrategy::kRoundRobin);
  std::vector<std::string> firsts;
  for (int i = 0; i < 6; ++i) firsts.push_back(s.Plan()[0].provider->name());
  EXPECT_THAT(firsts, ElementsAre("a", "a", "b", "a", "a", "b"));
}

TEST_F(SelectorTest, CostPutsUnknownPricesLast) {
  Add("pricey", 0, {{.name = "h100-8x", .price_per_hour = 30}});
  Add("unknown", 0);
  Add("cheap", 5, {{.name = "h100-8x", .price_per_hour = 20}});
  auto s = Make(SelectionStrategy::kCost);
  EXPECT_THAT(Names(s.Plan()), ElementsAre("cheap", "pricey", "unknown"));
}

TEST_F(SelectorTest, AvailabilitySkipsProvidersWithoutTheType) {
  Add("none", 0, {{.name = "h100-8x", .available = false}});
  Add("unlisted", 1);  // cannot list: assumed available
  Add("yes", 2, {{.name = "h100-8x", .available = true}});
  auto s = Make(SelectionStrategy::kAvailability);
  EXPECT_THAT(Names(s.Plan()), ElementsAre("unlisted", "yes"));
}

TEST_F(SelectorTest, AbstractTypeResolvedPerProviderTypeAndZonesSpread) {
  Add("gcp", 0);
  candidates_[0].type = ProviderType::kGcp;
  SelectorOptions o;
  o.instance_type = "h100-8x";
  o.zones = {"z1", "z2"};
  ProviderSelector s(clock_, o, candidates_);
  auto a = s.Provision(Req());
  auto b = s.Provision(Req());
  EXPECT_EQ(a->instance_type, "a3-highgpu-8g");
  EXPECT_EQ(a->zone, "z1");
  EXPECT_EQ(b->zone, "z2");
}

// What a cloud says a capacity error reaches decides what backs off.
absl::Status Full(CloudErrorScope scope, const std::string& zone = "") {
  CloudErrorInfo info;
  info.scope = scope;
  info.cloud_code = "FULL";
  info.zone = zone;
  return CloudError(absl::StatusCode::kResourceExhausted, "a", info, "full");
}

TEST_F(SelectorTest, AFullZoneMovesTheRequestToTheRegionsNextZone) {
  FakeProvider& a = Add("a", 0);
  Add("b", 1);
  SelectorOptions o;
  o.region = "r1";
  o.instance_type = "h100-8x";
  o.zones = {"z1", "z2", "z3"};
  ProviderSelector s(clock_, o, candidates_);
  a.FailNextProvision(Full(CloudErrorScope::kZone, "z1"));
  auto r = s.Provision(Req());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->provider, "a");  // same provider and region, next zone
  EXPECT_EQ(r->zone, "z2");
  EXPECT_GT(s.BackoffLeft("a", "r1", "z1"), absl::ZeroDuration());
  EXPECT_EQ(s.BackoffLeft("a", "r1"), absl::ZeroDuration());
  // The next request starts at z2 (spreading) and never picks z1 while it
  // is backed off.
  for (int i = 0; i < 4; ++i) {
    auto next = s.Provision(Req());
    ASSERT_TRUE(next.ok());
    EXPECT_NE(next->zone, "z1");
  }
  ASSERT_EQ(s.Backoffs().size(), 1u);
  EXPECT_EQ(s.Backoffs()[0].zone, "z1");
}

TEST_F(SelectorTest, EveryZoneFullFailsOverToTheNextProvider) {
  FakeProvider& a = Add("a", 0);
  Add("b", 1);
  SelectorOptions o;
  o.region = "r1";
  o.instance_type = "h100-8x";
  o.zones = {"z1", "z2"};
  ProviderSelector s(clock_, o, candidates_);
  a.FailNextProvision(Full(CloudErrorScope::kZone, "z1"));
  a.FailNextProvision(Full(CloudErrorScope::kZone, "z2"));
  auto r = s.Provision(Req());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->provider, "b");
}

TEST_F(SelectorTest, EachFailedAttemptIsReportedAndBlockedForSaysWhenToTry) {
  FakeProvider& a = Add("a", 0);
  FakeProvider& b = Add("b", 1);
  SelectorOptions o;
  o.region = "r1";
  o.instance_type = "h100-8x";
  o.zones = {"z1", "z2"};
  ProviderSelector s(clock_, o, candidates_);
  EXPECT_EQ(s.BlockedFor(), absl::ZeroDuration());
  a.FailNextProvision(Full(CloudErrorScope::kZone, "z1"));
  a.FailNextProvision(Full(CloudErrorScope::kZone, "z2"));
  std::vector<FailedAttempt> failed;
  auto r = s.Provision(Req(), &failed);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].provider, "a");
  EXPECT_EQ(failed[0].region, "r1");
  EXPECT_EQ(failed[0].zone, "z1");
  EXPECT_EQ(failed[1].zone, "z2");
  EXPECT_EQ(failed[1].error.code(), absl::StatusCode::kResourceExhausted);
  // Both of a's zones are backed off, b is open: not blocked.
  EXPECT_EQ(s.BlockedFor(), absl::ZeroDuration());
  clock_.Advance(absl::Seconds(10));
  b.FailNextProvision(absl::ResourceExhaustedError("no h100"));
  EXPECT_FALSE(s.Provision(Req()).ok());
  // a's zones open in 20 s, b's region in 30 s.
  EXPECT_EQ(s.BlockedFor(), absl::Seconds(20));
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(s.BlockedFor(), absl::ZeroDuration());
}

TEST_F(SelectorTest, AQuotaForTheWholeCloudBacksOffEveryRegionOfIt) {
  FakeProvider& a = Add("a", 0);
  Add("b", 1);
  candidates_[0].regions = {"r1", "r2"};
  auto s = Make(SelectionStrategy::kPriority);
  a.FailNextProvision(Full(CloudErrorScope::kProvider));
  auto r = s.Provision(Req());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->provider, "b");  // r2 of "a" was not tried
  EXPECT_GT(s.BackoffLeft("a", "r2"), absl::ZeroDuration());
  EXPECT_THAT(Names(s.Plan()), ElementsAre("b"));
  clock_.Advance(absl::Seconds(31));
  EXPECT_THAT(Names(s.Plan()), ElementsAre("a", "a", "b"));
}

// The fake provider's cloud model (as in the simulator's `clouds:`) drives
// the selector end to end: a full region moves the request to the same
// provider's next region, a regional quota too, and a cap that comes back
// brings the region back once its backoff has run out.
TEST_F(SelectorTest, TheFakeCloudsCapsMoveRequestsAcrossRegionsAndBack) {
  FakeProviderOptions fo;
  fo.name = "a";
  fo.regions["r1"].capacity = 1;
  fo.regions["r2"].quota = 1;
  providers_.push_back(std::make_unique<FakeProvider>(clock_, fo));
  FakeProvider& a = *providers_.back();
  candidates_.push_back({.provider = &a, .regions = {"r1", "r2"}});
  Add("b", 1);
  auto s = Make(SelectionStrategy::kPriority);
  std::vector<std::string> where;
  for (int i = 0; i < 3; ++i) {
    auto r = s.Provision(Req());
    ASSERT_TRUE(r.ok()) << r.status();
    where.push_back(absl::StrCat(r->provider, "/", r->region));
  }
  EXPECT_THAT(where, ElementsAre("a/r1", "a/r2", "b/us-east"));
  EXPECT_GT(s.BackoffLeft("a", "r1"), absl::ZeroDuration());
  EXPECT_GT(s.BackoffLeft("a", "r2"), absl::ZeroDuration());
  EXPECT_EQ(a.stats().capacity_errors, 1);
  EXPECT_EQ(a.stats().quota_errors, 1);
  // r1 gets room again; once its backoff is over it is first again.
  a.SetRegionCapacity("r1", 2);
  auto backed_off = s.Provision(Req());
  ASSERT_TRUE(backed_off.ok());
  EXPECT_EQ(backed_off->provider, "b");
  clock_.Advance(absl::Seconds(31));
  auto back = s.Provision(Req());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(absl::StrCat(back->provider, "/", back->region), "a/r1");
}

// Capacity or quota, every place failing: the error names each attempt with
// the cloud's code, so the pool's event says why it could not grow.
TEST_F(SelectorTest, WhenEveryPlaceIsFullTheErrorSaysWhyForEach) {
  FakeProviderOptions fo;
  fo.name = "a";
  fo.quota = 0;
  providers_.push_back(std::make_unique<FakeProvider>(clock_, fo));
  candidates_.push_back({.provider = providers_.back().get()});
  fo.name = "b";
  fo.quota = -1;
  fo.regions["us-east"].capacity = 0;
  providers_.push_back(std::make_unique<FakeProvider>(clock_, fo));
  candidates_.push_back({.provider = providers_.back().get(), .priority = 1});
  auto s = Make(SelectionStrategy::kPriority);
  auto r = s.Provision(Req());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(),
              ::testing::AllOf(
                  ::testing::HasSubstr("a/us-east: a: QUOTA_EXCEEDED"),
                  ::testing::HasSubstr(
                      "b/us-east: b us-east: InsufficientInstanceCapacity")));
}

}  // namespace
}  // namespace navarch
