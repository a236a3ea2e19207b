#include "navarch/cli/client.h"

#include <fstream>

#include "gtest/gtest.h"

namespace navarch::cli {
namespace {

ServerAddress Parse(absl::string_view s, bool tls_flags = false) {
  auto a = ParseServerAddress(s, tls_flags);
  EXPECT_TRUE(a.ok()) << s << ": " << a.status();
  return a.ok() ? *a : ServerAddress{};
}

TEST(ServerAddressTest, PlainHostPort) {
  auto a = Parse("localhost:50051");
  EXPECT_EQ(a.target, "localhost:50051");
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(a.display, "localhost:50051");
  EXPECT_EQ(Parse("cp.internal").target, "cp.internal:50051");
  EXPECT_EQ(Parse("10.0.0.7").target, "10.0.0.7:50051");
}

TEST(ServerAddressTest, UpstreamUrlForms) {
  auto http = Parse("http://localhost:50051");
  EXPECT_EQ(http.target, "localhost:50051");
  EXPECT_FALSE(http.tls);
  EXPECT_EQ(http.display, "http://localhost:50051");
  auto https = Parse("https://navarch.example.com");
  EXPECT_EQ(https.target, "navarch.example.com:443");
  EXPECT_TRUE(https.tls);
  EXPECT_EQ(Parse("HTTPS://x:8443/").target, "x:8443");
  EXPECT_EQ(Parse("http://x").target, "x:80");
}

TEST(ServerAddressTest, Ipv6) {
  EXPECT_EQ(Parse("[::1]:50051").target, "[::1]:50051");
  EXPECT_EQ(Parse("::1").target, "[::1]:50051");
  EXPECT_EQ(Parse("[::1]").target, "[::1]:50051");
  EXPECT_EQ(Parse("https://[fd00::7]").target, "[fd00::7]:443");
}

TEST(ServerAddressTest, TlsFlagsTurnOnTls) {
  EXPECT_TRUE(Parse("cp:50051", /*tls_flags=*/true).tls);
  EXPECT_TRUE(Parse("http://cp:50051", true).tls);
}

TEST(ServerAddressTest, Rejects) {
  EXPECT_FALSE(ParseServerAddress("", false).ok());
  EXPECT_FALSE(ParseServerAddress("ftp://x:1", false).ok());
  EXPECT_FALSE(ParseServerAddress("http://x:1/api", false).ok());
  EXPECT_FALSE(ParseServerAddress("x:port", false).ok());
}

TEST(ExplainTest, ServerErrorsKeepTheirMessageAndCode) {
  auto s =
      Explain(grpc::Status(grpc::StatusCode::NOT_FOUND, "node gpu-7 not found"),
              "GetNode", "cp:50051", "30s", false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "node gpu-7 not found");
  auto pre = Explain(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  "node n1 is not cordoned"),
                     "IssueCommand", "cp:50051", "30s", false);
  EXPECT_EQ(pre.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pre.message(), "node n1 is not cordoned");
}

TEST(ExplainTest, TransportAndAuthFailuresArePlainSentences) {
  auto un = Explain(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "failed to connect to all addresses"),
                    "ListNodes", "cp:50051", "30s", false);
  EXPECT_EQ(un.message(),
            "cannot reach the control plane at cp:50051: failed to connect "
            "to all addresses (is it running? set --server, "
            "NAVARCH_SERVER or --context)");
  auto slow = Explain(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""),
                      "ListNodes", "cp:50051", "2s", false);
  EXPECT_EQ(slow.message(),
            "the control plane at cp:50051 did not answer within 2s (see "
            "--timeout)");
  EXPECT_EQ(Explain(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                 "Deadline Exceeded"),
                    "ListNodes", "cp:50051", "2s", false)
                .message(),
            slow.message());
  // The server's own deadline (a cloud that hung) keeps its message.
  auto cloud = Explain(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                    "provider lam: no answer within 25s"),
                       "ListInstanceTypes", "cp:50051", "30s", false);
  EXPECT_EQ(cloud.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(cloud.message(), "provider lam: no answer within 25s");
  auto rejected =
      Explain(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token"),
              "ListNodes", "cp:50051", "30s", /*token_given=*/true);
  EXPECT_EQ(rejected.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(rejected.message(),
            "authentication failed: the control plane rejected the token "
            "(set --token or NAVARCH_AUTH_TOKEN)");
  auto missing =
      Explain(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token"),
              "ListNodes", "cp:50051", "30s", /*token_given=*/false);
  EXPECT_EQ(missing.message(),
            "authentication failed: the control plane requires a token (set "
            "--token or NAVARCH_AUTH_TOKEN)");
  auto denied = Explain(
      grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                   "viewer:grafana may not call IssueCommand (needs operator)"),
      "IssueCommand", "cp:50051", "30s", true);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "permission denied: viewer:grafana may not call IssueCommand "
            "(needs operator)");
  auto bare = Explain(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, ""),
                      "IssueCommand", "cp:50051", "30s", true);
  EXPECT_EQ(bare.message(),
            "permission denied: the token's role does not allow IssueCommand");
  auto old = Explain(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""),
                     "ListEvents", "cp:50051", "30s", false);
  EXPECT_EQ(old.message(),
            "the control plane at cp:50051 does not serve ListEvents (it may "
            "be older than this navarch)");
}

TEST(ClientTest, UnreadableTlsFilesAreErrors) {
  ConnectionOptions o;
  o.server = "127.0.0.1:1";
  o.ca_file = "/nonexistent/ca.pem";
  auto c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "cannot read --ca-file /nonexistent/ca.pem");
  o.ca_file = ::testing::TempDir() + "/not-pem.txt";
  std::ofstream(o.ca_file) << "hello\n";
  c = Client::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is not a PEM file"), std::string::npos);
}

}  // namespace
}  // namespace navarch::cli
