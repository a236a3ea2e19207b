// A small Prometheus client: counters and histograms that the code updates,
// collectors that produce samples when scraped, and the text exposition
// format (version 0.0.4) that `promtool check metrics` accepts.
//
// Why not a client library: Debian has no C++ Prometheus client package, and
// what the control plane needs (a few labelled counters and histograms, and
// gauges computed from the fleet at scrape time) is small.
#ifndef NAVARCH_CONTROLPLANE_METRICS_H_
#define NAVARCH_CONTROLPLANE_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace navarch {

enum class MetricType { kCounter, kGauge, kHistogram, kUntyped };

// Label values of one series, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

// Writes one exposition. Collectors call Family() once per family, then
// Sample() for each of its series. Not thread-safe: one writer per scrape.
class MetricWriter {
 public:
  void Family(absl::string_view name, absl::string_view help, MetricType type,
              std::vector<std::string> label_names);
  // A sample of the current family; `suffix` is "_bucket", "_sum" or "_count"
  // for histograms, empty otherwise. `extra` is one more label (le="...").
  void Sample(const LabelValues& values, double value,
              absl::string_view suffix = "",
              const std::pair<std::string, std::string>* extra = nullptr);

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_;
  std::vector<std::string> label_names_;
};

// Prometheus number syntax: integers exactly, "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double v);

// A counter with labels. Thread-safe.
// Counters kept as maps keyed "a|b" (FleetStats, PoolCounters): one family
// whose labels are the key's parts, in order.
void WriteSplitCounter(MetricWriter& w, absl::string_view name,
                       absl::string_view help, std::vector<std::string> labels,
                       const std::map<std::string, int64_t>& values);

class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help,
                std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)) {}

  // `values` must have one entry per label name. `delta` >= 0.
  void Add(const LabelValues& values, double delta = 1);
  double Value(const LabelValues& values);
  void Collect(MetricWriter& w);

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  absl::Mutex mu_;
  std::map<LabelValues, double> values_ ABSL_GUARDED_BY(mu_);
};

// A histogram with labels and fixed bucket upper bounds. Thread-safe.
class HistogramFamily {
 public:
  HistogramFamily(std::string name, std::string help,
                  std::vector<std::string> label_names,
                  std::vector<double> bounds);

  void Observe(const LabelValues& values, double value);
  // Observations so far of one series (tests).
  uint64_t Count(const LabelValues& values);
  void Collect(MetricWriter& w);

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // not cumulative; one per bound
    uint64_t count = 0;
    double sum = 0;
  };
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // ascending, without +Inf
  absl::Mutex mu_;
  std::map<LabelValues, Series> series_ ABSL_GUARDED_BY(mu_);
};

// Latency buckets in seconds, 0.5 ms to 10 s: from an in-memory read to an
// fsync on a busy disk.
std::vector<double> LatencyBuckets();

// The families of one process. Register everything before serving; Render is
// thread-safe and may run concurrently with updates.
class MetricsRegistry {
 public:
  using Collector = std::function<void(MetricWriter&)>;

  // The returned references live as long as the registry.
  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names,
                                std::vector<double> bounds = LatencyBuckets());
  // Called at each scrape, after the counters and histograms, in the order
  // added. A collector must not call back into the registry.
  void AddCollector(Collector collect);

  std::string Render();

 private:
  absl::Mutex mu_;
  std::vector<std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<HistogramFamily>> histograms_
      ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

// The content type of the text format.
inline constexpr char kMetricsContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_METRICS_H_
