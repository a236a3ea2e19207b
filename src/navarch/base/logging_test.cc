#include "navarch/base/logging.h"

#include <algorithm>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

TEST(LoggingTest, JsonLinesCarryTimeLevelMessageAndFields) {
  FakeClock clock(absl::FromUnixSeconds(1767225600));
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kJson, LogLevel::kInfo,
                                       &clock));
  log.With({{"component", "fleet"}})
      .Info("node registered", {{"node_id", "n1"},
                                {"gpus", 8},
                                {"ok", true},
                                {"ratio", 0.5},
                                {"after", absl::Seconds(90)}});
  log.Debug("hidden");
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["time"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "node registered");
  EXPECT_EQ(j["component"], "fleet");
  EXPECT_EQ(j["node_id"], "n1");
  EXPECT_EQ(j["gpus"], 8);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["after"], "1m30s");
}

TEST(LoggingTest, TextFormatIsReadable) {
  FakeClock clock(absl::FromUnixSeconds(1767225600));
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kText, LogLevel::kDebug,
                                       &clock));
  log.Warn("heartbeat late", {{"node_id", "n 1"}, {"count", 3}});
  EXPECT_EQ(
      out.str(),
      "2026-01-01T00:00:00.000Z WARN heartbeat late node_id=\"n 1\" count=3\n");
}

TEST(LoggingTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLogLevel("DEBUG"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  EXPECT_FALSE(ParseLogLevel("loud").ok());
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

int CountLines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

TEST(LoggingTest, AStormOfIdenticalLinesIsCutAndCounted) {
  FakeClock clock(absl::FromUnixSeconds(1767225600));
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kText, LogLevel::kInfo,
                                       &clock));
  for (int i = 0; i < 1000; ++i) {
    log.Error("commit failed", {{"error", "disk full"}});
  }
  EXPECT_EQ(CountLines(out.str()), 5);  // the default max_repeats
  // Another line is not held back by the storm.
  log.Info("node registered", {{"node_id", "n1"}});
  EXPECT_EQ(CountLines(out.str()), 6);

  // Once the window is over, the next line written reports the count.
  clock.Advance(absl::Seconds(10));
  out.str("");
  log.Info("node registered", {{"node_id", "n2"}});
  EXPECT_EQ(out.str(),
            "2026-01-01T00:00:10.000Z ERROR commit failed error=\"disk full\" "
            "suppressed=995 suppressed_over=10s\n"
            "2026-01-01T00:00:10.000Z INFO node registered node_id=n2\n");

  // A new window admits the line again.
  out.str("");
  log.Error("commit failed", {{"error", "disk full"}});
  EXPECT_EQ(CountLines(out.str()), 1);
}

TEST(LoggingTest, LinesThatDifferInAFieldAreNotRepeats) {
  FakeClock clock;
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kJson, LogLevel::kInfo,
                                       &clock));
  for (int i = 0; i < 50; ++i) log.Info("heartbeat late", {{"node", i}});
  EXPECT_EQ(CountLines(out.str()), 50);
}

TEST(LoggingTest, RepeatsAreComparedWithoutTheTime) {
  FakeClock clock;
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kJson, LogLevel::kInfo,
                                       &clock, LogRateLimit{.max_repeats = 2}));
  for (int i = 0; i < 10; ++i) {
    log.Warn("source failing");
    clock.Advance(absl::Milliseconds(100));
  }
  EXPECT_EQ(CountLines(out.str()), 2);
  clock.Advance(absl::Seconds(10));
  log.Info("tick");
  std::istringstream lines(out.str());
  std::string line, last_warn;
  while (std::getline(lines, line)) {
    if (line.find("source failing") != std::string::npos) last_warn = line;
  }
  auto j = nlohmann::json::parse(last_warn);
  EXPECT_EQ(j["suppressed"], 8);
}

TEST(LoggingTest, TheLimitCanBeTurnedOff) {
  FakeClock clock;
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(&out, LogFormat::kText, LogLevel::kInfo,
                                       &clock, LogRateLimit{.max_repeats = 0}));
  for (int i = 0; i < 100; ++i) log.Info("same");
  EXPECT_EQ(CountLines(out.str()), 100);
}

TEST(LoggingTest, TrackedLinesAreBounded) {
  FakeClock clock;
  std::ostringstream out;
  Logger log(std::make_shared<LogSink>(
      &out, LogFormat::kText, LogLevel::kInfo, &clock,
      LogRateLimit{.max_repeats = 1, .max_tracked = 3}));
  for (int i = 0; i < 3; ++i) log.Info("line", {{"i", i}});
  // Past max_tracked a line is not limited (and not remembered).
  for (int i = 0; i < 4; ++i) log.Info("untracked");
  EXPECT_EQ(CountLines(out.str()), 7);
}

}  // namespace
}  // namespace navarch
