// Results as JSON (one object, for scripts) and as text (for people).
#ifndef NAVARCH_BENCH_REPORT_H_
#define NAVARCH_BENCH_REPORT_H_

#include <string>

#include "navarch/bench/load.h"
#include "navarch/bench/scale_bench.h"
#include "navarch/bench/xid_bench.h"
#include "nlohmann/json.hpp"

namespace navarch::bench {

// Milliseconds as a double (JSON figures).
double Ms(absl::Duration d);

// requests, errors, throughput_rps, p50_ms, p90_ms, p99_ms, p999_ms, max_ms,
// mean_ms, window_s, and error details when there were errors.
nlohmann::json ToJson(const RunResult& r);
nlohmann::json ToJson(const XidResult& r);
nlohmann::json ToJson(const ScaleResult& r);

// A few aligned lines.
std::string ToText(const std::string& title, const RunResult& r);
std::string ToText(const XidResult& r);
std::string ToText(const ScaleResult& r);

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_REPORT_H_
