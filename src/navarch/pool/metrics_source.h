// Metrics sources: where a pool's scaling signals come from besides the
// fleet's own GPU utilisation (always read from heartbeats by the pool
// manager). Configured per pool under `metrics:` (docs/autoscaling.md):
//   http_json   GET a URL returning {"pending_jobs": N, "queue_depth": M,
//               "utilization": U} (every key optional, at least one present)
//   command     run a program that prints that JSON (e.g. around squeue)
//   prometheus  instant PromQL queries over Prometheus' HTTP API
// A failing source makes the pool hold its size (the autoscaler has no
// signal) and is reported by the pool manager as an event and a metric; the
// source itself logs each change between answering and failing.
//
// Every value a source reports passes one check (CheckExternalMetrics) before
// an autoscaler sees it: a count that is negative, not finite or above
// kMaxExternalCount, or a utilisation outside 0..100, fails the fetch like an
// unreachable source, so a broken query holds the pool instead of shrinking
// it to min_nodes.
#ifndef NAVARCH_POOL_METRICS_SOURCE_H_
#define NAVARCH_POOL_METRICS_SOURCE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"

namespace navarch {

struct ExternalMetrics {
  std::optional<int> queue_depth;
  std::optional<int> pending_jobs;
  std::optional<double> utilization;  // Percent, 0..100.
};

// The largest queue_depth or pending_jobs a source may report.
inline constexpr int kMaxExternalCount = 1'000'000'000;

// A source's numbers before the check.
struct RawMetrics {
  std::optional<double> queue_depth;
  std::optional<double> pending_jobs;
  std::optional<double> utilization;
};

// What a count with a fraction becomes. http_json and command define their
// own JSON, so a fraction there is a bug in the producer; a PromQL query
// (avg, rate) gives fractions as a matter of course.
enum class CountFractions {
  kReject,
  kRoundHalfUp,  // to the nearest integer, halves up: 2.5 -> 3, 2.49 -> 2
};

// The one check of every source's values (see above). INVALID_ARGUMENT
// naming the key and the value.
absl::StatusOr<ExternalMetrics> CheckExternalMetrics(const RawMetrics& raw,
                                                     CountFractions fractions);

// Implementations block (network, a child process) for at most their
// configured timeout. Thread-compatible: one pool manager tick at a time.
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual absl::string_view name() const = 0;
  virtual absl::StatusOr<ExternalMetrics> Fetch() = 0;
};

// Null for `fleet` (no external source). `clock` times the deadlines
// (SteadyNow); it must outlive the source. `log` gets a line when the source
// starts failing (warning, with the reason), when the reason changes, and
// when it answers again (info); none while it keeps failing the same way.
std::unique_ptr<MetricsSource> MakeMetricsSource(
    const MetricsSourceConfig& config, Clock& clock, Logger log = NullLogger());

// The JSON shape of http_json and command, checked by CheckExternalMetrics
// with kReject. Unknown keys are ignored; at least one of the three keys must
// be present.
absl::StatusOr<ExternalMetrics> ParseMetricsJson(absl::string_view body);

// One number from a Prometheus /api/v1/query response: a scalar, or a
// vector with exactly one sample. NaN and Inf are errors (the range is
// CheckExternalMetrics').
absl::StatusOr<double> ParsePrometheusValue(absl::string_view body);

struct CommandOutput {
  int exit_code = -1;  // 128 + signal when killed.
  bool timed_out = false;
  std::string stdout_text;  // At most 1 MiB.
  std::string stderr_text;  // The last 4 KiB.
};

// Runs argv (argv[0] searched in $PATH) with stdin from /dev/null, in its own
// process group, killed once `timeout` has passed on `clock` (SteadyNow). The
// child runs in real time: with a FakeClock a hung command is only killed
// when the test advances the clock. An error only when it could not be
// started.
absl::StatusOr<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout, Clock& clock);

}  // namespace navarch

#endif  // NAVARCH_POOL_METRICS_SOURCE_H_
