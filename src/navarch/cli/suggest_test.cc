#include "navarch/cli/suggest.h"

#include "gtest/gtest.h"

namespace navarch::cli {
namespace {

TEST(EditDistanceTest, SwapsAreOneEdit) {
  EXPECT_EQ(EditDistance("list", "list"), 0);
  EXPECT_EQ(EditDistance("lsit", "list"), 1);
  EXPECT_EQ(EditDistance("lst", "list"), 1);
  EXPECT_EQ(EditDistance("lisst", "list"), 1);
  EXPECT_EQ(EditDistance("", "get"), 3);
  EXPECT_EQ(EditDistance("cordon", "uncordon"), 2);
}

TEST(NearestTest, ClosePrefixOrNothing) {
  std::vector<std::string> commands = {"list",  "get",    "cordon",  "uncordon",
                                       "drain", "events", "explain", "version"};
  EXPECT_EQ(Nearest("lsit", commands), "list");
  EXPECT_EQ(Nearest("evnets", commands), "events");
  EXPECT_EQ(Nearest("verison", commands), "version");
  EXPECT_EQ(Nearest("ver", commands), "version");  // the only prefix
  EXPECT_EQ(Nearest("exp", commands), "explain");
  EXPECT_EQ(Nearest("e", commands), std::nullopt);  // too short to guess
  EXPECT_EQ(Nearest("frobnicate", commands), std::nullopt);
  EXPECT_EQ(Nearest("xyz", commands), std::nullopt);
}

class UnknownCommandTest : public ::testing::Test {
 protected:
  UnknownCommandTest() {
    app_.add_option("-s,--server", value_);
    app_.add_flag("--insecure");
    app_.add_subcommand("list", "nodes");
    app_.add_subcommand("get", "one node")->add_option("node", value_);
    CLI::App* pools = app_.add_subcommand("pools", "pools")->alias("pool");
    pools->add_subcommand("list", "pools");
    pools->add_subcommand("scale", "scale");
  }
  CLI::App app_{"test", "navarch"};
  std::string value_;
};

TEST_F(UnknownCommandTest, NamesTheTypoAndTheNearestCommand) {
  EXPECT_EQ(UnknownCommand(app_, {"lsit"}),
            "unknown command 'lsit'; did you mean 'list'?");
  // Option values are not commands.
  EXPECT_EQ(UnknownCommand(app_, {"-s", "host:1", "--insecure", "lsit"}),
            "unknown command 'lsit'; did you mean 'list'?");
  EXPECT_EQ(UnknownCommand(app_, {"--server=h", "lsit"}),
            "unknown command 'lsit'; did you mean 'list'?");
  EXPECT_EQ(UnknownCommand(app_, {"pool", "sacle", "x"}),
            "unknown command 'pools sacle'; did you mean 'pools scale'?");
  EXPECT_EQ(UnknownCommand(app_, {"frobnicate"}),
            "unknown command 'frobnicate' (commands: list, get, pools, pool)");
}

TEST_F(UnknownCommandTest, NothingWhenTheCommandsAreRight) {
  EXPECT_EQ(UnknownCommand(app_, {"list", "--bogus"}), std::nullopt);
  EXPECT_EQ(UnknownCommand(app_, {"get", "lsit"}), std::nullopt);  // a node
  EXPECT_EQ(UnknownCommand(app_, {"pools", "list"}), std::nullopt);
  EXPECT_EQ(UnknownCommand(app_, {"-s", "lsit"}), std::nullopt);
  EXPECT_EQ(UnknownCommand(app_, {}), std::nullopt);
}

}  // namespace
}  // namespace navarch::cli
