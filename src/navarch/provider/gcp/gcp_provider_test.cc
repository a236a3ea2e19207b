// The provider against the fake Compute Engine (which real gcloud checks in
// fake_gce_gcloud_test.cc). Every endpoint is the fake on 127.0.0.1.
#include "navarch/provider/gcp/gcp_provider.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/provider/gcp/testing/fake_gce.h"

namespace navarch {
namespace {

using testing::FakeGce;
using testing::FakeGceOptions;
using testing::GceFailure;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string& TestPem() {
  static const std::string pem = testing::GenerateRsaKeyPem();
  return pem;
}

class GcpProviderTest : public ::testing::Test {
 protected:
  explicit GcpProviderTest(int waits = 2, int page = 500)
      : fake_([&] {
          FakeGceOptions o;
          o.sa_key_pem = TestPem();
          o.waits_before_done = waits;
          o.max_page_size = page;
          return o;
        }()) {}

  std::unique_ptr<GcpProvider> Make(bool with_key = true) {
    GcpProviderOptions o;
    o.project = "test-project";
    o.zone = "us-central1-a";
    o.endpoint = fake_.endpoint();
    o.metadata_host = fake_.metadata_host();
    if (with_key) {
      o.key = GcpServiceAccountKey{fake_.options().sa_email, TestPem(), "k1",
                                   fake_.token_uri(), "test-project"};
    }
    o.spec.image = "projects/test-project/global/images/navarch";
    o.spec.network = "global/networks/default";
    o.http.sleep = [this](absl::Duration d) {
      slept_.push_back(d);
      clock_.Advance(d);
    };
    return std::make_unique<GcpProvider>(clock_, o);
  }

  ProvisionRequest Request(const std::string& token,
                           const std::string& type = "a3-highgpu-8g") {
    ProvisionRequest r;
    r.idempotency_token = token;
    r.name = "train-1";
    r.instance_type = type;
    r.labels = {{"pool", "train"},
                {"navarch-cluster", "c1"},
                {"navarch-managed", "true"},
                {"navarch-token", token}};
    r.user_data = "#!/bin/sh\nexec node-agent\n";
    return r;
  }

  FakeClock clock_;
  FakeGce fake_;
  std::vector<absl::Duration> slept_;
};

TEST_F(GcpProviderTest, ProvisionWaitsForTheOperationAndReturnsTheInstance) {
  auto p = Make();
  absl::StatusOr<ProviderInstance> i = p->Provision(Request("C1-train-n-1"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->state, ProviderInstanceState::kRunning);  // op waited twice
  EXPECT_EQ(i->zone, "us-central1-a");
  EXPECT_EQ(i->region, "us-central1");
  EXPECT_EQ(i->gpu_count, 8);
  EXPECT_EQ(i->labels.at("navarch-token"), "C1-train-n-1");
  EXPECT_FALSE(i->ip_address.empty());
  ASSERT_EQ(fake_.insert_bodies().size(), 1u);
  const nlohmann::json body = fake_.insert_bodies()[0];
  EXPECT_EQ(body["scheduling"]["onHostMaintenance"], "TERMINATE");
  EXPECT_EQ(body["metadata"]["items"][1]["key"], "startup-script");
  EXPECT_FALSE(body.contains("guestAccelerators"));
}

TEST_F(GcpProviderTest, TheSameTokenNeverBuysASecondMachine) {
  auto p = Make();
  absl::StatusOr<ProviderInstance> a = p->Provision(Request("tok-1"));
  ASSERT_TRUE(a.ok()) << a.status();
  // A retry (a new leader, a lost answer): same requestId and same name.
  auto again = Make();
  absl::StatusOr<ProviderInstance> b = again->Provision(Request("tok-1"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(fake_.instances().size(), 1u);
  absl::StatusOr<ProviderInstance> c = p->Provision(Request("tok-2"));
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->id, a->id);
  EXPECT_EQ(fake_.instances().size(), 2u);
}

TEST_F(GcpProviderTest, N1GetsGuestAcceleratorsAndSpot) {
  GcpProviderOptions o;
  auto p = Make();
  // A provider configured for N1 with T4s, on Spot.
  o.project = "test-project";
  o.endpoint = fake_.endpoint();
  o.key = GcpServiceAccountKey{fake_.options().sa_email, TestPem(), "k1",
                               fake_.token_uri(), ""};
  o.spec.image = "projects/test-project/global/images/navarch";
  o.spec.network = "global/networks/default";
  o.spec.accelerator_type = "nvidia-tesla-t4";
  o.spec.accelerator_count = 4;
  o.spec.spot = true;
  GcpProvider n1(clock_, o);
  absl::StatusOr<ProviderInstance> i =
      n1.Provision(Request("tok-n1", "n1-standard-8"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->gpu_count, 4);
  EXPECT_EQ(i->gpu_type, "nvidia-tesla-t4");
  EXPECT_EQ(fake_.insert_bodies()[0]["scheduling"]["provisioningModel"],
            "SPOT");
}

TEST_F(GcpProviderTest, ZoneExhaustedIsCapacityForTheZone) {
  auto p = Make();
  fake_.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "The zone 'projects/test-project/zones/us-central1-b' "
                        "does not have enough resources available."});
  ProvisionRequest r = Request("tok-z");
  r.zone = "us-central1-b";
  absl::Status s = p->Provision(r).status();
  EXPECT_EQ(ClassifyProviderError(s), ProviderErrorClass::kCapacity);
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(s);
  ASSERT_TRUE(info) << s;
  EXPECT_EQ(info->scope, CloudErrorScope::kZone);
  EXPECT_EQ(info->zone, "us-central1-b");
  EXPECT_EQ(info->cloud_code, "ZONE_RESOURCE_POOL_EXHAUSTED");
  EXPECT_TRUE(fake_.instances().empty());
}

// The pool's selector moves a full zone's request to the next zone with the
// same token: another zone is another request (its own requestId), not the
// first zone's failed operation answered again.
TEST_F(GcpProviderTest, TheNextZoneIsANewRequest) {
  auto p = Make();
  fake_.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "The zone does not have enough resources."});
  ProvisionRequest r = Request("tok-zones");
  r.zone = "us-central1-a";
  ASSERT_FALSE(p->Provision(r).ok());
  r.zone = "us-central1-b";
  absl::StatusOr<ProviderInstance> i = p->Provision(r);
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->zone, "us-central1-b");
  EXPECT_EQ(fake_.instances().size(), 1u);
  // A retry in that zone is still the same request: no second machine.
  absl::StatusOr<ProviderInstance> again = Make()->Provision(r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, i->id);
  EXPECT_EQ(fake_.instances().size(), 1u);
}

// An operation's error message is the cloud's text: one that echoes the
// access token must not carry it into our errors (and so events and logs).
TEST_F(GcpProviderTest, AnOperationErrorNeverCarriesTheToken) {
  auto p = Make();
  // The fake numbers its tokens: the first is known before it is issued.
  fake_.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "No resources (caller ya29.fake-1-sa)"});
  absl::Status s = p->Provision(Request("tok-echo")).status();
  ASSERT_EQ(fake_.issued_tokens(), std::vector<std::string>{"ya29.fake-1-sa"});
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("ya29.fake-1-sa")));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[redacted]"));
  // Still the zone's capacity error, with GCE's code.
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(s);
  ASSERT_TRUE(info) << s;
  EXPECT_EQ(info->cloud_code, "ZONE_RESOURCE_POOL_EXHAUSTED");
  EXPECT_EQ(info->scope, CloudErrorScope::kZone);
}

TEST_F(GcpProviderTest, QuotaIsRegionOrWholeCloud) {
  auto p = Make();
  fake_.FailNextInsert({0, "", "QUOTA_EXCEEDED",
                        "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in "
                        "region us-central1."});
  std::optional<CloudErrorInfo> info =
      CloudErrorInfoOf(p->Provision(Request("tok-q1")).status());
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->quota);
  EXPECT_EQ(info->scope, CloudErrorScope::kRegion);
  fake_.FailNextInsert({0, "", "QUOTA_EXCEEDED",
                        "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 8.0 "
                        "globally."});
  info = CloudErrorInfoOf(p->Provision(Request("tok-q2")).status());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->scope, CloudErrorScope::kProvider);
}

TEST_F(GcpProviderTest, HttpErrorsAreInvalidOrRetried) {
  auto p = Make();
  fake_.FailNextInsert({403, "forbidden", "",
                        "Required 'compute.instances.create' permission for "
                        "'projects/test-project/zones/us-central1-a/"
                        "instances/x'"});
  absl::Status s = p->Provision(Request("tok-h1")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyProviderError(s), ProviderErrorClass::kInvalid);
  EXPECT_THAT(std::string(s.message()), HasSubstr("compute.instances.create"));
  // A 503 is retried with the same requestId, and then succeeds.
  fake_.FailNextInsert({503, "backendError", "", "try again"});
  const int before = fake_.insert_calls();
  absl::StatusOr<ProviderInstance> i = p->Provision(Request("tok-h2"));
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(fake_.insert_calls() - before, 2);
  EXPECT_EQ(fake_.instances().size(), 1u);
  // No token, JWT or key in any message.
  for (const std::string& t : fake_.issued_tokens()) {
    EXPECT_THAT(s.ToString(), Not(HasSubstr(t)));
  }
  EXPECT_THAT(s.ToString(), Not(HasSubstr("PRIVATE")));
}

TEST_F(GcpProviderTest, AnInvalidMachineTypeIsInvalid) {
  auto p = Make();
  absl::Status s = p->Provision(Request("tok-i", "z9-nothing")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("machineType"));
}

TEST_F(GcpProviderTest, TerminateWaitsAndForgetsAndUnknownIsNotFound) {
  auto p = Make();
  absl::StatusOr<ProviderInstance> i = p->Provision(Request("tok-t"));
  ASSERT_TRUE(i.ok());
  // Another provider object (after a restart) finds the zone by listing.
  auto fresh = Make();
  EXPECT_TRUE(fresh->Terminate(i->id).ok());
  EXPECT_TRUE(fake_.instances().empty());
  EXPECT_EQ(p->Terminate("never-had").code(), absl::StatusCode::kNotFound);
  // Already gone (we knew it): OK.
  EXPECT_TRUE(p->Terminate(i->id).ok());
}

TEST_F(GcpProviderTest, ListShowsOnlyManagedInstancesOverPages) {
  auto p = Make();
  for (int n = 0; n < 3; ++n) {
    ASSERT_TRUE(p->Provision(Request(absl::StrCat("tok-l", n))).ok());
  }
  fake_.AddInstance("europe-west4-a", "someone-elses");
  fake_.AddInstance("europe-west4-a", "stopped", {{"navarch-managed", "true"}},
                    "TERMINATED");
  absl::StatusOr<std::vector<ProviderInstance>> list = p->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 3u);
  for (const ProviderInstance& i : *list) {
    EXPECT_EQ(i.labels.at("navarch-cluster"), "c1");
  }
}

class GcpSlowOperationTest : public GcpProviderTest {
 protected:
  GcpSlowOperationTest() : GcpProviderTest(1000000) {}
};

TEST_F(GcpSlowOperationTest, AnOperationNeverDoneEndsAtTheDeadline) {
  auto p = Make();
  slept_.clear();
  absl::Status s = p->Provision(Request("tok-slow")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(ClassifyProviderError(s), ProviderErrorClass::kTransient);
  // One pause of a second after each early answer, on the injected clock.
  EXPECT_EQ(slept_.size(), 600u);
}

class GcpPagingTest : public GcpProviderTest {
 protected:
  GcpPagingTest() : GcpProviderTest(0, 2) {}
};

TEST_F(GcpPagingTest, ListFollowsNextPageToken) {
  auto p = Make();
  for (int n = 0; n < 5; ++n) {
    fake_.AddInstance("us-central1-b", absl::StrCat("m-", n),
                      {{"navarch-managed", "true"}});
  }
  absl::StatusOr<std::vector<ProviderInstance>> list = p->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 5u);
}

TEST_F(GcpProviderTest, InstanceTypesComeWithTheirGpus) {
  auto p = Make();
  absl::StatusOr<std::vector<InstanceTypeInfo>> types = p->ListInstanceTypes();
  ASSERT_TRUE(types.ok()) << types.status();
  bool a3 = false;
  for (const InstanceTypeInfo& t : *types) {
    if (t.name != "a3-highgpu-8g") continue;
    a3 = true;
    EXPECT_EQ(t.gpu_count, 8);
    EXPECT_EQ(t.gpu_type, "nvidia-h100-80gb");
    EXPECT_EQ(t.vcpus, 208);
    EXPECT_THAT(t.regions,
                ::testing::UnorderedElementsAre("us-central1", "europe-west4"));
  }
  EXPECT_TRUE(a3);
}

TEST_F(GcpProviderTest, OnGceTheMetadataServerToken) {
  auto p = Make(/*with_key=*/false);
  ASSERT_TRUE(p->List().ok());
  EXPECT_EQ(fake_.metadata_calls(), 1);
  EXPECT_EQ(fake_.token_calls(), 0);
}

}  // namespace
}  // namespace navarch
