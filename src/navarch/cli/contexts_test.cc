// The contexts file: reading it strictly, writing it back, where it lives,
// and which connection flags, environment and contexts give a command.
#include "navarch/cli/contexts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/file.h"
#include "navarch/controlplane/test_util.h"

namespace navarch::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kTwoRegions[] = R"(current-context: eu-west
contexts:
  - name: eu-west
    server: cp.eu-west.example:50051
    token_file: eu-west.token
    tls:
      ca_file: /etc/navarch/ca.pem
  - name: us-east
    server: https://cp.us-east.example
    token: s3cret
    tls: {cert_file: c.pem, key_file: k.pem, insecure_skip_verify: true}
)";

Getenv Env(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class ContextsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/navarch_contexts_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/config.yaml";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  CliConfig TwoRegions() {
    absl::StatusOr<CliConfig> c = ParseCliConfig(kTwoRegions, path_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.value_or(CliConfig());
  }

  std::string dir_;
  std::string path_;
};

TEST_F(ContextsTest, ParsesContextsWithTheirTlsSettings) {
  CliConfig c = TwoRegions();
  EXPECT_EQ(c.current_context, "eu-west");
  ASSERT_EQ(c.contexts.size(), 2u);
  EXPECT_EQ(c.contexts[0].name, "eu-west");
  EXPECT_EQ(c.contexts[0].server, "cp.eu-west.example:50051");
  EXPECT_EQ(c.contexts[0].token_file, "eu-west.token");
  EXPECT_EQ(c.contexts[0].ca_file, "/etc/navarch/ca.pem");
  EXPECT_EQ(c.contexts[1].token, "s3cret");
  EXPECT_EQ(c.contexts[1].cert_file, "c.pem");
  EXPECT_TRUE(c.contexts[1].insecure_skip_verify);
  EXPECT_EQ(c.KnownNames(), "eu-west, us-east");
  EXPECT_EQ(CliConfig().KnownNames(), "none");
}

TEST_F(ContextsTest, AnEmptyFileHasNoContexts) {
  absl::StatusOr<CliConfig> c = ParseCliConfig("", path_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, CliConfig());
}

TEST_F(ContextsTest, MistakesAreErrorsWithTheirLine) {
  struct Case {
    std::string text, error;
  } cases[] = {
      {"contexts:\n  - name: a\n    server: h:1\n    sever: x\n",
       "config.yaml:4:5: contexts[0]: unknown key 'sever'"},
      {"contexts:\n  - name: a\n    server: h:1\n  - name: a\n    server: "
       "h:2\n",
       "context \"a\" is defined twice (first at line 2)"},
      {"contexts:\n  - name: a\n", "context \"a\" needs a server"},
      {"contexts:\n  - server: h:1\n", "a context needs a name"},
      {"contexts:\n  - name: a b\n    server: h:1\n",
       "invalid context name \"a b\""},
      {"contexts:\n  - name: a\n    server: h:1\n    token: t\n    "
       "token_file: f\n",
       "give token or token_file, not both"},
      {"contexts:\n  - name: a\n    server: h:1\n    tls: "
       "{insecure_skip_verify: "
       "maybe}\n",
       "insecure_skip_verify"},
      {"contexts: {a: 1}\n", "expected a list"},
      {"current-context: [a]\n", "current-context"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<CliConfig> parsed = ParseCliConfig(c.text, path_);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.error)) << c.text;
  }
}

TEST_F(ContextsTest, RenderedFileReadsBackTheSame) {
  CliConfig c = TwoRegions();
  absl::StatusOr<CliConfig> back = ParseCliConfig(RenderCliConfig(c), path_);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << RenderCliConfig(c);
  EXPECT_EQ(*back, c);
}

TEST_F(ContextsTest, SaveWritesTheFileForItsOwnerOnly) {
  std::string path = dir_ + "/new/navarch/config.yaml";
  ASSERT_TRUE(SaveCliConfig(path, TwoRegions()).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(stat((dir_ + "/new/navarch").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  absl::StatusOr<CliConfig> back = LoadCliConfig(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, TwoRegions());
  // Replaced whole: no temporary file is left beside it.
  int files = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(dir_ + "/new/navarch")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(ContextsTest, AMissingFileIsAnEmptyConfigButABrokenOneIsAnError) {
  absl::StatusOr<CliConfig> missing = LoadCliConfig(dir_ + "/none.yaml");
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->contexts.empty());
  testing::WriteTestFile(path_, "contexts: [\n");
  EXPECT_FALSE(LoadCliConfig(path_).ok());
}

TEST_F(ContextsTest, ConfigPathPrecedence) {
  EXPECT_EQ(ConfigPath("/f.yaml", Env({{"NAVARCH_CONFIG", "/e.yaml"}})),
            "/f.yaml");
  EXPECT_EQ(ConfigPath("", Env({{"NAVARCH_CONFIG", "/e.yaml"},
                                {"XDG_CONFIG_HOME", "/x"}})),
            "/e.yaml");
  EXPECT_EQ(ConfigPath("", Env({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}})),
            "/x/navarch/config.yaml");
  EXPECT_EQ(ConfigPath("", Env({{"HOME", "/h"}})),
            "/h/.config/navarch/config.yaml");
}

TEST_F(ContextsTest, ContextNames) {
  EXPECT_TRUE(ValidateContextName("eu-west_1.prod").ok());
  EXPECT_FALSE(ValidateContextName("").ok());
  EXPECT_FALSE(ValidateContextName("eu/west").ok());
  EXPECT_FALSE(ValidateContextName(std::string(64, 'a')).ok());
}

TEST_F(ContextsTest, TheCurrentContextGivesTheConnection) {
  testing::WriteTestFile(dir_ + "/eu-west.token", "  eu-token\n");
  absl::StatusOr<ConnectionOptions> o =
      ResolveConnection({}, "", TwoRegions(), path_, Env({}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server, "cp.eu-west.example:50051");
  EXPECT_EQ(o->token, "eu-token");  // relative to the file, trimmed
  EXPECT_EQ(o->ca_file, "/etc/navarch/ca.pem");
  EXPECT_FALSE(o->insecure_skip_verify);
}

TEST_F(ContextsTest, TheContextFlagPicksAnother) {
  absl::StatusOr<ConnectionOptions> o = ResolveConnection(
      {}, "us-east", TwoRegions(), path_, Env({{"HOME", "/h"}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server, "https://cp.us-east.example");
  EXPECT_EQ(o->token, "s3cret");
  EXPECT_EQ(o->cert_file, dir_ + "/c.pem");
  EXPECT_TRUE(o->insecure_skip_verify);
}

TEST_F(ContextsTest, FlagsAndEnvironmentWinOverTheContext) {
  Overrides over;
  over.server = "127.0.0.1:7";
  over.token = "flag-token";  // and eu-west's token_file is not even read
  over.ca_file = "/other/ca.pem";
  absl::StatusOr<ConnectionOptions> o =
      ResolveConnection(over, "", TwoRegions(), path_, Env({}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server, "127.0.0.1:7");
  EXPECT_EQ(o->token, "flag-token");
  EXPECT_EQ(o->ca_file, "/other/ca.pem");
}

TEST_F(ContextsTest, WithoutContextsTheDefaultsApply) {
  absl::StatusOr<ConnectionOptions> o =
      ResolveConnection({}, "", CliConfig(), path_, Env({}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server, "localhost:50051");
  EXPECT_EQ(o->token, "");
}

TEST_F(ContextsTest, AnUnknownContextListsTheKnownOnes) {
  absl::StatusOr<ConnectionOptions> o =
      ResolveConnection({}, "ap-south", TwoRegions(), path_, Env({}));
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(o.status().message(),
              HasSubstr("context \"ap-south\" is not in " + path_ +
                        " (known: eu-west, us-east;"));
  CliConfig stale = TwoRegions();
  stale.current_context = "gone";
  EXPECT_FALSE(ResolveConnection({}, "", stale, path_, Env({})).ok());
}

TEST_F(ContextsTest, AnUnreadableTokenFileNamesTheContext) {
  absl::StatusOr<ConnectionOptions> o =
      ResolveConnection({}, "", TwoRegions(), path_, Env({}));
  ASSERT_FALSE(o.ok());
  EXPECT_THAT(o.status().message(),
              HasSubstr("context \"eu-west\": cannot read token_file " + dir_ +
                        "/eu-west.token"));
  testing::WriteTestFile(dir_ + "/eu-west.token", "\n");
  o = ResolveConnection({}, "", TwoRegions(), path_, Env({}));
  ASSERT_FALSE(o.ok());
  EXPECT_THAT(o.status().message(), HasSubstr("is empty"));
}

TEST_F(ContextsTest, TildeMeansHome) {
  Context c{.name = "a", .server = "h:1", .token_file = "~/t"};
  testing::WriteTestFile(dir_ + "/t", "tok");
  absl::StatusOr<ConnectionOptions> o =
      ContextConnection(c, "/elsewhere/config.yaml", Env({{"HOME", dir_}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->token, "tok");
}

}  // namespace
}  // namespace navarch::cli
