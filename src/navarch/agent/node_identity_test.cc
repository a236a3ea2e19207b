// --node-id auto against in-process metadata servers on 127.0.0.1: EC2's
// IMDSv2 and Compute Engine's metadata server as the clouds' fakes serve
// them (written from the clouds' documentation), a socket that never
// answers, files and the hostname. Every test's environment is a map whose
// metadata addresses are loopback: nothing here reaches 169.254.169.254 or
// metadata.google.internal.
#include "navarch/agent/node_identity.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/net/http_client.h"
#include "navarch/net/testing/test_http_server.h"
#include "navarch/provider/aws/aws_provider.h"
#include "navarch/provider/aws/testing/fake_ec2.h"
#include "navarch/provider/gcp/gcp_provider.h"
#include "navarch/provider/gcp/testing/fake_gce.h"
#include "navarch/provider/lambda/lambda_provider.h"
#include "navarch/provider/lambda/testing/fake_lambda.h"

namespace navarch::agent {
namespace {

using ::testing::HasSubstr;

// A loopback socket that listens (the kernel completes connects into its
// backlog) but never accepts or answers: a metadata server that hangs.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd_); }
  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string url() const { return "http://" + host(); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback port nothing listens on (connections are refused at once).
std::string RefusedHost() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(a.sin_port));
}

class NodeIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ec2_.Start().ok());
    // Unless a test says otherwise: both services refuse, on loopback.
    env_ = {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://" + RefusedHost()},
            {"GCE_METADATA_HOST", RefusedHost()}};
    file_ = ::testing::TempDir() + "/node-id-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::remove(file_.c_str());
  }

  NodeIdentityOptions Options() {
    NodeIdentityOptions o;
    o.file = file_;
    o.getenv = [this](const std::string& k) -> std::optional<std::string> {
      auto it = env_.find(k);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    o.hostname = [] { return std::string("host-7.example"); };
    return o;
  }

  static NodeIdSource Source(const std::string& text) {
    absl::StatusOr<NodeIdSource> s = ParseNodeIdSource(text);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }

  FakeEc2::Instance Ec2Instance() {
    FakeEc2::Instance i;
    i.id = "i-0123456789abcdef0";
    i.instance_type = "p5.48xlarge";
    i.zone = "us-east-1b";
    i.state = "running";
    return i;
  }

  FakeEc2 ec2_;
  testing::FakeGce gce_{[] {
    testing::FakeGceOptions o;
    o.sa_key_pem = GcePem();
    return o;
  }()};
  std::map<std::string, std::string> env_;
  std::string file_;

  static const std::string& GcePem() {
    static const std::string pem = testing::GenerateRsaKeyPem();
    return pem;
  }
};

TEST_F(NodeIdentityTest, Ec2InstanceIdZoneRegionAndTypeFromImdsV2) {
  ec2_.AddInstance(Ec2Instance());
  ec2_.ImdsSpeaksFor("i-0123456789abcdef0");
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = ec2_.url();  // trailing '/'
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "i-0123456789abcdef0");
  EXPECT_EQ(id->zone, "us-east-1b");
  EXPECT_EQ(id->region, "us-east-1");
  EXPECT_EQ(id->instance_type, "p5.48xlarge");
  EXPECT_THAT(id->source,
              HasSubstr("ec2 instance metadata at http://127.0.0.1"));
}

TEST_F(NodeIdentityTest, TheFakeImdsHoldsToV2) {
  // What the resolver's success above relies on: the fake refuses a token
  // request without its TTL header and a read without a token.
  ec2_.AddInstance(Ec2Instance());
  ec2_.ImdsSpeaksFor("i-0123456789abcdef0");
  HttpRequest put;
  put.method = "PUT";
  put.url = ec2_.url() + "latest/api/token";
  EXPECT_EQ(HttpDo(put)->status, 400);
  HttpRequest get;
  get.url = ec2_.url() + "latest/meta-data/instance-id";
  EXPECT_EQ(HttpDo(get)->status, 401);
  get.headers["X-aws-ec2-metadata-token"] = "made-up";
  EXPECT_EQ(HttpDo(get)->status, 401);
}

TEST_F(NodeIdentityTest, GceInstanceNameZoneAndMachineType) {
  gce_.AddInstance("us-central1-b", "navarch-train-3f2a");
  gce_.MetadataSpeaksFor("navarch-train-3f2a");
  // On a GCE VM 169.254.169.254 is Google's metadata server, which has no
  // IMDSv2: the ec2 source fails on its answer and the chain moves on.
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] =
      absl::StrCat("http://", gce_.metadata_host());
  env_["GCE_METADATA_HOST"] = gce_.metadata_host();
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "navarch-train-3f2a");
  EXPECT_EQ(id->zone, "us-central1-b");
  EXPECT_EQ(id->region, "us-central1");
  EXPECT_EQ(id->instance_type, "a3-highgpu-8g");
  EXPECT_THAT(id->source, HasSubstr("gce metadata server at 127.0.0.1:"));
  // The fake refuses a request without the flavor header.
  HttpRequest bare;
  bare.url = absl::StrCat("http://", gce_.metadata_host(),
                          "/computeMetadata/v1/instance/name");
  EXPECT_EQ(HttpDo(bare)->status, 403);
}

TEST_F(NodeIdentityTest, AGceAnswerWithoutTheFlavorHeaderIsNotGce) {
  testing::TestHttpServer impostor;
  impostor.server().Get(".*",
                        [](const httplib::Request&, httplib::Response& r) {
                          r.set_content("someone-else", "text/plain");
                        });
  impostor.Start();
  env_["GCE_METADATA_HOST"] = absl::StrCat("127.0.0.1:", impostor.port());
  NodeIdentityOptions o = Options();
  o.source = Source("gce");
  absl::Status s = ResolveNodeIdentity(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("lacks Metadata-Flavor: Google"));
}

TEST_F(NodeIdentityTest, TheFileWhenNoMetadataAnswers) {
  std::ofstream(file_) << "\n  lambda-0920ab77c1 \nignored\n";
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "lambda-0920ab77c1");
  EXPECT_EQ(id->source, "file " + file_);
  EXPECT_TRUE(id->zone.empty());
  // file:PATH names another file and asks nothing else.
  const std::string other = file_ + ".other";
  std::ofstream(other) << "gpu-9\n";
  NodeIdentityOptions o = Options();
  o.source = Source("file:" + other);
  EXPECT_EQ(ResolveNodeIdentity(o)->node_id, "gpu-9");
}

TEST_F(NodeIdentityTest, AnUnusableIdIsRefusedWithItsSource) {
  std::ofstream(file_) << "two words\n";
  absl::Status s = ResolveNodeIdentity(Options()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(),
              HasSubstr("file " + file_ + ": gave an unusable node id"));
}

TEST_F(NodeIdentityTest, NoneAnswersNamesEverySourceAndWhy) {
  env_["AWS_EC2_METADATA_DISABLED"] = "TRUE";
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnavailable);
  const std::string m(id.status().message());
  EXPECT_THAT(m, HasSubstr("cannot find this node's id (--node-id auto)"));
  EXPECT_THAT(m, HasSubstr("ec2 instance metadata (http://127.0.0.1:"));
  EXPECT_THAT(m, HasSubstr("disabled by AWS_EC2_METADATA_DISABLED=true"));
  EXPECT_THAT(m, HasSubstr("gce metadata server (127.0.0.1:"));
  EXPECT_THAT(m, HasSubstr("connection refused"));
  EXPECT_THAT(m, HasSubstr("file " + file_ + ": cannot be read"));
  EXPECT_THAT(m, HasSubstr("the hostname: not tried"));
  EXPECT_THAT(m, HasSubstr("pass --node-id ID"));
}

TEST_F(NodeIdentityTest, TheHostnameOnlyWhenAllowedOrChosen) {
  NodeIdentityOptions o = Options();
  o.allow_hostname = true;
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(o);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "host-7.example");
  EXPECT_EQ(id->source, "the hostname");
  o = Options();
  o.source = Source("hostname");
  EXPECT_EQ(ResolveNodeIdentity(o)->node_id, "host-7.example");
}

TEST_F(NodeIdentityTest, AnExplicitSourceIsTheOnlyOneAsked) {
  std::ofstream(file_) << "from-file\n";
  NodeIdentityOptions o = Options();
  o.source = Source("ec2");
  absl::Status s = ResolveNodeIdentity(o).status();
  EXPECT_THAT(s.message(), HasSubstr("ec2 instance metadata"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("gce")));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("from-file")));
}

TEST_F(NodeIdentityTest, AServerThatNeverAnswersIsGivenUpOnInTime) {
  SilentServer silent;
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = silent.url();
  env_["GCE_METADATA_HOST"] = silent.host();
  NodeIdentityOptions o = Options();
  o.metadata.timeout = absl::Milliseconds(300);
  o.metadata.connect_timeout = absl::Milliseconds(100);
  const absl::Time start = absl::Now();
  absl::Status s = ResolveNodeIdentity(o).status();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("timed out"));
  // Two sources of 300 ms each, with room for a loaded machine.
  EXPECT_GE(took, absl::Milliseconds(550));
  EXPECT_LT(took, absl::Milliseconds(1500)) << s;
}

// Lambda: no metadata and no file; with a bootstrap token the agent asks
// the control plane, keeps the answer, and a later start (the token has
// expired by then) reads it back without asking.
TEST_F(NodeIdentityTest, TheControlPlaneAfterTheFileAndItsAnswerIsKept) {
  const std::string kept = file_ + "-assigned";
  std::remove(kept.c_str());
  int asked = 0;
  NodeIdentityOptions o = Options();
  o.allow_hostname = true;  // tried after the control plane only
  o.assigned_file = kept;
  o.control_plane = [&asked]() -> absl::StatusOr<std::string> {
    ++asked;
    return std::string("0920582c7ff041399e34823a0be62549");
  };
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(o);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "0920582c7ff041399e34823a0be62549");
  EXPECT_EQ(id->source, "the control plane (assigned by RegisterNode)");
  EXPECT_EQ(asked, 1);
  std::ifstream in(kept);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "0920582c7ff041399e34823a0be62549");

  // Restarted: the kept id, without asking (the token may be refused now).
  o.control_plane = [&asked]() -> absl::StatusOr<std::string> {
    ++asked;
    return absl::UnauthenticatedError("bootstrap token expired");
  };
  id = ResolveNodeIdentity(o);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "0920582c7ff041399e34823a0be62549");
  EXPECT_THAT(id->source, HasSubstr("kept in " + kept));
  EXPECT_EQ(asked, 1);
  // Even with no bootstrap token at all.
  o.control_plane = nullptr;
  EXPECT_EQ(ResolveNodeIdentity(o)->node_id,
            "0920582c7ff041399e34823a0be62549");
  std::remove(kept.c_str());
}

TEST_F(NodeIdentityTest, TheFileOrMetadataWinOverTheControlPlane) {
  int asked = 0;
  NodeIdentityOptions o = Options();
  o.control_plane = [&asked]() -> absl::StatusOr<std::string> {
    ++asked;
    return std::string("from-control-plane");
  };
  std::ofstream(file_) << "from-file\n";
  EXPECT_EQ(ResolveNodeIdentity(o)->node_id, "from-file");
  EXPECT_EQ(asked, 0);
}

TEST_F(NodeIdentityTest, AControlPlaneThatCannotAssignIsNamedInTheError) {
  NodeIdentityOptions o = Options();
  o.control_plane = []() -> absl::StatusOr<std::string> {
    return absl::PermissionDeniedError("instance i-1 is failed");
  };
  absl::Status s = ResolveNodeIdentity(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(),
              HasSubstr("the control plane: instance i-1 is failed"));
  // Without a bootstrap token (and nothing kept) it is not tried at all.
  o.control_plane = nullptr;
  EXPECT_THAT(ResolveNodeIdentity(o).status().message(),
              ::testing::Not(HasSubstr("the control plane")));
}

TEST(NodeIdSourceTest, Forms) {
  EXPECT_EQ(ParseNodeIdSource("ec2")->kind, NodeIdSourceKind::kEc2);
  EXPECT_EQ(ParseNodeIdSource("gce")->kind, NodeIdSourceKind::kGce);
  EXPECT_EQ(ParseNodeIdSource("hostname")->kind, NodeIdSourceKind::kHostname);
  EXPECT_EQ(ParseNodeIdSource("file:/etc/x")->path, "/etc/x");
  EXPECT_EQ(ParseNodeIdSource("control-plane")->kind,
            NodeIdSourceKind::kControlPlane);
  for (const char* bad : {"", "aws", "file:", "file:relative", "EC2"}) {
    absl::Status s = ParseNodeIdSource(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("expected ec2, gce, file:")) << bad;
  }
}

// ------------------------------------------------- one proof per cloud: the
// id a VM finds is the id its provider reported when it bought it, which is
// the id the pool manager matches the registering node with.

TEST_F(NodeIdentityTest, AwsAnInstanceTheProviderBoughtFindsItsOwnId) {
  AwsProviderOptions po;
  po.name = "aws";
  po.region = "us-east-1";
  po.endpoint = ec2_.url();
  po.image_id = "ami-0123";
  po.subnet_ids = {{"us-east-1b", "subnet-b"}};
  po.credentials.getenv =
      [](const std::string& k) -> std::optional<std::string> {
    if (k == "AWS_ACCESS_KEY_ID") return "AKIDFAKE";
    if (k == "AWS_SECRET_ACCESS_KEY") return "fake-secret-key-123";
    return std::nullopt;
  };
  po.credentials.metadata_endpoint = ec2_.url();  // never the real one
  AwsProvider aws(po);
  ProvisionRequest r;
  r.idempotency_token = "tok-identity";
  r.name = "train-1";
  r.instance_type = "p5.48xlarge";
  r.zone = "us-east-1b";
  r.labels = {{"pool", "train"}, {"navarch-managed", "true"}};
  absl::StatusOr<ProviderInstance> bought = aws.Provision(r);
  ASSERT_TRUE(bought.ok()) << bought.status();
  ec2_.ImdsSpeaksFor(bought->id);  // the new VM asks its own IMDS
  env_["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = ec2_.url();
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, bought->id);
  EXPECT_EQ(id->zone, bought->zone);
  EXPECT_EQ(id->instance_type, bought->instance_type);
}

TEST_F(NodeIdentityTest, GcpAnInstanceTheProviderBoughtFindsItsOwnId) {
  FakeClock clock;
  GcpProviderOptions po;
  po.project = "test-project";
  po.zone = "us-central1-a";
  po.endpoint = gce_.endpoint();
  po.metadata_host = gce_.metadata_host();
  po.key = GcpServiceAccountKey{gce_.options().sa_email, GcePem(), "k1",
                                gce_.token_uri(), "test-project"};
  po.spec.image = "projects/test-project/global/images/navarch";
  po.spec.network = "global/networks/default";
  po.http.sleep = [&clock](absl::Duration d) { clock.Advance(d); };
  GcpProvider gcp(clock, po);
  ProvisionRequest r;
  r.idempotency_token = "tok-identity";
  r.name = "train-1";
  r.instance_type = "a3-highgpu-8g";
  r.labels = {{"pool", "train"}, {"navarch-managed", "true"}};
  absl::StatusOr<ProviderInstance> bought = gcp.Provision(r);
  ASSERT_TRUE(bought.ok()) << bought.status();
  gce_.MetadataSpeaksFor(bought->id);
  env_["GCE_METADATA_HOST"] = gce_.metadata_host();
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, bought->id);
  EXPECT_EQ(id->zone, bought->zone);
  EXPECT_EQ(id->region, bought->region);
  EXPECT_EQ(id->instance_type, bought->instance_type);
}

TEST_F(NodeIdentityTest, LambdaHasNoMetadataTheBootstrapWrittenFileIsTheId) {
  FakeClock clock;
  FakeLambda lambda(clock, "lambda-key-0123456789");
  lambda.AddType({"gpu_8x_h100_sxm5",
                  "8x H100",
                  "H100",
                  2392,
                  208,
                  1800,
                  24780,
                  8,
                  {"us-east-1"}});
  lambda.AddSshKey("ops");
  LambdaProviderOptions po;
  po.name = "lambda";
  po.endpoint = lambda.endpoint() + "/";
  po.api_key = "lambda-key-0123456789";
  po.ssh_key_name = "ops";
  po.http.sleep = [&clock](absl::Duration d) { clock.Advance(d); };
  LambdaProvider provider(clock, po);
  ProvisionRequest r;
  r.idempotency_token = "tok-identity";
  r.name = "train-1";
  r.instance_type = "h100-8x";
  r.labels = {{"pool", "train"}, {"navarch-managed", "true"}};
  absl::StatusOr<ProviderInstance> bought = provider.Provision(r);
  ASSERT_TRUE(bought.ok()) << bought.status();
  // Lambda VMs have no metadata service (both refuse here); the bootstrap
  // writes the id the provider reported into the file.
  std::ofstream(file_) << bought->id << "\n";
  absl::StatusOr<NodeIdentity> id = ResolveNodeIdentity(Options());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, bought->id);
  EXPECT_EQ(id->source, "file " + file_);
}

}  // namespace
}  // namespace navarch::agent
