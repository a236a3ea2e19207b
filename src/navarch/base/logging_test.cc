#include "navarch/base/logging.h"

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

}  // namespace
}  // namespace navarch
