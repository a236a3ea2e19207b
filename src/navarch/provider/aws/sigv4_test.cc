#include "navarch/provider/aws/sigv4.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/base/subprocess.h"

namespace navarch {
namespace {

// The vectors come from AWS's SigV4 test suite ("aws-sig-v4-test-suite",
// formerly docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html),
// as kept in bazelbuild/bazel third_party/aws-sig-v4-test-suite/: each case's
// .req (request), .creq/.sts (intermediate steps) and .authz (the expected
// Authorization header). All use these credentials, date, region, service.
constexpr char kAmzDate[] = "20150830T123600Z";
const AwsCredentials kSuiteCredentials = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

SigV4Request SuiteRequest(std::string method, std::string query,
                          std::string body = "") {
  SigV4Request r;
  r.method = std::move(method);
  r.query = std::move(query);
  r.body = std::move(body);
  r.region = "us-east-1";
  r.service = "service";
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kAmzDate}};
  return r;
}

TEST(SigV4Test, PostVanilla) {
  EXPECT_EQ(
      SigV4Authorization(SuiteRequest("POST", ""), kSuiteCredentials, kAmzDate),
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
      "service/aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e9"
      "2efbe5d6b");
}

TEST(SigV4Test, GetVanillaQueryOrderKey) {
  EXPECT_EQ(
      SigV4Authorization(SuiteRequest("GET", "Param1=value2&Param1=Value1"),
                         kSuiteCredentials, kAmzDate),
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
      "service/aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a1"
      "5b2382bd1");
}

TEST(SigV4Test, PostXWwwFormUrlencodedEveryStep) {
  SigV4Request r = SuiteRequest("POST", "", "Param1=value1");
  r.headers["Content-Type"] = "application/x-www-form-urlencoded";
  EXPECT_EQ(SigV4CanonicalRequest(r),
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
            "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n"
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(SigV4StringToSign(r, kAmzDate),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n"
            "20150830/us-east-1/service/aws4_request\n"
            "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
  EXPECT_EQ(SigV4Authorization(r, kSuiteCredentials, kAmzDate),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
            "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a"
            "0fe09473a");
}

TEST(SigV4Test, PostStsHeaderBefore) {
  SigV4Request r = SuiteRequest("POST", "");
  r.headers["X-Amz-Security-Token"] =
      "AQoDYXdzEPT//////////"
      "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSP"
      "fIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phU"
      "ZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d"
      "+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSY"
      "vKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
  EXPECT_EQ(SigV4Authorization(r, kSuiteCredentials, kAmzDate),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a"
            "82be05ead");
}

TEST(SigV4Test, SignHttpRequestSetsHostDateTokenAndPort) {
  HttpRequest req;
  req.method = "POST";
  req.url = "http://127.0.0.1:8123/";
  req.content_type = "application/x-www-form-urlencoded; charset=utf-8";
  req.body = "Action=DescribeInstances&Version=2016-11-15";
  AwsCredentials c = {"AKID", "secret-key", "session-token"};
  ASSERT_TRUE(SignHttpRequest(req, c, "us-east-1", "ec2",
                              absl::FromUnixSeconds(1440938160))
                  .ok());
  EXPECT_EQ(req.headers["Host"], "127.0.0.1:8123");
  EXPECT_EQ(req.headers["X-Amz-Date"], "20150830T123600Z");
  EXPECT_EQ(req.headers["X-Amz-Security-Token"], "session-token");
  EXPECT_NE(req.headers["Authorization"].find(
                "SignedHeaders=content-type;host;x-amz-date;"
                "x-amz-security-token"),
            std::string::npos);
}

// An independent signer: botocore's SigV4Auth signs the same request at the
// same instant; its Authorization must equal ours. Skipped where botocore
// cannot be imported.
constexpr char kBotocoreScript[] = R"PY(
import sys, datetime
from unittest import mock
try:
    import botocore.auth, botocore.awsrequest, botocore.credentials
except Exception:
    print("NO-BOTOCORE"); sys.exit(0)
creds = botocore.credentials.Credentials(sys.argv[1], sys.argv[2], sys.argv[3] or None)
req = botocore.awsrequest.AWSRequest(method="POST", url=sys.argv[4], data=sys.argv[5].encode(),
    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
when = datetime.datetime(2026, 12, 7, 6, 1, 2)
with mock.patch("botocore.auth.get_current_datetime", return_value=when, create=True), \
     mock.patch("botocore.auth.datetime") as dt:
    dt.datetime.utcnow.return_value = when
    dt.datetime.now.return_value = when
    dt.datetime.strptime = datetime.datetime.strptime
    botocore.auth.SigV4Auth(creds, "ec2", "eu-west-1").add_auth(req)
print(req.headers["Authorization"])
)PY";

TEST(SigV4Test, MatchesBotocore) {
  const std::string url = "http://127.0.0.1:4567/";
  const std::string body =
      "Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&"
      "MaxCount=1&UserData=aGk%3D&TagSpecification.1.Tag.1.Key=pool";
  for (const std::string token : {"", "FwoGZXIvYXdzEXAMPLE+token/=="}) {
    ChildOptions o;
    o.argv = {
        "python3", "-c", kBotocoreScript, "AKIDTEST", "sEcReT/KeY+1", token,
        url,       body};
    absl::StatusOr<ChildResult> r =
        RunChild(o, absl::Seconds(60), RealClock::Default());
    ASSERT_TRUE(r.ok()) << r.status();
    std::string want(absl::StripAsciiWhitespace(r->stdout_text));
    if (want == "NO-BOTOCORE" || r->exit_code != 0) {
      GTEST_SKIP() << "botocore unavailable: " << r->stderr_text;
    }
    HttpRequest req;
    req.method = "POST";
    req.url = url;
    req.content_type = "application/x-www-form-urlencoded; charset=utf-8";
    req.body = body;
    AwsCredentials c = {"AKIDTEST", "sEcReT/KeY+1", token};
    ASSERT_TRUE(
        SignHttpRequest(req, c, "eu-west-1", "ec2",
                        absl::FromCivil(absl::CivilSecond(2026, 12, 7, 6, 1, 2),
                                        absl::UTCTimeZone()))
            .ok());
    EXPECT_EQ(req.headers["Authorization"], want) << "token=" << token;
  }
}

}  // namespace
}  // namespace navarch
