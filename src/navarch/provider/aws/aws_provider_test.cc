#include "navarch/provider/aws/aws_provider.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/config/config_loader.h"
#include "navarch/provider/aws/testing/fake_ec2.h"

namespace navarch {
namespace {

constexpr char kSecret[] = "fake-secret-key-123";

class AwsProviderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fake_.Start().ok()); }

  // Every endpoint is the fake's; the environment is `env_` only.
  AwsProviderOptions Options() {
    AwsProviderOptions o;
    o.name = "aws-test";
    o.region = "us-east-1";
    o.endpoint = fake_.url();
    o.image_id = "ami-0123";
    o.subnet_ids = {{"us-east-1a", "subnet-a"}, {"us-east-1b", "subnet-b"}};
    o.security_group_ids = {"sg-1", "sg-2"};
    o.key_name = "ops";
    o.instance_profile = "navarch-node";
    o.credentials.getenv =
        [this](const std::string& k) -> std::optional<std::string> {
      auto it = env_.find(k);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    o.credentials.metadata_endpoint = fake_.url();
    o.http.clock = &clock_;
    o.http.sleep = [this](absl::Duration d) { sleeps_.push_back(d); };
    return o;
  }

  ProvisionRequest Request(const std::string& token = "tok-1") {
    ProvisionRequest r;
    r.idempotency_token = token;
    r.name = "train-1";
    r.instance_type = "p5.48xlarge";
    r.zone = "us-east-1b";
    r.labels = {{"pool", "train"}, {"navarch-managed", "true"}};
    r.user_data = "#!/bin/sh\necho hello\n";
    return r;
  }

  FakeEc2 fake_;
  FakeClock clock_;
  std::vector<absl::Duration> sleeps_;
  std::map<std::string, std::string> env_ = {
      {"AWS_ACCESS_KEY_ID", "AKIDFAKE"}, {"AWS_SECRET_ACCESS_KEY", kSecret}};
};

TEST_F(AwsProviderTest, ProvisionSendsTheRequestAndIsIdempotent) {
  AwsProviderOptions o = Options();
  o.spot = true;
  AwsProvider aws(o);
  absl::StatusOr<ProviderInstance> got = aws.Provision(Request());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(absl::StartsWith(got->id, "i-"));
  EXPECT_EQ(got->provider, "aws-test");
  EXPECT_EQ(got->zone, "us-east-1b");
  EXPECT_EQ(got->state, ProviderInstanceState::kProvisioning);
  EXPECT_EQ(got->gpu_count, 8);
  EXPECT_EQ(got->labels.at("pool"), "train");
  EXPECT_NE(got->created_at, absl::InfinitePast());  // launchTime read

  absl::StatusOr<ProviderInstance> again = aws.Provision(Request());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, got->id);
  ASSERT_EQ(fake_.instances().size(), 1u);
  const FakeEc2::Instance i = fake_.instances()[0];
  EXPECT_EQ(i.subnet_id, "subnet-b");
  EXPECT_EQ(i.image_id, "ami-0123");
  EXPECT_EQ(i.security_groups, (std::vector<std::string>{"sg-1", "sg-2"}));
  EXPECT_EQ(i.key_name, "ops");
  EXPECT_EQ(i.instance_profile, "navarch-node");
  EXPECT_TRUE(i.spot);
  EXPECT_EQ(i.client_token, "tok-1");
  EXPECT_EQ(i.user_data, "#!/bin/sh\necho hello\n");
  EXPECT_EQ(i.tags.at("navarch-token"), "tok-1");
  EXPECT_EQ(i.tags.at("navarch-managed"), "true");
  EXPECT_EQ(i.tags.at("Name"), "train-1");
  EXPECT_TRUE(fake_.refusals().empty());
}

TEST_F(AwsProviderTest, LongTokensBecomeTheirHashAsClientToken) {
  AwsProvider aws(Options());
  const std::string token(100, 't');
  absl::StatusOr<ProviderInstance> first = aws.Provision(Request(token));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(aws.Provision(Request(token))->id, first->id);
  ASSERT_EQ(fake_.instances().size(), 1u);
  EXPECT_EQ(fake_.instances()[0].client_token.size(), 64u);
  EXPECT_EQ(fake_.instances()[0].tags.at("navarch-token"), token);
}

TEST_F(AwsProviderTest, SameTokenOtherParametersIsInvalid) {
  AwsProvider aws(Options());
  ASSERT_TRUE(aws.Provision(Request()).ok());
  ProvisionRequest other = Request();
  other.instance_type = "p4d.24xlarge";
  absl::StatusOr<ProviderInstance> got = aws.Provision(other);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  std::optional<CloudErrorInfo> info = CloudErrorInfoOf(got.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->cloud_code, "IdempotentParameterMismatch");
  EXPECT_TRUE(absl::StrContains(got.status().message(), "client token"));
}

TEST_F(AwsProviderTest, RequestsThatCannotSucceedAreRefusedBeforeTheCall) {
  AwsProvider aws(Options());
  EXPECT_EQ(aws.Provision(Request("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  ProvisionRequest zone = Request();
  zone.zone = "us-east-1f";
  EXPECT_EQ(aws.Provision(zone).status().code(), absl::StatusCode::kNotFound);
  ProvisionRequest region = Request();
  region.region = "eu-west-1";
  EXPECT_EQ(aws.Provision(region).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fake_.actions().empty());
}

struct ErrorCase {
  int http_status;
  std::string code;
  absl::StatusCode want;
  CloudErrorScope scope;
  bool quota;
};

TEST_F(AwsProviderTest, ErrorTable) {
  const std::vector<ErrorCase> cases = {
      {500, "InsufficientInstanceCapacity",
       absl::StatusCode::kResourceExhausted, CloudErrorScope::kZone, false},
      {400, "InstanceLimitExceeded", absl::StatusCode::kResourceExhausted,
       CloudErrorScope::kRegion, true},
      {400, "VcpuLimitExceeded", absl::StatusCode::kResourceExhausted,
       CloudErrorScope::kRegion, true},
      {400, "MaxSpotInstanceCountExceeded",
       absl::StatusCode::kResourceExhausted, CloudErrorScope::kRegion, true},
      {400, "InvalidParameterValue", absl::StatusCode::kInvalidArgument,
       CloudErrorScope::kUnknown, false},
      {403, "UnauthorizedOperation", absl::StatusCode::kPermissionDenied,
       CloudErrorScope::kProvider, false},
      {401, "AuthFailure", absl::StatusCode::kUnauthenticated,
       CloudErrorScope::kProvider, false},
      {400, "InvalidAMIID.NotFound", absl::StatusCode::kNotFound,
       CloudErrorScope::kUnknown, false},
  };
  AwsProvider aws(Options());
  int n = 0;
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.code);
    fake_.FailNext("RunInstances", c.http_status, c.code, "EC2 says " + c.code);
    const size_t before = fake_.actions().size();
    absl::Status s = aws.Provision(Request(absl::StrCat("t", ++n))).status();
    EXPECT_EQ(s.code(), c.want) << s;
    EXPECT_EQ(fake_.actions().size(), before + 1);  // not retried
    std::optional<CloudErrorInfo> info = CloudErrorInfoOf(s);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->cloud_code, c.code);
    EXPECT_EQ(info->scope, c.scope);
    EXPECT_EQ(info->quota, c.quota);
    EXPECT_EQ(info->region, "us-east-1");
    EXPECT_EQ(info->zone,
              c.scope == CloudErrorScope::kZone ? "us-east-1b" : "");
    EXPECT_TRUE(absl::StrContains(s.message(), "EC2 says " + c.code)) << s;
    EXPECT_FALSE(absl::StrContains(s.message(), kSecret));
  }
  EXPECT_TRUE(fake_.instances().empty());
}

TEST_F(AwsProviderTest, WithoutAZoneTheNextZoneIsTriedOnCapacityErrors) {
  AwsProvider aws(Options());
  ProvisionRequest r = Request();
  r.zone = "";
  fake_.FailNext("RunInstances", 500, "InsufficientInstanceCapacity",
                 "no p5 in us-east-1a");
  absl::StatusOr<ProviderInstance> got = aws.Provision(r);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->zone, "us-east-1b");
  // A retry of the whole call: zone a fails again, zone b's token finds
  // the instance already made.
  fake_.FailNext("RunInstances", 500, "InsufficientInstanceCapacity",
                 "still none");
  EXPECT_EQ(aws.Provision(r)->id, got->id);
  EXPECT_EQ(fake_.instances().size(), 1u);
  // Every zone out: the last zone's capacity error.
  fake_.FailNext("RunInstances", 500, "InsufficientInstanceCapacity", "none",
                 2);
  r.idempotency_token = "tok-2";
  absl::Status s = aws.Provision(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CloudErrorInfoOf(s)->zone, "us-east-1b");
  // Quotas are regional: no other zone is tried.
  fake_.FailNext("RunInstances", 400, "VcpuLimitExceeded", "quota");
  r.idempotency_token = "tok-3";
  const size_t before = fake_.actions().size();
  EXPECT_EQ(aws.Provision(r).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(fake_.actions().size(), before + 1);
}

TEST_F(AwsProviderTest, ThrottlingIsRetriedThenTransient) {
  AwsProvider aws(Options());
  fake_.FailNext("RunInstances", 400, "RequestLimitExceeded", "slow down", 2);
  absl::StatusOr<ProviderInstance> got = aws.Provision(Request());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(sleeps_.size(), 2u);
  fake_.FailNext("DescribeInstances", 503, "Unavailable", "try later", 10);
  absl::Status s = aws.List().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(ClassifyProviderError(s), ProviderErrorClass::kTransient);
}

TEST_F(AwsProviderTest, ListFollowsNextTokenAndKeepsOnlyOursAndLive) {
  for (int i = 0; i < 1003; ++i) {
    fake_.AddInstance({.id = absl::StrCat("i-", 100000 + i),
                       .instance_type = "p4d.24xlarge",
                       .zone = "us-east-1a",
                       .state = "running",
                       .tags = {{"navarch-managed", "true"}, {"pool", "p"}}});
  }
  fake_.AddInstance({.id = "i-theirs", .state = "running"});
  fake_.AddInstance({.id = "i-gone",
                     .state = "terminated",
                     .tags = {{"navarch-managed", "true"}}});
  AwsProvider aws(Options());
  absl::StatusOr<std::vector<ProviderInstance>> got = aws.List();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 1003u);
  EXPECT_EQ(got->front().state, ProviderInstanceState::kRunning);
  EXPECT_EQ(got->front().gpu_type, "A100");
  EXPECT_EQ(got->front().labels.at("pool"), "p");
  std::vector<std::string> actions = fake_.actions();
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "DescribeInstances"), 2);
}

TEST_F(AwsProviderTest, TerminateAndUnknownIds) {
  AwsProvider aws(Options());
  absl::StatusOr<ProviderInstance> got = aws.Provision(Request());
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(aws.Terminate(got->id).ok());
  EXPECT_TRUE(aws.Terminate(got->id).ok());  // already going: fine
  EXPECT_EQ(fake_.instances()[0].state, "shutting-down");
  EXPECT_EQ(aws.Terminate("i-nope").code(), absl::StatusCode::kNotFound);
}

TEST_F(AwsProviderTest, SessionTokenFromEnvironmentIsSigned) {
  fake_.SetRoleCredentials("r", "ASIATEMP", "temp-secret-xyz", "tok-session",
                           "2030-01-01T00:00:00Z");
  env_ = {{"AWS_ACCESS_KEY_ID", "ASIATEMP"},
          {"AWS_SECRET_ACCESS_KEY", "temp-secret-xyz"},
          {"AWS_SESSION_TOKEN", "tok-session"}};
  AwsProvider aws(Options());
  EXPECT_TRUE(aws.List().ok());
  env_["AWS_SESSION_TOKEN"] = "wrong-session-token";
  absl::Status s = aws.List().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(absl::StrContains(s.ToString(), "temp-secret-xyz"));
  EXPECT_FALSE(absl::StrContains(s.ToString(), "wrong-session-token"));
}

TEST_F(AwsProviderTest, WrongSecretIsAuthFailureWithoutTheSecret) {
  env_["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-42";
  AwsProvider aws(Options());
  absl::Status s = aws.Provision(Request()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_EQ(CloudErrorInfoOf(s)->cloud_code, "AuthFailure");
  EXPECT_FALSE(absl::StrContains(s.ToString(), "not-the-secret-42"));
  EXPECT_EQ(fake_.refusals().back(), "signature does not match");
}

TEST_F(AwsProviderTest, EndpointDefaultsAndEnvironmentOverride) {
  AwsProviderOptions o = Options();
  o.endpoint = "";
  o.region = "eu-west-2";
  EXPECT_EQ(AwsProvider(o).endpoint(), "https://ec2.eu-west-2.amazonaws.com/");
  env_["AWS_ENDPOINT_URL_EC2"] = fake_.url();
  EXPECT_EQ(AwsProvider(o).endpoint(), fake_.url());
}

TEST_F(AwsProviderTest, ListInstanceTypesAsksEc2ForItsGpuTypes) {
  AwsProvider aws(Options());
  absl::StatusOr<std::vector<InstanceTypeInfo>> types = aws.ListInstanceTypes();
  ASSERT_TRUE(types.ok()) << types.status();
  std::map<std::string, InstanceTypeInfo> by;
  for (const InstanceTypeInfo& t : *types) by[t.name] = t;
  // The fake offers m5.large too: outside the P and G families asked for.
  EXPECT_EQ(by.size(), 4u);
  EXPECT_FALSE(by.contains("m5.large"));
  ASSERT_TRUE(by.contains("p5.48xlarge"));
  const InstanceTypeInfo& p5 = by["p5.48xlarge"];
  EXPECT_EQ(p5.gpu_count, 8);
  EXPECT_EQ(p5.gpu_type, "H100");
  EXPECT_EQ(p5.vcpus, 192);
  EXPECT_EQ(p5.memory_gb, 2048);
  EXPECT_EQ(p5.price_per_hour, 0);  // EC2 publishes no price here
  EXPECT_EQ(p5.regions, std::vector<std::string>{"us-east-1"});
  EXPECT_EQ(by["g5.xlarge"].gpu_type, "A10G");
  EXPECT_EQ(by["g5.xlarge"].gpu_count, 1);
  EXPECT_EQ(by["g4ad.xlarge"].gpu_type, "Radeon Pro V520");
  EXPECT_TRUE(fake_.refusals().empty());
}

TEST_F(AwsProviderTest, ListInstanceTypesFollowsPagesAndKeepsEc2Errors) {
  FakeEc2Options fo;
  fo.instance_types.clear();
  for (int i = 0; i < 130; ++i) {
    fo.instance_types.push_back(
        {absl::StrCat("g9.", i, "xlarge"), 4, 16384, 1, "L4", "NVIDIA"});
  }
  FakeEc2 many(fo);
  ASSERT_TRUE(many.Start().ok());
  AwsProviderOptions o = Options();
  o.endpoint = many.url();
  AwsProvider aws(o);
  absl::StatusOr<std::vector<InstanceTypeInfo>> types = aws.ListInstanceTypes();
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_EQ(types->size(), 130u);
  int calls = 0;
  for (const std::string& a : many.actions()) {
    calls += a == "DescribeInstanceTypes";
  }
  EXPECT_EQ(calls, 2);  // 100, then 30

  many.FailNext("DescribeInstanceTypes", 403, "UnauthorizedOperation",
                "You are not authorized to perform this operation.");
  absl::Status denied = aws.ListInstanceTypes().status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("UnauthorizedOperation"), std::string::npos)
      << denied.message();
  EXPECT_EQ(denied.message().find(kSecret), std::string::npos);
}

}  // namespace
}  // namespace navarch

namespace navarch {
namespace {

TEST(AwsConfigTest, KeysLoadAndTheFactoryChecksThem) {
  absl::StatusOr<Config> c = LoadConfigString(R"(
providers:
  aws:
    type: aws
    region: us-east-1
    endpoint: http://127.0.0.1:9/
    image_id: ami-0abc
    subnet_ids: {us-east-1a: subnet-a, us-east-1b: subnet-b}
    security_group_ids: [sg-1]
    key_name: ops
    instance_profile: navarch-node
    spot: true
    profile: ops
    credentials_file: /etc/navarch/aws-credentials
)",
                                              "aws.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const ProviderConfig& p = c->providers.at("aws");
  EXPECT_EQ(p.aws_subnet_ids.at("us-east-1b"), "subnet-b");
  EXPECT_EQ(p.aws_security_group_ids, std::vector<std::string>{"sg-1"});
  EXPECT_TRUE(p.aws_spot);
  AwsProviderOptions o = AwsOptionsFromConfig(p);
  EXPECT_EQ(o.credentials.profile, "ops");
  EXPECT_EQ(o.credentials.credentials_file, "/etc/navarch/aws-credentials");
  EXPECT_EQ(o.instance_profile, "navarch-node");
  FakeClock clock;
  ProviderContext context;
  context.clock = &clock;
  absl::StatusOr<std::unique_ptr<Provider>> made = NewAwsProvider(p, context);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ((*made)->name(), "aws");
  ProviderConfig no_image = p;
  no_image.aws_image_id = "";
  EXPECT_EQ(NewAwsProvider(no_image, context).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<Config> wrong = LoadConfigString(R"(
providers:
  g: {type: gcp, project: p, image_id: ami-1}
)",
                                                  "gcp.yaml");
  EXPECT_FALSE(wrong.ok());
  EXPECT_TRUE(absl::StrContains(wrong.status().message(), "image_id"));
}

}  // namespace
}  // namespace navarch
