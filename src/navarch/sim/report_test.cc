// The report's text for people and the HTML charts' layout.
#include "navarch/sim/report.h"

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace navarch::sim {
namespace {

using ::testing::HasSubstr;

TEST(HumanTest, DurationsToAboutThreeFigures) {
  EXPECT_EQ(HumanDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(9122830)), "9.12ms");
  EXPECT_EQ(HumanDuration(absl::Microseconds(912)), "912µs");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(12)), "12ns");
  EXPECT_EQ(HumanDuration(absl::Seconds(12.345678)), "12.3s");
  EXPECT_EQ(HumanDuration(absl::Seconds(18)), "18s");
  EXPECT_EQ(HumanDuration(absl::Seconds(69.705)), "1m9.7s");
  EXPECT_EQ(HumanDuration(absl::Seconds(59.97)), "1m");
  EXPECT_EQ(HumanDuration(absl::Seconds(9.704730147)), "9.7s");
  EXPECT_EQ(HumanDuration(absl::Seconds(7503.6)), "2h5m4s");
  EXPECT_EQ(HumanDuration(absl::Hours(1)), "1h");
}

TEST(HumanTest, CountsAndPercents) {
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(950), "950");
  EXPECT_EQ(HumanCount(12.345), "12.3");
  EXPECT_EQ(HumanCount(4580), "4.58k");
  EXPECT_EQ(HumanCount(195882), "196k");
  EXPECT_EQ(HumanCount(999999), "1M");
  EXPECT_EQ(HumanCount(1234567), "1.23M");
  EXPECT_EQ(HumanPercent(94.0), "94%");
  EXPECT_EQ(HumanPercent(97.333333333), "97.3%");
  EXPECT_EQ(HumanPercent(100), "100%");
}

// A small report: two nodes for three seconds, one failure.
nlohmann::json SmallReport() {
  return nlohmann::json::parse(R"({
    "summary": {
      "name": "small", "mode": "scenario", "seed": 7,
      "simulated_seconds": 69.7051234, "nodes_started": 2,
      "nodes_failed_to_start": 0, "failures_injected": 1,
      "cascading_failures": 0, "correlated_failures": 0, "outages": 0,
      "recoveries": 0, "replacements": 0,
      "healthy": {"min_percent": 97.33333333, "avg_percent": 99.1},
      "time_to_detect": {"count": 0}, "time_to_replace": {"count": 0},
      "assertions": [], "errors": [],
      "failures_by_type": {"xid_error": 1}, "failures_by_xid": {"79": 1}
    },
    "timeline": [
      {"t": 1, "healthy": 2, "degraded": 0, "unhealthy": 0, "cordoned": 0,
       "draining": 0, "failures": 0, "recoveries": 0, "replacements": 0},
      {"t": 2, "healthy": 1, "degraded": 0, "unhealthy": 1, "cordoned": 0,
       "draining": 0, "failures": 1, "recoveries": 0, "replacements": 0},
      {"t": 3, "healthy": 1, "degraded": 0, "unhealthy": 1, "cordoned": 0,
       "draining": 0, "failures": 1, "recoveries": 0, "replacements": 0}
    ],
    "policy": {"rules": []},
    "nodes": [],
    "run": {"events": 120, "wall_seconds": 0.00912283,
            "events_per_second": 195882.4, "node_hours": 0.04}
  })");
}

TEST(SummaryTextTest, RoundedForPeople) {
  EXPECT_EQ(SummaryText(SmallReport(), 7),
            "Simulated 1m9.7s in 9.12ms (196k events/s), seed 7\n"
            "Nodes started 2, failures 1, recoveries 0, replacements 0, "
            "min healthy 97.3%\n");
}

// Every line chart of the page, as SVG text.
std::vector<std::string> LineCharts(const std::string& html) {
  std::vector<std::string> charts;
  std::regex svg("<svg[\\s\\S]*?</svg>");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), svg);
       it != std::sregex_iterator(); ++it) {
    if (it->str().find("<polyline") != std::string::npos) {
      charts.push_back(it->str());
    }
  }
  return charts;
}

std::vector<std::string> All(const std::string& text, const std::string& re) {
  std::vector<std::string> found;
  std::regex r(re);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), r);
       it != std::sregex_iterator(); ++it) {
    found.push_back((*it)[1].str());
  }
  return found;
}

TEST(ChartTest, TheLegendSitsBelowTheTitle) {
  std::vector<std::string> charts = LineCharts(RenderHtml(SmallReport()));
  ASSERT_EQ(charts.size(), 2u);
  // The second title is long enough to reach a legend beside it.
  ASSERT_THAT(charts[1], HasSubstr("Failures, recoveries and replacements"));
  for (const std::string& chart : charts) {
    std::vector<std::string> title =
        All(chart, "<text x='\\d+' y='(\\d+)' class='title'>");
    ASSERT_EQ(title.size(), 1u);
    std::vector<std::string> boxes =
        All(chart, "<rect x='\\d+' y='(\\d+)' width='10' height='10'");
    ASSERT_FALSE(boxes.empty());
    for (const std::string& y : boxes) {
      // A legend box starts below the title's baseline (its descenders
      // included), so the two never share a line.
      EXPECT_GE(std::stoi(y), std::stoi(title[0]) + 4) << chart;
    }
  }
}

TEST(ChartTest, SmallChartsNeverRepeatATickLabel) {
  for (const std::string& chart : LineCharts(RenderHtml(SmallReport()))) {
    std::vector<std::string> y =
        All(chart, "class='grid'/><text[^>]*>([^<]*)<");
    std::vector<std::string> x =
        All(chart, "text-anchor='middle'>([^<]*)</text>");
    EXPECT_GE(y.size(), 2u) << chart;
    EXPECT_GE(x.size(), 2u) << chart;
    EXPECT_EQ(std::set<std::string>(y.begin(), y.end()).size(), y.size())
        << chart;
    EXPECT_EQ(std::set<std::string>(x.begin(), x.end()).size(), x.size())
        << chart;
  }
}

}  // namespace
}  // namespace navarch::sim
