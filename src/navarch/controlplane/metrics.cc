#include "navarch/controlplane/metrics.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace navarch {
namespace {

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kUntyped:
      return "untyped";
  }
  return "untyped";
}

// HELP text escapes backslash and newline; label values also the quote.
void AppendEscaped(std::string* out, absl::string_view s, bool quote) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '"':
        if (quote) {
          out->append("\\\"");
        } else {
          out->push_back(c);
        }
        break;
      default:
        out->push_back(c);
    }
  }
}

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counters are integers most of the time; print them exactly rather than
  // in %g's six significant digits.
  if (std::fabs(v) < 9007199254740992.0 && v == std::trunc(v)) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

void MetricWriter::Family(absl::string_view name, absl::string_view help,
                          MetricType type,
                          std::vector<std::string> label_names) {
  name_ = std::string(name);
  label_names_ = std::move(label_names);
  absl::StrAppend(&out_, "# HELP ", name, " ");
  AppendEscaped(&out_, help, /*quote=*/false);
  absl::StrAppend(&out_, "\n# TYPE ", name, " ", TypeName(type), "\n");
}

void MetricWriter::Sample(const LabelValues& values, double value,
                          absl::string_view suffix,
                          const std::pair<std::string, std::string>* extra) {
  absl::StrAppend(&out_, name_, suffix);
  const size_t n = std::min(values.size(), label_names_.size());
  if (n > 0 || extra != nullptr) {
    out_.push_back('{');
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) out_.push_back(',');
      absl::StrAppend(&out_, label_names_[i], "=\"");
      AppendEscaped(&out_, values[i], /*quote=*/true);
      out_.push_back('"');
    }
    if (extra != nullptr) {
      if (n > 0) out_.push_back(',');
      absl::StrAppend(&out_, extra->first, "=\"");
      AppendEscaped(&out_, extra->second, /*quote=*/true);
      out_.push_back('"');
    }
    out_.push_back('}');
  }
  absl::StrAppend(&out_, " ", FormatMetricValue(value), "\n");
}

// ----------------------------------------------------------------- counter

void CounterFamily::Add(const LabelValues& values, double delta) {
  if (!(delta >= 0)) return;  // a counter never goes down (NaN too)
  absl::MutexLock lock(&mu_);
  values_[values] += delta;
}

double CounterFamily::Value(const LabelValues& values) {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(values);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::Collect(MetricWriter& w) {
  absl::MutexLock lock(&mu_);
  w.Family(name_, help_, MetricType::kCounter, label_names_);
  for (const auto& [labels, value] : values_) w.Sample(labels, value);
}

// --------------------------------------------------------------- histogram

HistogramFamily::HistogramFamily(std::string name, std::string help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

void HistogramFamily::Observe(const LabelValues& values, double value) {
  if (std::isnan(value)) return;
  absl::MutexLock lock(&mu_);
  Series& s = series_[values];
  if (s.buckets.empty()) s.buckets.resize(bounds_.size());
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.sum += value;
}

uint64_t HistogramFamily::Count(const LabelValues& values) {
  absl::MutexLock lock(&mu_);
  auto it = series_.find(values);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::Collect(MetricWriter& w) {
  absl::MutexLock lock(&mu_);
  w.Family(name_, help_, MetricType::kHistogram, label_names_);
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      std::pair<std::string, std::string> le{"le",
                                             FormatMetricValue(bounds_[i])};
      w.Sample(labels, static_cast<double>(cumulative), "_bucket", &le);
    }
    std::pair<std::string, std::string> inf{"le", "+Inf"};
    w.Sample(labels, static_cast<double>(s.count), "_bucket", &inf);
    w.Sample(labels, s.sum, "_sum");
    w.Sample(labels, static_cast<double>(s.count), "_count");
  }
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

// ---------------------------------------------------------------- registry

CounterFamily& MetricsRegistry::AddCounter(
    std::string name, std::string help, std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  counters_.push_back(std::make_unique<CounterFamily>(
      std::move(name), std::move(help), std::move(label_names)));
  return *counters_.back();
}

HistogramFamily& MetricsRegistry::AddHistogram(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  histograms_.push_back(std::make_unique<HistogramFamily>(
      std::move(name), std::move(help), std::move(label_names),
      std::move(bounds)));
  return *histograms_.back();
}

void MetricsRegistry::AddCollector(Collector collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsRegistry::Render() {
  // Collectors read the fleet, which has locks of its own: run them without
  // ours, so nothing that updates a counter ever waits for a scrape.
  std::vector<CounterFamily*> counters;
  std::vector<HistogramFamily*> histograms;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (auto& c : counters_) counters.push_back(c.get());
    for (auto& h : histograms_) histograms.push_back(h.get());
    collectors = collectors_;
  }
  MetricWriter w;
  for (CounterFamily* c : counters) c->Collect(w);
  for (HistogramFamily* h : histograms) h->Collect(w);
  for (const Collector& collect : collectors) collect(w);
  return w.Take();
}

void WriteSplitCounter(MetricWriter& w, absl::string_view name,
                       absl::string_view help, std::vector<std::string> labels,
                       const std::map<std::string, int64_t>& values) {
  const size_t n = labels.size();
  w.Family(name, help, MetricType::kCounter, std::move(labels));
  for (const auto& [key, value] : values) {
    LabelValues v;
    if (n > 0) v = absl::StrSplit(key, absl::MaxSplits('|', n - 1));
    v.resize(n);
    w.Sample(v, static_cast<double>(value));
  }
}

}  // namespace navarch
