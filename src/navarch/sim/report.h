// Writes a run's report: report.json (summary, timeline, nodes, policy, run)
// and report.html, one self-contained page (inline SVG charts, no scripts or
// styles from elsewhere) showing the same.
#ifndef NAVARCH_SIM_REPORT_H_
#define NAVARCH_SIM_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace navarch::sim {

// Creates `dir` if needed and writes both files.
absl::Status WriteReports(const std::string& dir, const nlohmann::json& report);

std::string RenderHtml(const nlohmann::json& report);

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_REPORT_H_
