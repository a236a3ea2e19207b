// The real `aws` CLI (botocore: its own SigV4 signer, Query serializer and
// XML parser) against FakeEc2: if it signs requests the fake accepts, sends
// what the fake requires and reads what the fake answers, the fake speaks
// EC2's wire format. Skipped where `aws` is not installed. No traffic leaves
// 127.0.0.1: the endpoint is the fake, and IMDS and config files are off.
#include <stdlib.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/base/subprocess.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

class FakeEc2CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ChildOptions probe;
    probe.argv = {"aws", "--version"};
    absl::StatusOr<ChildResult> r =
        RunChild(probe, absl::Seconds(60), RealClock::Default());
    if (!r.ok() || r->exit_code != 0) GTEST_SKIP() << "no aws CLI";
    std::string tmpl = ::testing::TempDir() + "/fake_ec2_cli_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(fake_.Start().ok());
  }

  // Runs `aws --endpoint-url FAKE --region us-east-1 ec2 ARGS...`.
  ChildResult Aws(std::vector<std::string> args,
                  const std::string& secret = "fake-secret-key-123") {
    ChildOptions o;
    o.argv = {"aws",       "--endpoint-url", fake_.url(), "--region",
              "us-east-1", "--output",       "json",      "ec2"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.env = {{"AWS_ACCESS_KEY_ID", "AKIDFAKE"},
             {"AWS_SECRET_ACCESS_KEY", secret},
             {"AWS_CONFIG_FILE", dir_ + "/config"},
             {"AWS_SHARED_CREDENTIALS_FILE", dir_ + "/credentials"},
             {"AWS_EC2_METADATA_DISABLED", "true"},
             {"AWS_MAX_ATTEMPTS", "1"},
             {"HOME", dir_}};
    o.unset_env = {"AWS_SESSION_TOKEN",    "AWS_PROFILE",
                   "AWS_DEFAULT_REGION",   "AWS_ENDPOINT_URL",
                   "AWS_ENDPOINT_URL_EC2", "AWS_REGION"};
    absl::StatusOr<ChildResult> r =
        RunChild(o, absl::Seconds(60), RealClock::Default());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ChildResult{};
  }

  ChildResult Run(const std::string& token, const std::string& type) {
    return Aws({"run-instances",
                "--image-id",
                "ami-0abc",
                "--instance-type",
                type,
                "--subnet-id",
                "subnet-b",
                "--count",
                "1",
                "--client-token",
                token,
                "--user-data",
                "#!/bin/sh\necho hi",
                "--security-group-ids",
                "sg-1",
                "sg-2",
                "--key-name",
                "ops",
                "--tag-specifications",
                "ResourceType=instance,Tags=[{Key=navarch-managed,Value=true},"
                "{Key=pool,Value=train}]"});
  }

  std::string dir_;
  FakeEc2 fake_;
};

TEST_F(FakeEc2CliTest, RunInstancesIsIdempotentOnClientToken) {
  ChildResult first = Run("tok-1", "p5.48xlarge");
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  nlohmann::json j = nlohmann::json::parse(first.stdout_text);
  const std::string id = j["Instances"][0]["InstanceId"];
  EXPECT_TRUE(absl::StartsWith(id, "i-"));
  EXPECT_EQ(j["Instances"][0]["Placement"]["AvailabilityZone"], "us-east-1b");
  EXPECT_EQ(j["Instances"][0]["State"]["Name"], "pending");
  EXPECT_EQ(j["Instances"][0]["ClientToken"], "tok-1");

  ChildResult again = Run("tok-1", "p5.48xlarge");
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_EQ(
      nlohmann::json::parse(again.stdout_text)["Instances"][0]["InstanceId"],
      id);
  ASSERT_EQ(fake_.instances().size(), 1u);
  const FakeEc2::Instance made = fake_.instances()[0];
  EXPECT_EQ(made.user_data, "#!/bin/sh\necho hi");  // the CLI base64s it
  EXPECT_EQ(made.tags.at("pool"), "train");
  EXPECT_EQ(made.security_groups, (std::vector<std::string>{"sg-1", "sg-2"}));
  EXPECT_EQ(made.key_name, "ops");

  ChildResult other = Run("tok-1", "p4d.24xlarge");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_TRUE(
      absl::StrContains(other.stderr_text, "IdempotentParameterMismatch"))
      << other.stderr_text;
  EXPECT_TRUE(fake_.refusals().empty());
}

TEST_F(FakeEc2CliTest, DescribeFollowsNextTokenAndTerminate) {
  for (int i = 0; i < 7; ++i) {
    fake_.AddInstance({.id = absl::StrCat("i-0000000000000abc", i),
                       .image_id = "ami-1",
                       .instance_type = "p5.48xlarge",
                       .zone = "us-east-1a",
                       .state = "running",
                       .tags = {{"navarch-managed", "true"}}});
  }
  fake_.AddInstance({.id = "i-0000000000000fff0", .state = "running"});
  ChildResult d = Aws({"describe-instances", "--page-size", "5", "--filters",
                       "Name=tag:navarch-managed,Values=true",
                       "Name=instance-state-name,Values=pending,running"});
  ASSERT_EQ(d.exit_code, 0) << d.stderr_text;
  int seen = 0;
  const nlohmann::json described = nlohmann::json::parse(d.stdout_text);
  for (const auto& r : described["Reservations"]) {
    for (const auto& i : r["Instances"]) {
      EXPECT_EQ(i["Tags"][0]["Key"], "navarch-managed");
      ++seen;
    }
  }
  EXPECT_EQ(seen, 7);  // two pages, joined by the CLI through NextToken
  ChildResult t =
      Aws({"terminate-instances", "--instance-ids", "i-0000000000000abc3"});
  ASSERT_EQ(t.exit_code, 0) << t.stderr_text;
  nlohmann::json j = nlohmann::json::parse(t.stdout_text);
  EXPECT_EQ(j["TerminatingInstances"][0]["CurrentState"]["Name"],
            "shutting-down");
  EXPECT_EQ(j["TerminatingInstances"][0]["PreviousState"]["Code"], 16);
  EXPECT_TRUE(fake_.refusals().empty());
}

// botocore reads the fake's DescribeInstanceTypes answer with EC2's own
// service model: the element names our provider parses are EC2's.
TEST_F(FakeEc2CliTest, DescribeInstanceTypesFiltersWithWildcardsAndPages) {
  ChildResult d = Aws({"describe-instance-types", "--page-size", "5",
                       "--filters", "Name=instance-type,Values=p*,g*"});
  ASSERT_EQ(d.exit_code, 0) << d.stderr_text;
  std::map<std::string, nlohmann::json> by;
  const nlohmann::json described = nlohmann::json::parse(d.stdout_text);
  for (const auto& t : described["InstanceTypes"]) by[t["InstanceType"]] = t;
  EXPECT_EQ(by.size(), 4u);  // m5.large is not p* or g*
  ASSERT_TRUE(by.contains("p5.48xlarge"));
  const nlohmann::json& p5 = by["p5.48xlarge"];
  EXPECT_EQ(p5["VCpuInfo"]["DefaultVCpus"], 192);
  EXPECT_EQ(p5["MemoryInfo"]["SizeInMiB"], 2097152);
  EXPECT_EQ(p5["GpuInfo"]["Gpus"][0]["Name"], "H100");
  EXPECT_EQ(p5["GpuInfo"]["Gpus"][0]["Manufacturer"], "NVIDIA");
  EXPECT_EQ(p5["GpuInfo"]["Gpus"][0]["Count"], 8);
  ChildResult bad =
      Aws({"describe-instance-types", "--instance-types", "p9.huge"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.stderr_text, "InvalidInstanceType"))
      << bad.stderr_text;
  EXPECT_TRUE(fake_.refusals().empty());
}

TEST_F(FakeEc2CliTest, DocumentedErrorsAndBadSignaturesReachTheCli) {
  fake_.FailNext("RunInstances", 500, "InsufficientInstanceCapacity",
                 "We currently do not have sufficient p5.48xlarge capacity");
  ChildResult r = Run("tok-2", "p5.48xlarge");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.stderr_text, "InsufficientInstanceCapacity"))
      << r.stderr_text;
  ChildResult bad = Aws({"describe-instances"}, "wrong-secret");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(bad.stderr_text, "AuthFailure"))
      << bad.stderr_text;
  ASSERT_EQ(fake_.refusals().size(), 1u);
  EXPECT_EQ(fake_.refusals()[0], "signature does not match");
}

}  // namespace
}  // namespace navarch
