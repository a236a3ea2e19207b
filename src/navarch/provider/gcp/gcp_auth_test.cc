#include "navarch/provider/gcp/gcp_auth.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/provider/gcp/testing/fake_gce.h"

namespace navarch {
namespace {

using testing::FakeGce;
using testing::FakeGceOptions;
using ::testing::HasSubstr;
using ::testing::Not;

class GcpAuthTest : public ::testing::Test {
 protected:
  GcpAuthTest() : fake_(Options()), http_(HttpOptions()) {}

  static FakeGceOptions Options() {
    FakeGceOptions o;
    o.sa_key_pem = Pem();
    return o;
  }
  static const std::string& Pem() {
    static const std::string pem = testing::GenerateRsaKeyPem();
    return pem;
  }
  CloudHttpOptions HttpOptions() {
    CloudHttpOptions o;
    o.provider = "gcp";
    o.clock = &clock_;
    o.sleep = [](absl::Duration) {};
    return o;
  }
  GcpServiceAccountKey Key() {
    GcpServiceAccountKey k;
    k.client_email = fake_.options().sa_email;
    k.private_key = Pem();
    k.private_key_id = "kid-1";
    k.token_uri = fake_.token_uri();
    return k;
  }

  FakeClock clock_;
  FakeGce fake_;
  CloudHttp http_;
};

TEST_F(GcpAuthTest, ParsesAKeyFileAndRefusesOtherJson) {
  absl::StatusOr<GcpServiceAccountKey> k = ParseServiceAccountKey(
      R"({"type":"service_account","client_email":"a@b","private_key":"PEM","private_key_id":"x","token_uri":"http://127.0.0.1:1/token"})");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->token_uri, "http://127.0.0.1:1/token");
  absl::Status bad = ParseServiceAccountKey(
                         R"({"type":"authorized_user","private_key":"SECRET"})")
                         .status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), Not(HasSubstr("SECRET")));
}

TEST_F(GcpAuthTest,
       ServiceAccountTokenIsFetchedCachedAndRefreshedBeforeExpiry) {
  GcpTokenSource source(http_, clock_, GcpTokenSourceOptions{Key()});
  absl::StatusOr<std::string> t1 = source.Token();
  ASSERT_TRUE(t1.ok()) << t1.status();
  EXPECT_EQ(fake_.token_calls(), 1);
  clock_.Advance(absl::Minutes(50));  // 3599 s lifetime, 5 min margin
  EXPECT_EQ(*source.Token(), *t1);
  EXPECT_EQ(fake_.token_calls(), 1);
  clock_.Advance(absl::Minutes(5));
  absl::StatusOr<std::string> t2 = source.Token();
  ASSERT_TRUE(t2.ok());
  EXPECT_NE(*t2, *t1);
  EXPECT_EQ(fake_.token_calls(), 2);
}

TEST_F(GcpAuthTest, AKeyGoogleDoesNotKnowIsUnauthenticatedWithoutSecrets) {
  GcpServiceAccountKey k = Key();
  k.private_key = testing::GenerateRsaKeyPem();  // not the registered key
  GcpTokenSource source(http_, clock_, GcpTokenSourceOptions{k});
  absl::Status s = source.Token().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("Invalid JWT Signature"));
  EXPECT_THAT(s.message(), Not(HasSubstr("PRIVATE KEY")));
}

TEST_F(GcpAuthTest, MetadataServerTokenNeedsTheFlavorHeaderAndIsCached) {
  GcpTokenSourceOptions o;
  o.metadata_host = fake_.metadata_host();
  GcpTokenSource source(http_, clock_, o);
  absl::StatusOr<std::string> t = source.Token();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(*t, HasSubstr("-md"));
  EXPECT_EQ(*source.Token(), *t);
  EXPECT_EQ(fake_.metadata_calls(), 1);
  // Tokens never leave in a message.
  EXPECT_EQ(http_.redactor()(absl::StrCat("x ", *t)), "x [redacted]");
}

TEST_F(GcpAuthTest, JwtClaimsFollowGooglesDocument) {
  absl::StatusOr<std::string> jwt =
      SignGcpJwt(Key(), absl::FromUnixSeconds(1767225600), kGcpComputeScope);
  ASSERT_TRUE(jwt.ok());
  std::vector<std::string> parts = absl::StrSplit(*jwt, '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string claims;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(parts[1], &claims));
  nlohmann::json c = nlohmann::json::parse(claims);
  EXPECT_EQ(c["aud"], kGoogleTokenAudience);
  EXPECT_EQ(c["iat"], 1767225600);
  EXPECT_EQ(c["exp"], 1767225600 + 3600);
  EXPECT_EQ(c["scope"], kGcpComputeScope);
}

}  // namespace
}  // namespace navarch
