// Writes a run's report: report.json (summary, timeline, nodes, policy, run)
// and report.html, one self-contained page (inline SVG charts, no scripts or
// styles from elsewhere) showing the same.
#ifndef NAVARCH_SIM_REPORT_H_
#define NAVARCH_SIM_REPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace navarch::sim {

// Numbers for people, in the simulator's text output; report.json keeps the
// exact values. A duration to about three figures: 0s, 912µs, 9.12ms, 12.3s,
// 1m9.7s (tenths below an hour), 2h5m3s (whole seconds above).
std::string HumanDuration(absl::Duration d);
// Three significant figures with k, M, G: 950, 4.58k, 196k, 1.2M.
std::string HumanCount(double v);
// One decimal, none when it is 0: 94%, 97.3%.
std::string HumanPercent(double percent);

// The two summary lines the simulator prints after a run ("Simulated 1m9.7s
// in 9.12ms (196k events/s), seed 42" and the node counts), from its report.
std::string SummaryText(const nlohmann::json& report, uint64_t seed);

// Creates `dir` if needed and writes both files.
absl::Status WriteReports(const std::string& dir, const nlohmann::json& report);

std::string RenderHtml(const nlohmann::json& report);

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_REPORT_H_
