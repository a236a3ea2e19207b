// /api/v1/agent/{binary,package}[.sha256] on a real listener (port 0):
// who may download, the checksums, a file changed on disk, large files.
#include "navarch/controlplane/agent_download.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/clock.h"
#include "navarch/controlplane/auth.h"
#include "navarch/controlplane/metrics.h"
#include "navarch/controlplane/rpc_metrics.h"
#include "navarch/net/digest.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;

constexpr char kNodeKey[] = "0123456789abcdef0123456789abcdef-key";

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

class AgentDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/navarch-agent-download-XXXXXX";
    dir_ = mkdtemp(tmpl);
    binary_ = dir_ + "/node-agent";
    package_ = dir_ + "/navarch-node-agent_1.0_amd64.deb";
    WriteFile(binary_,
              "\x7f"
              "ELF agent v1");
    WriteFile(package_, "!<arch>\npackage v1");
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
    std::filesystem::remove_all(dir_);
  }

  void Start(AgentDownloadOptions options) {
    AuthConfig config;
    for (auto [name, role] : {std::pair{"agent", AuthRole::kAgent},
                              {"viewer", AuthRole::kViewer},
                              {"ops", AuthRole::kOperator}}) {
      AuthTokenConfig t;
      t.name = name;
      t.value = absl::StrCat(name, "-secret-token");
      t.role = role;
      config.tokens.push_back(t);
    }
    AuthTokenConfig key;
    key.name = "node_token_key";
    key.value = kNodeKey;
    config.node_token_key = key;
    auto auth = Authenticator::Create(config, false, nullptr, &clock_);
    ASSERT_TRUE(auth.ok()) << auth.status();
    auth_ = std::move(*auth);
    rpc_ = std::make_unique<RpcMetrics>(registry_);
    ctx_ = std::make_unique<HttpApiContext>(
        HttpApiContext{*auth_, *rpc_, clock_, NullLogger()});
    downloads_ = std::make_unique<AgentDownloads>(std::move(options), *ctx_);
    listener_ = std::make_unique<HttpListener>(
        NullLogger(), [](const httplib::Request&) { return absl::OkStatus(); },
        [](httplib::Response& res, const absl::Status& s) {
          WriteError(res, s);
        });
    downloads_->Register(listener_->router());
    HttpListenerOptions o;
    o.address = "127.0.0.1:0";
    ASSERT_TRUE(listener_->Start(o).ok());
    const std::string& address = listener_->local_address();
    int port = 0;
    ASSERT_TRUE(
        absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port));
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  }
  void StartWithBoth() { Start({binary_, package_}); }

  httplib::Result Get(const std::string& path, const std::string& token) {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return client_->Get(path, h);
  }

  std::string dir_, binary_, package_;
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  MetricsRegistry registry_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<RpcMetrics> rpc_;
  std::unique_ptr<HttpApiContext> ctx_;
  std::unique_ptr<AgentDownloads> downloads_;
  std::unique_ptr<HttpListener> listener_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AgentDownloadTest, ServesTheBinaryAndPackageWithTheirChecksums) {
  StartWithBoth();
  auto bin = Get("/api/v1/agent/binary", "agent-secret-token");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->status, 200);
  EXPECT_EQ(bin->body,
            "\x7f"
            "ELF agent v1");
  const std::string sum = Sha256Hex(bin->body);
  EXPECT_EQ(bin->get_header_value("X-Checksum-Sha256"), sum);
  EXPECT_EQ(bin->get_header_value("Content-Type"), "application/octet-stream");
  auto bin_sum = Get("/api/v1/agent/binary.sha256", "agent-secret-token");
  ASSERT_TRUE(bin_sum);
  EXPECT_EQ(bin_sum->body, absl::StrCat(sum, "  node-agent\n"));

  auto pkg = Get("/api/v1/agent/package", "ops-secret-token");
  ASSERT_TRUE(pkg);
  EXPECT_EQ(pkg->status, 200);
  EXPECT_EQ(pkg->body, "!<arch>\npackage v1");
  EXPECT_EQ(pkg->get_header_value("Content-Type"),
            "application/vnd.debian.binary-package");
  EXPECT_THAT(pkg->get_header_value("Content-Disposition"),
              HasSubstr("navarch-node-agent_1.0_amd64.deb"));
  auto pkg_sum = Get("/api/v1/agent/package.sha256", "agent-secret-token");
  ASSERT_TRUE(pkg_sum);
  EXPECT_EQ(pkg_sum->body,
            absl::StrCat(Sha256Hex(pkg->body),
                         "  navarch-node-agent_1.0_amd64.deb\n"));
}

TEST_F(AgentDownloadTest, AgentCredentialsOnly) {
  StartWithBoth();
  auto none = Get("/api/v1/agent/binary", "");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  auto viewer = Get("/api/v1/agent/binary", "viewer-secret-token");
  ASSERT_TRUE(viewer);
  EXPECT_EQ(viewer->status, 403);
  EXPECT_THAT(viewer->body, HasSubstr("agent or operator"));
  auto forged = Get("/api/v1/agent/package", "navarch-node.gpu-1.forged");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);

  // A new machine has only the bootstrap token its user data carries.
  const std::string boot =
      BootstrapToken(kNodeKey, "intent-1", clock_.Now() + absl::Minutes(10));
  auto by_boot = Get("/api/v1/agent/package", boot);
  ASSERT_TRUE(by_boot);
  EXPECT_EQ(by_boot->status, 200);
  auto by_node = Get("/api/v1/agent/binary", NodeToken(kNodeKey, "gpu-1"));
  ASSERT_TRUE(by_node);
  EXPECT_EQ(by_node->status, 200);

  clock_.Advance(absl::Minutes(11));
  auto expired = Get("/api/v1/agent/package", boot);
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->status, 401);
}

TEST_F(AgentDownloadTest, NotConfiguredOrMissingSaysWhichKey) {
  Start({binary_, ""});
  auto pkg = Get("/api/v1/agent/package", "agent-secret-token");
  ASSERT_TRUE(pkg);
  EXPECT_EQ(pkg->status, 404);
  EXPECT_THAT(pkg->body, HasSubstr("server.agent_package"));
  std::filesystem::remove(binary_);
  auto bin = Get("/api/v1/agent/binary.sha256", "agent-secret-token");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->status, 404);
  EXPECT_THAT(bin->body, HasSubstr("server.agent_binary"));
  auto query = Get("/api/v1/agent/package?x=1", "agent-secret-token");
  ASSERT_TRUE(query);
  EXPECT_EQ(query->status, 400);
}

TEST_F(AgentDownloadTest, AFileReplacedOnDiskIsServedWithoutARestart) {
  StartWithBoth();
  auto v1 = Get("/api/v1/agent/package", "agent-secret-token");
  ASSERT_TRUE(v1);
  // Installing a new package: a new file renamed over the old one.
  WriteFile(package_ + ".new", "!<arch>\npackage v2, larger");
  std::filesystem::rename(package_ + ".new", package_);
  auto v2 = Get("/api/v1/agent/package", "agent-secret-token");
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->body, "!<arch>\npackage v2, larger");
  EXPECT_EQ(v2->get_header_value("X-Checksum-Sha256"), Sha256Hex(v2->body));
  EXPECT_NE(v1->get_header_value("ETag"), v2->get_header_value("ETag"));
}

TEST_F(AgentDownloadTest, LargeFilesArriveWhole) {
  std::string big(24 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131);
  WriteFile(binary_, big);
  StartWithBoth();
  auto bin = Get("/api/v1/agent/binary", "agent-secret-token");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->status, 200);
  EXPECT_EQ(bin->body.size(), big.size());
  EXPECT_TRUE(bin->body == big);
  EXPECT_EQ(bin->get_header_value("X-Checksum-Sha256"), Sha256Hex(big));
}

TEST_F(AgentDownloadTest, TooLargeIsRefusedNotRead) {
  Start({binary_, package_, /*max_bytes=*/8});
  auto bin = Get("/api/v1/agent/binary", "agent-secret-token");
  ASSERT_TRUE(bin);
  EXPECT_EQ(bin->status, 400);
  EXPECT_THAT(bin->body, HasSubstr("at most 8 bytes"));
}

}  // namespace
}  // namespace navarch
