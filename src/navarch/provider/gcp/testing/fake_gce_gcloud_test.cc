// The fake is checked by the real client: gcloud 528 pointed at it with
// api_endpoint_overrides/compute lists, creates and deletes instances. If
// gcloud understands the fake, the fake speaks Compute Engine's wire format.
// Nothing leaves the loopback: the config folder is fresh, the endpoint is
// the fake, and the access token comes from a file.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/base/subprocess.h"
#include "navarch/provider/gcp/testing/fake_gce.h"

namespace navarch::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// gcloud's environment: a fresh config folder, the fake as the Compute
// endpoint, and every other way out closed (a dead proxy for anything not
// overridden, the metadata server on a dead loopback port).
std::map<std::string, std::string> GcloudEnv(const fs::path& config,
                                             const FakeGce& fake) {
  return {
      {"CLOUDSDK_CONFIG", config.string()},
      {"CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", fake.endpoint() + "/"},
      {"CLOUDSDK_CORE_DISABLE_PROMPTS", "1"},
      {"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true"},
      {"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true"},
      {"HTTPS_PROXY", "http://127.0.0.1:9"},
      {"HTTP_PROXY", "http://127.0.0.1:9"},
      {"NO_PROXY", "127.0.0.1"},
      {"GCE_METADATA_HOST", "127.0.0.1:9"},
      {"GCE_METADATA_IP", "127.0.0.1:9"},
  };
}

class GcloudTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v gcloud >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "gcloud is not installed";
    }
    dir_ = fs::temp_directory_path() /
           ("gcloud-fake-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "config");
    std::ofstream(dir_ / "token") << "ya29.gcloud-test-token";
    fake_.AcceptToken("ya29.gcloud-test-token");
  }
  void TearDown() override { fs::remove_all(dir_); }

  ChildResult Gcloud(std::vector<std::string> args) {
    ChildOptions o;
    o.argv = {"gcloud", "compute"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.argv.insert(o.argv.end(), {"--project=test-project", "--format=json",
                                 "--verbosity=error", "--quiet"});
    o.env = GcloudEnv(dir_ / "config", fake_);
    o.env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = (dir_ / "token").string();
    o.unset_env = {"GOOGLE_APPLICATION_CREDENTIALS"};
    absl::StatusOr<ChildResult> r =
        RunChild(o, absl::Seconds(120), RealClock::Default());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ChildResult{};
  }

  FakeGce fake_{FakeGceOptions{}};
  fs::path dir_;
};

TEST_F(GcloudTest, CreatesListsAndDeletesAnInstance) {
  ChildResult created =
      Gcloud({"instances", "create", "gpu-1", "--zone=us-central1-a",
              "--machine-type=n1-standard-8",
              "--accelerator=type=nvidia-tesla-t4,count=1",
              "--maintenance-policy=TERMINATE",
              "--image=projects/test-project/global/images/navarch-base",
              "--labels=pool=train,navarch-managed=true",
              "--metadata=startup-script=echo hi"});
  ASSERT_EQ(created.exit_code, 0) << created.stderr_text;
  EXPECT_THAT(created.stdout_text, HasSubstr("\"name\": \"gpu-1\""));
  ASSERT_EQ(fake_.insert_bodies().size(), 1u);
  const nlohmann::json body = fake_.insert_bodies()[0];
  EXPECT_EQ(body["guestAccelerators"][0]["acceleratorCount"], 1);
  EXPECT_EQ(body["labels"]["pool"], "train");

  ChildResult listed = Gcloud({"instances", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.stderr_text;
  EXPECT_THAT(listed.stdout_text, HasSubstr("gpu-1"));
  EXPECT_THAT(listed.stdout_text, HasSubstr("RUNNING"));

  ChildResult deleted =
      Gcloud({"instances", "delete", "gpu-1", "--zone=us-central1-a"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.stderr_text;
  EXPECT_TRUE(fake_.instances().empty());
}

TEST_F(GcloudTest, ReadsCapacityErrorsFromTheOperation) {
  fake_.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "The zone 'projects/test-project/zones/us-central1-a' "
                        "does not have enough resources available to fulfill "
                        "the request."});
  ChildResult created =
      Gcloud({"instances", "create", "gpu-2", "--zone=us-central1-a",
              "--machine-type=a3-highgpu-8g", "--maintenance-policy=TERMINATE",
              "--image=projects/test-project/global/images/navarch-base"});
  EXPECT_NE(created.exit_code, 0);
  EXPECT_THAT(created.stderr_text, HasSubstr("ZONE_RESOURCE_POOL_EXHAUSTED"));
  EXPECT_TRUE(fake_.instances().empty());
}

TEST_F(GcloudTest, AWrongTokenIsRefusedAsGoogleDoes) {
  fake_.AddInstance("us-central1-a", "gpu-3");
  std::ofstream(dir_ / "token", std::ios::trunc) << "ya29.not-issued";
  ChildResult got =
      Gcloud({"instances", "describe", "gpu-3", "--zone=us-central1-a"});
  EXPECT_NE(got.exit_code, 0) << got.stdout_text;
  EXPECT_THAT(got.stderr_text, HasSubstr("invalid authentication credentials"));
}

TEST(GcloudPagingTest, ListFollowsNextPageToken) {
  if (std::system("command -v gcloud >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gcloud is not installed";
  }
  FakeGceOptions o;
  o.max_page_size = 2;
  FakeGce fake(o);
  fake.AcceptToken("ya29.paging");
  for (const char* name : {"p-1", "p-2", "p-3", "p-4", "p-5"}) {
    fake.AddInstance("europe-west4-a", name);
  }
  fs::path dir = fs::temp_directory_path() /
                 ("gcloud-paging-" + std::to_string(::getpid()));
  fs::create_directories(dir / "config");
  std::ofstream(dir / "token") << "ya29.paging";
  ChildOptions c;
  c.argv = {"gcloud",
            "compute",
            "instances",
            "list",
            "--project=test-project",
            "--format=value(name)",
            "--quiet"};
  c.env = GcloudEnv(dir / "config", fake);
  c.env["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"] = (dir / "token").string();
  absl::StatusOr<ChildResult> r =
      RunChild(c, absl::Seconds(120), RealClock::Default());
  fs::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_EQ(r->stdout_text, "p-1\np-2\np-3\np-4\np-5\n");
}

// gcloud's own service-account flow (google-auth signs the JWT) against the
// fake's token endpoint: the fake verifies a JWT that we did not write.
TEST(GcloudServiceAccountTest, TheFakeTokenEndpointAcceptsGoogleAuthsJwt) {
  if (std::system("command -v gcloud >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "gcloud is not installed";
  }
  FakeGceOptions o;
  o.sa_key_pem = GenerateRsaKeyPem();
  FakeGce fake(o);
  fake.AddInstance("us-central1-b", "sa-1");
  fs::path dir =
      fs::temp_directory_path() / ("gcloud-sa-" + std::to_string(::getpid()));
  fs::create_directories(dir / "config");
  std::ofstream(dir / "key.json") << fake.ServiceAccountKeyJson();
  std::map<std::string, std::string> env = GcloudEnv(dir / "config", fake);
  auto run = [&env](std::vector<std::string> argv) {
    ChildOptions c;
    c.argv = std::move(argv);
    c.env = env;
    absl::StatusOr<ChildResult> r =
        RunChild(c, absl::Seconds(120), RealClock::Default());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ChildResult{};
  };
  ChildResult auth = run({"gcloud", "auth", "activate-service-account",
                          "--key-file=" + (dir / "key.json").string()});
  ChildResult listed = run({"gcloud", "compute", "instances", "list",
                            "--project=test-project", "--format=value(name)"});
  fs::remove_all(dir);
  ASSERT_EQ(auth.exit_code, 0) << auth.stderr_text;
  EXPECT_EQ(listed.exit_code, 0) << listed.stderr_text;
  EXPECT_EQ(listed.stdout_text, "sa-1\n");
  EXPECT_GE(fake.token_calls(), 1);
  EXPECT_EQ(fake.issued_tokens().size(), 1u);
}

}  // namespace
}  // namespace navarch::testing
