// The Lambda provider against the fake Lambda API on loopback.
#include "navarch/provider/lambda/lambda_provider.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/config/config_loader.h"
#include "navarch/provider/instance_types.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "secret_lambda-key_0123456789abcdef";

class LambdaProviderTest : public ::testing::Test {
 protected:
  LambdaProviderTest() : fake_(clock_, kKey) {
    fake_.AddType({"gpu_8x_h100_sxm5",
                   "8x H100 (80 GB SXM5)",
                   "H100 (80 GB SXM5)",
                   2392,
                   208,
                   1800,
                   24780,
                   8,
                   {"us-east-1", "us-west-1"}});
    fake_.AddType({"gpu_1x_a10",
                   "1x A10 (24 GB PCIe)",
                   "A10 (24 GB PCIe)",
                   75,
                   30,
                   200,
                   1400,
                   1,
                   {}});
    fake_.AddSshKey("ops");
    provider_ = Make();
  }

  std::unique_ptr<LambdaProvider> Make(std::string key = kKey) {
    LambdaProviderOptions o;
    o.name = "lam";
    o.endpoint = fake_.endpoint() + "/";
    o.api_key = std::move(key);
    o.ssh_key_name = "ops";
    o.http.sleep = [this](absl::Duration d) {
      sleeps_.push_back(d);
      clock_.Advance(d);
    };
    return std::make_unique<LambdaProvider>(clock_, std::move(o));
  }

  static ProvisionRequest Request(const std::string& token,
                                  const std::string& region = "us-east-1") {
    ProvisionRequest r;
    r.idempotency_token = token;
    r.name = "train-" + token;
    r.instance_type = "h100-8x";
    r.region = region;
    r.labels = {{"pool", "train"},
                {"navarch-cluster", "c1"},
                {"navarch-managed", "true"}};
    r.user_data = "#cloud-config\n";
    return r;
  }

  FakeClock clock_;
  FakeLambda fake_;
  std::vector<absl::Duration> sleeps_;
  std::unique_ptr<LambdaProvider> provider_;
};

TEST_F(LambdaProviderTest, ListsTypesWithPriceGpusAndCapacity) {
  absl::StatusOr<std::vector<InstanceTypeInfo>> types =
      provider_->ListInstanceTypes();
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 2u);
  const InstanceTypeInfo& h100 = (*types)[1];
  EXPECT_EQ(h100.name, "gpu_8x_h100_sxm5");
  EXPECT_EQ(h100.gpu_count, 8);  // upstream read 0 here
  EXPECT_EQ(h100.gpu_type, "H100");
  EXPECT_DOUBLE_EQ(h100.price_per_hour, 23.92);  // and 0 here
  EXPECT_EQ(h100.vcpus, 208);
  EXPECT_EQ(h100.memory_gb, 1800);
  EXPECT_THAT(h100.regions, ::testing::ElementsAre("us-east-1", "us-west-1"));
  EXPECT_TRUE(h100.available);
  EXPECT_FALSE((*types)[0].available);
}

TEST_F(LambdaProviderTest, ReadsTheDocumentedInstanceTypesExample) {
  // The InstanceTypes example of the OpenAPI description, in its envelope.
  fake_.ForceNext(
      "types",
      {200,
       R"j({"data":{"gpu_8x_example":{"instance_type":{"name":"gpu_8x_example",)j"
       R"j("description":"8x Example GPU (40 GB SXM4)","gpu_description":)j"
       R"j("Example GPU (40 GB SXM4)","price_cents_per_hour":1592,"specs":)j"
       R"j({"vcpus":124,"memory_gib":1800,"storage_gib":6144,"gpus":8}},)j"
       R"j("regions_with_capacity_available":[{"name":"us-west-1",)j"
       R"j("description":"California, USA"}]}}})j",
       "", "", ""});
  absl::StatusOr<std::vector<InstanceTypeInfo>> types =
      provider_->ListInstanceTypes();
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 1u);
  EXPECT_EQ((*types)[0].name, "gpu_8x_example");
  EXPECT_EQ((*types)[0].gpu_count, 8);
  EXPECT_EQ((*types)[0].gpu_type, "Example GPU");
  EXPECT_DOUBLE_EQ((*types)[0].price_per_hour, 15.92);
  EXPECT_EQ((*types)[0].vcpus, 124);
  EXPECT_EQ((*types)[0].memory_gb, 1800);
  EXPECT_THAT((*types)[0].regions, ::testing::ElementsAre("us-west-1"));
}

TEST_F(LambdaProviderTest, ProvisionsWithTagsAndListsTheInstance) {
  absl::StatusOr<ProviderInstance> p = provider_->Provision(Request("tok-1"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->provider, "lam");
  EXPECT_EQ(p->instance_type, "gpu_8x_h100_sxm5");
  EXPECT_EQ(p->region, "us-east-1");
  EXPECT_EQ(p->state, ProviderInstanceState::kProvisioning);
  EXPECT_EQ(p->labels.at("navarch-token"), "tok-1");
  EXPECT_EQ(p->labels.at("pool"), "train");
  ASSERT_EQ(fake_.launch_bodies().size(), 1u);
  json body = json::parse(fake_.launch_bodies()[0]);
  EXPECT_EQ(body["region_name"], "us-east-1");
  EXPECT_EQ(body["instance_type_name"], "gpu_8x_h100_sxm5");
  EXPECT_EQ(body["ssh_key_names"], json::array({"ops"}));
  EXPECT_EQ(body["name"], "train-tok-1");
  EXPECT_EQ(body["user_data"], "#cloud-config\n");
  EXPECT_EQ(body["tags"].size(), 4u);
  for (const FakeLambda::Seen& s : fake_.seen()) {
    EXPECT_EQ(s.authorization, absl::StrCat("Bearer ", kKey));
  }
  fake_.BootAll();
  absl::StatusOr<std::vector<ProviderInstance>> all = provider_->List();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, p->id);
  EXPECT_EQ((*all)[0].state, ProviderInstanceState::kRunning);
  EXPECT_FALSE((*all)[0].ip_address.empty());
  EXPECT_EQ((*all)[0].gpu_count, 8);
  EXPECT_EQ((*all)[0].labels.at("navarch-managed"), "true");
}

TEST_F(LambdaProviderTest, SameTokenAdoptsInsteadOfBuyingTwice) {
  absl::StatusOr<ProviderInstance> a = provider_->Provision(Request("tok-1"));
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<ProviderInstance> b = provider_->Provision(Request("tok-1"));
  ASSERT_TRUE(b.ok()) << b.status();
  // A new control plane (a restart, another leader) adopts it too.
  absl::StatusOr<ProviderInstance> c = Make()->Provision(Request("tok-1"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->id, c->id);
  EXPECT_EQ(fake_.launches(), 1);
}

TEST_F(LambdaProviderTest, ALaunchIsNeverRetriedWithinACall) {
  fake_.ForceNext("launch", {500, "", "global/internal-error", "", ""});
  absl::StatusOr<ProviderInstance> p = provider_->Provision(Request("tok-1"));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable) << p.status();
  EXPECT_EQ(fake_.calls("launch"), 1);
  EXPECT_EQ(ClassifyProviderError(p.status()), ProviderErrorClass::kTransient);
  // The caller's retry (same token) launches once.
  ASSERT_TRUE(provider_->Provision(Request("tok-1")).ok());
  EXPECT_EQ(fake_.launches(), 1);
}

TEST_F(LambdaProviderTest, NoListedCapacityFailsWithoutLaunching) {
  ProvisionRequest r = Request("tok-1", "europe-central-1");
  absl::StatusOr<ProviderInstance> p = provider_->Provision(r);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(p.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->scope, CloudErrorScope::kRegion);
  EXPECT_EQ(info->region, "europe-central-1");
  r = Request("tok-2", "");
  r.instance_type = "gpu_1x_a10";
  p = provider_->Provision(r);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CloudErrorInfoOf(p.status())->scope, CloudErrorScope::kProvider);
  EXPECT_EQ(fake_.calls("launch"), 0);
}

TEST_F(LambdaProviderTest, PicksARegionWithCapacityWhenNoneIsAsked) {
  absl::StatusOr<ProviderInstance> p =
      provider_->Provision(Request("tok-1", ""));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->region, "us-east-1");
}

TEST_F(LambdaProviderTest, MapsLaunchErrorsToClasses) {
  fake_.ForceNext(
      "launch",
      {400, "", "instance-operations/launch/insufficient-capacity", "", ""});
  absl::Status s = provider_->Provision(Request("a")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CloudErrorInfoOf(s)->scope, CloudErrorScope::kRegion);
  EXPECT_EQ(CloudErrorInfoOf(s)->cloud_code,
            "instance-operations/launch/insufficient-capacity");
  EXPECT_EQ(CloudErrorInfoOf(s)->region, "us-east-1");
  fake_.SetQuota(0);
  s = provider_->Provision(Request("b")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CloudErrorInfoOf(s)->scope, CloudErrorScope::kProvider);
  EXPECT_TRUE(CloudErrorInfoOf(s)->quota);
  EXPECT_THAT(s.message(), HasSubstr("Contact Support"));
  fake_.ForceNext("launch",
                  {400, "", "global/invalid-parameters", "Bad name.", ""});
  s = provider_->Provision(Request("c")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClassifyProviderError(s), ProviderErrorClass::kInvalid);
  EXPECT_THAT(s.message(), HasSubstr("Bad name."));
}

TEST_F(LambdaProviderTest, AWrongKeyIsUnauthenticatedAndNeverShown) {
  const std::string wrong = "secret_wrong-key_fedcba9876543210";
  absl::Status s = Make(wrong)->List().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("API key was refused"));
  EXPECT_THAT(s.message(), Not(HasSubstr(wrong)));
  // An error that echoes the key back is redacted too.
  fake_.ForceNext("list", {400, "", "global/invalid-parameters",
                           absl::StrCat("bad header Bearer ", kKey), ""});
  s = provider_->List().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), Not(HasSubstr(kKey)));
}

TEST_F(LambdaProviderTest, RetriesThrottlingAndServerErrorsOnReads) {
  fake_.ForceNext("list", {429, "", "", "", "2"});
  fake_.ForceNext("list", {502, "<html>bad gateway</html>", "", "", ""});
  absl::StatusOr<std::vector<ProviderInstance>> all = provider_->List();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(fake_.calls("list"), 3);
  ASSERT_EQ(sleeps_.size(), 2u);
  EXPECT_GE(sleeps_[0], absl::Seconds(2));  // Retry-After honoured
}

TEST_F(LambdaProviderTest, SpacesLaunchesTwelveSecondsApart) {
  // The fake answers 429 to launches closer than 12 s: both succeed only
  // because the provider waits.
  ASSERT_TRUE(provider_->Provision(Request("a")).ok());
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<ProviderInstance> b = provider_->Provision(Request("b"));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(sleeps_.size(), 1u);
  EXPECT_EQ(sleeps_[0], absl::Seconds(7));
  EXPECT_EQ(fake_.launches(), 2);
}

TEST_F(LambdaProviderTest, TerminatesOnceAndKnowsWhatIsNotOurs) {
  absl::StatusOr<ProviderInstance> p = provider_->Provision(Request("a"));
  ASSERT_TRUE(p.ok()) << p.status();
  fake_.BootAll();
  ASSERT_TRUE(provider_->Terminate(p->id).ok());
  EXPECT_TRUE(provider_->Terminate(p->id).ok());  // already terminating
  EXPECT_EQ(fake_.calls("terminate"), 1);
  fake_.SetStatus(p->id, "terminated");
  EXPECT_TRUE(provider_->Terminate(p->id).ok());
  EXPECT_TRUE(provider_->List()->empty());
  EXPECT_EQ(provider_->Terminate("ffff").code(), absl::StatusCode::kNotFound);
}

TEST_F(LambdaProviderTest, RefusesWhatLambdaCannotTake) {
  ProvisionRequest r = Request("a");
  r.labels["Team_Name"] = "x";  // not a Lambda tag key
  EXPECT_EQ(provider_->Provision(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Request("a");
  r.instance_type = "l4-1x";  // no such Lambda machine
  EXPECT_EQ(provider_->Provision(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Request("");
  EXPECT_EQ(provider_->Provision(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake_.seen().empty());
}

TEST(LambdaStateTest, MapsEveryDocumentedStatus) {
  EXPECT_EQ(LambdaInstanceState("booting"),
            ProviderInstanceState::kProvisioning);
  EXPECT_EQ(LambdaInstanceState("active"), ProviderInstanceState::kRunning);
  EXPECT_EQ(LambdaInstanceState("unhealthy"), ProviderInstanceState::kRunning);
  EXPECT_EQ(LambdaInstanceState("terminating"),
            ProviderInstanceState::kTerminating);
  EXPECT_EQ(LambdaInstanceState("terminated"),
            ProviderInstanceState::kTerminated);
  EXPECT_EQ(LambdaInstanceState("preempted"),
            ProviderInstanceState::kTerminated);
}

TEST(LambdaOptionsTest, ReadsTheKeyFromTheEnvironmentOrAFile) {
  ProviderConfig c;
  c.name = "lam";
  c.type = ProviderType::kLambda;
  c.lambda.ssh_key_name = "ops";
  auto env = [](const std::string& var) -> std::optional<std::string> {
    if (var == "LAMBDA_API_KEY") return "env-key-1234\n";
    return std::nullopt;
  };
  absl::StatusOr<LambdaProviderOptions> o = LambdaOptionsFromConfig(c, env);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->api_key, "env-key-1234");
  EXPECT_EQ(o->endpoint, "https://cloud.lambda.ai/api/v1");
  EXPECT_EQ(o->ssh_key_name, "ops");
  c.api_key_env = "OTHER";
  EXPECT_EQ(LambdaOptionsFromConfig(c, env).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const std::string file = ::testing::TempDir() + "/lambda-key";
  std::ofstream(file) << "file-key-5678\n";
  c.lambda.api_key_file = file;
  c.lambda.endpoint = "http://127.0.0.1:1/api/v1";
  o = LambdaOptionsFromConfig(c, env);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->api_key, "file-key-5678");
  EXPECT_EQ(o->endpoint, "http://127.0.0.1:1/api/v1");
}

TEST(LambdaConfigTest, ReadsTheLambdaKeys) {
  ConfigLoadResult r = ParseConfig(R"(
providers:
  lam:
    type: lambda
    api_key_file: /etc/navarch/lambda-key
    endpoint: http://127.0.0.1:9/api/v1
    ssh_key_name: ops
    ca_file: /etc/ssl/extra.pem
)",
                                   "test.yaml");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].message;
  const ProviderConfig& c = r.config.providers.at("lam");
  EXPECT_EQ(c.api_key_env, "LAMBDA_API_KEY");
  EXPECT_EQ(c.lambda.api_key_file, "/etc/navarch/lambda-key");
  EXPECT_EQ(c.lambda.endpoint, "http://127.0.0.1:9/api/v1");
  EXPECT_EQ(c.lambda.ssh_key_name, "ops");
  EXPECT_EQ(c.lambda.ca_file, "/etc/ssl/extra.pem");
}

TEST(LambdaConfigTest, TheExampleOfPoolsMdLoads) {
  ConfigLoadResult r = ParseConfig(R"(
providers:
  lambda:
    type: lambda
    api_key_file: /etc/navarch/lambda-api-key
    ssh_key_name: ops
pools:
  train:
    provider: lambda
    instance_type: h100-8x        # gpu_8x_h100_sxm5 on Lambda
    region: us-east-1             # empty: any region with capacity
    min_nodes: 2
    max_nodes: 8
)",
                                   "pools.md");
  ASSERT_TRUE(r.errors.empty()) << r.errors[0].message;
  EXPECT_EQ(r.config.pools.at("train").region, "us-east-1");
  EXPECT_EQ(ResolveInstanceType("h100-8x", ProviderType::kLambda),
            "gpu_8x_h100_sxm5");
}

TEST(LambdaConfigTest, RefusesLambdaKeysElsewhereAndABadEndpoint) {
  EXPECT_FALSE(ParseConfig("providers:\n  f:\n    type: fake\n"
                           "    ssh_key_name: ops\n",
                           "test.yaml")
                   .errors.empty());
  EXPECT_FALSE(ParseConfig("providers:\n  l:\n    type: lambda\n"
                           "    endpoint: ftp://x\n",
                           "test.yaml")
                   .errors.empty());
}

}  // namespace
}  // namespace navarch
