#include "navarch/provider/aws/aws_credentials.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "navarch/provider/aws/ec2_xml.h"
#include "navarch/provider/aws/testing/fake_ec2.h"

namespace navarch {
namespace {

class AwsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.Start().ok());
    std::string tmpl = ::testing::TempDir() + "/aws_creds_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // Every lookup sees env_ only; the metadata service is the fake.
    env_ = {{"HOME", dir_}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_.url()}};
  }

  AwsCredentialChain Chain(AwsCredentialOptions o = {}) {
    o.getenv = [this](const std::string& k) -> std::optional<std::string> {
      auto it = env_.find(k);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    o.clock = &clock_;
    return AwsCredentialChain(o);
  }

  void WriteFile(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  FakeEc2 fake_;
  FakeClock clock_{absl::FromUnixSeconds(1796601600)};  // 2026-12-07
  std::string dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(AwsCredentialsTest, EnvironmentComesFirst) {
  WriteFile(dir_ + "/creds",
            "[default]\naws_access_key_id=FILE\n"
            "aws_secret_access_key=file-secret\n");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = dir_ + "/creds";
  env_["AWS_ACCESS_KEY_ID"] = "ENV";
  env_["AWS_SECRET_ACCESS_KEY"] = "env-secret";
  env_["AWS_SESSION_TOKEN"] = "env-token";
  absl::StatusOr<AwsCredentials> c = Chain().Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ENV");
  EXPECT_EQ(c->session_token, "env-token");
}

TEST_F(AwsCredentialsTest, SharedFileAndProfile) {
  WriteFile(dir_ + "/creds",
            "# comment\n[default]\naws_access_key_id = DEF\n"
            "aws_secret_access_key = def-secret\n\n[ops]\n"
            "aws_access_key_id=OPS\naws_secret_access_key=ops-secret\n"
            "aws_session_token=ops-token\n");
  env_["AWS_SHARED_CREDENTIALS_FILE"] = dir_ + "/creds";
  EXPECT_EQ(Chain().Get()->access_key_id, "DEF");
  env_["AWS_PROFILE"] = "ops";
  EXPECT_EQ(Chain().Get()->session_token, "ops-token");
  AwsCredentialOptions o;
  o.profile = "default";  // the config's key beats AWS_PROFILE
  EXPECT_EQ(Chain(o).Get()->secret_access_key, "def-secret");
  // ~/.aws/credentials when nothing names a file.
  env_.erase("AWS_SHARED_CREDENTIALS_FILE");
  env_.erase("AWS_PROFILE");
  ASSERT_EQ(mkdir((dir_ + "/.aws").c_str(), 0700), 0);
  WriteFile(dir_ + "/.aws/credentials",
            "[default]\naws_access_key_id=HOME\naws_secret_access_key=h-s\n");
  EXPECT_EQ(Chain().Get()->access_key_id, "HOME");
  o.credentials_file = dir_ + "/missing";
  EXPECT_EQ(Chain(o).Get().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AwsCredentialsTest, MetadataRoleRefreshedBeforeExpiration) {
  fake_.SetRoleCredentials("node-role", "ASIAROLE", "role-secret", "role-tok",
                           "2026-12-07T01:00:00Z");
  AwsCredentialChain chain = Chain();
  absl::StatusOr<AwsCredentials> c = chain.Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  EXPECT_EQ(c->session_token, "role-tok");
  EXPECT_EQ(c->expiration, absl::FromUnixSeconds(1796601600 + 3600));
  ASSERT_TRUE(chain.Get().ok());
  EXPECT_EQ(fake_.imds_credential_reads(), 1);  // cached
  clock_.Advance(absl::Minutes(56));            // within 5 min of the end
  fake_.SetRoleCredentials("node-role", "ASIAROLE2", "role-secret-2",
                           "role-tok-2", "2026-12-07T02:00:00Z");
  EXPECT_EQ(chain.Get()->access_key_id, "ASIAROLE2");
  EXPECT_EQ(fake_.imds_credential_reads(), 2);
}

TEST_F(AwsCredentialsTest, NoneAnywhereIsUnauthenticated) {
  env_["AWS_EC2_METADATA_DISABLED"] = "true";
  EXPECT_EQ(Chain().Get().status().code(), absl::StatusCode::kUnauthenticated);
  env_.erase("AWS_EC2_METADATA_DISABLED");  // the fake has no role: 404
  absl::Status s = Chain().Get().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(s.message(), "instance metadata")) << s;
}

TEST(Ec2XmlTest, ErrorsAndMalformedAnswers) {
  std::optional<Ec2Error> e = ParseEc2Error(
      "<?xml version=\"1.0\"?><Response><Errors><Error><Code>VcpuLimitExceeded"
      "</Code><Message>You have requested more vCPU capacity &amp; more"
      "</Message></Error></Errors><RequestID>r</RequestID></Response>");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "VcpuLimitExceeded");
  EXPECT_EQ(e->message, "You have requested more vCPU capacity & more");
  EXPECT_FALSE(ParseEc2Error("<html>502 Bad Gateway</html>").has_value());
  EXPECT_FALSE(ParseEc2Error("not xml").has_value());
  EXPECT_FALSE(ParseRunInstances("<Response/>").ok());
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  EXPECT_FALSE(ParseXml(deep).ok());
}

}  // namespace
}  // namespace navarch
