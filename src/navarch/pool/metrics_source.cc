#include "navarch/pool/metrics_source.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/subprocess.h"
#include "navarch/net/http_client.h"

namespace navarch {
namespace {

constexpr size_t kMaxStdout = 1 << 20;
constexpr size_t kKeepStderr = 4096;

// One source before the shared check; CheckedSource adds the check and the
// logging, so a new source cannot skip either.
class RawSource {
 public:
  virtual ~RawSource() = default;
  virtual absl::string_view name() const = 0;
  // What failed, as the start of an error message ("GET <url>").
  virtual std::string context() const = 0;
  virtual CountFractions fractions() const = 0;
  virtual absl::StatusOr<RawMetrics> FetchRaw() = 0;
};

class CheckedSource final : public MetricsSource {
 public:
  CheckedSource(std::unique_ptr<RawSource> raw, Logger log)
      : raw_(std::move(raw)),
        log_(log.With({{"source", std::string(raw_->name())}})) {}
  absl::string_view name() const override { return raw_->name(); }
  absl::StatusOr<ExternalMetrics> Fetch() override {
    absl::StatusOr<ExternalMetrics> m = FetchChecked();
    if (!m.ok() && !failing_) {
      log_.Warn("metrics source failing; the pool holds its size",
                {{"error", std::string(m.status().message())}});
    } else if (m.ok() && failing_) {
      log_.Info("metrics source answers again");
    }
    failing_ = !m.ok();
    return m;
  }

 private:
  absl::StatusOr<ExternalMetrics> FetchChecked() {
    absl::StatusOr<RawMetrics> raw = raw_->FetchRaw();
    if (!raw.ok()) return raw.status();
    absl::StatusOr<ExternalMetrics> m =
        CheckExternalMetrics(*raw, raw_->fractions());
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(raw_->context(), ": ", m.status().message()));
    }
    return m;
  }

  const std::unique_ptr<RawSource> raw_;
  const Logger log_;
  bool failing_ = false;
};

// The JSON of http_json and command, before the range check.
absl::StatusOr<RawMetrics> ParseRawMetricsJson(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON object like {\"queue_depth\": 12}, got: ",
                     BodySnippet(body)));
  }
  RawMetrics m;
  for (auto [key, field] : {std::pair{"queue_depth", &m.queue_depth},
                            std::pair{"pending_jobs", &m.pending_jobs},
                            std::pair{"utilization", &m.utilization}}) {
    if (!j.contains(key)) continue;
    const nlohmann::json& v = j[key];
    if (!v.is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", key, "' is not a number: ", v.dump()));
    }
    *field = v.get<double>();
  }
  if (!m.queue_depth && !m.pending_jobs && !m.utilization) {
    return absl::InvalidArgumentError(
        absl::StrCat("none of queue_depth, pending_jobs, utilization in: ",
                     BodySnippet(body)));
  }
  return m;
}

class HttpJsonSource final : public RawSource {
 public:
  explicit HttpJsonSource(MetricsSourceConfig c, Clock& clock)
      : c_(std::move(c)), clock_(clock) {}
  absl::string_view name() const override { return "http_json"; }
  std::string context() const override { return absl::StrCat("GET ", c_.url); }
  CountFractions fractions() const override { return CountFractions::kReject; }
  absl::StatusOr<RawMetrics> FetchRaw() override {
    HttpRequest req;
    req.url = c_.url;
    req.headers = c_.headers;
    req.headers.emplace("Accept", "application/json");
    req.timeout = c_.timeout;
    req.max_response_bytes = 1 << 20;
    req.clock = &clock_;
    absl::StatusOr<HttpResponse> r = HttpDo(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) {
      return absl::UnavailableError(absl::StrCat(
          "GET ", c_.url, " returned ", r->status, ": ", BodySnippet(r->body)));
    }
    absl::StatusOr<RawMetrics> m = ParseRawMetricsJson(r->body);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context(), ": ", m.status().message()));
    }
    return m;
  }

 private:
  const MetricsSourceConfig c_;
  Clock& clock_;
};

class CommandSource final : public RawSource {
 public:
  CommandSource(MetricsSourceConfig c, Clock& clock)
      : c_(std::move(c)), clock_(clock) {}
  absl::string_view name() const override { return "command"; }
  std::string context() const override {
    return absl::StrCat("command '", absl::StrJoin(c_.command, " "), "'");
  }
  CountFractions fractions() const override { return CountFractions::kReject; }
  absl::StatusOr<RawMetrics> FetchRaw() override {
    absl::StatusOr<CommandOutput> out =
        RunCommand(c_.command, c_.timeout, clock_);
    if (!out.ok()) return out.status();
    if (out->timed_out) {
      return absl::DeadlineExceededError(
          absl::StrCat(context(), " ran past its timeout of ",
                       absl::FormatDuration(c_.timeout), " and was killed"));
    }
    if (out->exit_code != 0) {
      return absl::UnavailableError(absl::StrCat(
          context(), " exited with ", out->exit_code,
          out->stderr_text.empty()
              ? ""
              : absl::StrCat(": ", BodySnippet(out->stderr_text))));
    }
    absl::StatusOr<RawMetrics> m = ParseRawMetricsJson(out->stdout_text);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context(), ": ", m.status().message()));
    }
    return m;
  }

 private:
  const MetricsSourceConfig c_;
  Clock& clock_;
};

class PrometheusSource final : public RawSource {
 public:
  PrometheusSource(MetricsSourceConfig c, Clock& clock)
      : c_(std::move(c)), clock_(clock) {
    while (!c_.url.empty() && c_.url.back() == '/') c_.url.pop_back();
  }
  absl::string_view name() const override { return "prometheus"; }
  std::string context() const override {
    return absl::StrCat("prometheus ", c_.url);
  }
  CountFractions fractions() const override {
    return CountFractions::kRoundHalfUp;
  }
  absl::StatusOr<RawMetrics> FetchRaw() override {
    RawMetrics m;
    for (auto [what, query, field] :
         {std::tuple{"queue_depth", &c_.queue_depth_query, &m.queue_depth},
          std::tuple{"pending_jobs", &c_.pending_jobs_query, &m.pending_jobs},
          std::tuple{"utilization", &c_.utilization_query, &m.utilization}}) {
      if (query->empty()) continue;
      absl::StatusOr<double> v = Query(what, *query);
      if (!v.ok()) return v.status();
      *field = *v;
    }
    return m;
  }

 private:
  absl::StatusOr<double> Query(const char* what, const std::string& q) {
    HttpRequest req;
    req.url = AddQueryParam(absl::StrCat(c_.url, "/api/v1/query"), "query", q);
    req.headers = c_.headers;
    req.timeout = c_.timeout;
    req.max_response_bytes = 1 << 20;
    req.clock = &clock_;
    absl::StatusOr<HttpResponse> r = HttpDo(req);
    if (!r.ok()) return r.status();
    absl::StatusOr<double> v = ParsePrometheusValue(r->body);
    if (!v.ok()) {
      return absl::Status(
          r->status == 200 ? v.status().code() : absl::StatusCode::kUnavailable,
          absl::StrCat("prometheus query for ", what, " (", q, "): HTTP ",
                       r->status, ": ", v.status().message()));
    }
    return v;
  }

  MetricsSourceConfig c_;
  Clock& clock_;
};

// One count: finite, non-negative, at most kMaxExternalCount, and integral
// or rounded as `fractions` says.
absl::StatusOr<int> CheckCount(const char* key, double v,
                               CountFractions fractions) {
  const bool integral = std::isfinite(v) && v == std::floor(v);
  if (!std::isfinite(v) || v < 0 || v > kMaxExternalCount ||
      (!integral && fractions == CountFractions::kReject)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", key, "' must be ",
        fractions == CountFractions::kReject ? "an integer" : "a number",
        " in 0..", kMaxExternalCount, ", got ", v));
  }
  return static_cast<int>(std::floor(v + 0.5));
}

}  // namespace

absl::StatusOr<ExternalMetrics> CheckExternalMetrics(const RawMetrics& raw,
                                                     CountFractions fractions) {
  ExternalMetrics m;
  for (auto [key, from, to] :
       {std::tuple{"queue_depth", &raw.queue_depth, &m.queue_depth},
        std::tuple{"pending_jobs", &raw.pending_jobs, &m.pending_jobs}}) {
    if (!from->has_value()) continue;
    absl::StatusOr<int> v = CheckCount(key, **from, fractions);
    if (!v.ok()) return v.status();
    *to = *v;
  }
  if (raw.utilization) {
    const double u = *raw.utilization;
    if (!std::isfinite(u) || u < 0 || u > 100) {
      return absl::InvalidArgumentError(
          absl::StrCat("'utilization' must be a number in 0..100, got ", u));
    }
    m.utilization = u;
  }
  return m;
}

std::unique_ptr<MetricsSource> MakeMetricsSource(const MetricsSourceConfig& c,
                                                 Clock& clock, Logger log) {
  std::unique_ptr<RawSource> raw;
  switch (c.type) {
    case MetricsSourceType::kFleet:
      return nullptr;
    case MetricsSourceType::kHttpJson:
      raw = std::make_unique<HttpJsonSource>(c, clock);
      break;
    case MetricsSourceType::kCommand:
      raw = std::make_unique<CommandSource>(c, clock);
      break;
    case MetricsSourceType::kPrometheus:
      raw = std::make_unique<PrometheusSource>(c, clock);
      break;
  }
  if (raw == nullptr) return nullptr;
  return std::make_unique<CheckedSource>(std::move(raw), std::move(log));
}

absl::StatusOr<ExternalMetrics> ParseMetricsJson(absl::string_view body) {
  absl::StatusOr<RawMetrics> raw = ParseRawMetricsJson(body);
  if (!raw.ok()) return raw.status();
  return CheckExternalMetrics(*raw, CountFractions::kReject);
}

absl::StatusOr<double> ParsePrometheusValue(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a Prometheus API response: ", BodySnippet(body)));
  }
  if (j.value("status", "") != "success") {
    return absl::InvalidArgumentError(
        absl::StrCat("query failed: ", j.value("errorType", "error"), ": ",
                     j.value("error", BodySnippet(body))));
  }
  const nlohmann::json& data = j["data"];
  if (!data.is_object()) {
    return absl::InvalidArgumentError("response has no data");
  }
  const std::string type = data.value("resultType", "");
  const nlohmann::json& result = data["result"];
  const nlohmann::json* value = nullptr;
  if (type == "scalar") {
    value = &result;
  } else if (type == "vector") {
    if (!result.is_array() || result.empty()) {
      return absl::NotFoundError(
          "the query returned no series (use e.g. `sum(...) or vector(0)` "
          "when none is a valid answer)");
    }
    if (result.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the query returned ", result.size(),
                       " series; aggregate it to one (e.g. sum(...))"));
    }
    value = &result[0]["value"];
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "result type '", type, "' is not a scalar or an instant vector"));
  }
  if (!value->is_array() || value->size() != 2 || !(*value)[1].is_string()) {
    return absl::InvalidArgumentError("malformed sample in the response");
  }
  double v = 0;
  const std::string text = (*value)[1].get<std::string>();
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the query's value is not a finite number: ", text));
  }
  return v;
}

absl::StatusOr<CommandOutput> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout, Clock& clock) {
  ChildOptions options;
  options.argv = argv;
  OutputLimits limits;
  limits.max_stdout = kMaxStdout;
  limits.keep_stderr = kKeepStderr;
  absl::StatusOr<ChildResult> run = RunChild(options, timeout, clock, limits);
  if (!run.ok()) return run.status();
  CommandOutput out;
  out.exit_code = run->exit_code;
  out.timed_out = run->timed_out;
  out.stdout_text = std::move(run->stdout_text);
  out.stderr_text = std::move(run->stderr_text);
  return out;
}

}  // namespace navarch
