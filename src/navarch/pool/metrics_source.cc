#include "navarch/pool/metrics_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/spawn.h"
#include "navarch/net/http_client.h"

extern char** environ;

namespace navarch {
namespace {

constexpr size_t kMaxStdout = 1 << 20;
constexpr size_t kKeepStderr = 4096;

absl::StatusOr<int> CountField(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j[key];
  if (!v.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", key, "' is not a number: ", v.dump()));
  }
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > 1e9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", key, "' must be a non-negative integer, got ", v.dump()));
  }
  return static_cast<int>(d);
}

class HttpJsonSource final : public MetricsSource {
 public:
  explicit HttpJsonSource(MetricsSourceConfig c) : c_(std::move(c)) {}
  absl::string_view name() const override { return "http_json"; }
  absl::StatusOr<ExternalMetrics> Fetch() override {
    HttpRequest req;
    req.url = c_.url;
    req.headers = c_.headers;
    req.headers.emplace("Accept", "application/json");
    req.timeout = c_.timeout;
    req.max_response_bytes = 1 << 20;
    absl::StatusOr<HttpResponse> r = HttpDo(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) {
      return absl::UnavailableError(absl::StrCat(
          "GET ", c_.url, " returned ", r->status, ": ", BodySnippet(r->body)));
    }
    absl::StatusOr<ExternalMetrics> m = ParseMetricsJson(r->body);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GET ", c_.url, ": ", m.status().message()));
    }
    return m;
  }

 private:
  const MetricsSourceConfig c_;
};

class CommandSource final : public MetricsSource {
 public:
  CommandSource(MetricsSourceConfig c, Clock& clock)
      : c_(std::move(c)), clock_(clock) {}
  absl::string_view name() const override { return "command"; }
  absl::StatusOr<ExternalMetrics> Fetch() override {
    const std::string shown = absl::StrJoin(c_.command, " ");
    absl::StatusOr<CommandOutput> out =
        RunCommand(c_.command, c_.timeout, clock_);
    if (!out.ok()) return out.status();
    if (out->timed_out) {
      return absl::DeadlineExceededError(
          absl::StrCat("command '", shown, "' ran past its timeout of ",
                       absl::FormatDuration(c_.timeout), " and was killed"));
    }
    if (out->exit_code != 0) {
      return absl::UnavailableError(absl::StrCat(
          "command '", shown, "' exited with ", out->exit_code,
          out->stderr_text.empty()
              ? ""
              : absl::StrCat(": ", BodySnippet(out->stderr_text))));
    }
    absl::StatusOr<ExternalMetrics> m = ParseMetricsJson(out->stdout_text);
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("command '", shown, "': ", m.status().message()));
    }
    return m;
  }

 private:
  const MetricsSourceConfig c_;
  Clock& clock_;
};

class PrometheusSource final : public MetricsSource {
 public:
  explicit PrometheusSource(MetricsSourceConfig c) : c_(std::move(c)) {
    while (!c_.url.empty() && c_.url.back() == '/') c_.url.pop_back();
  }
  absl::string_view name() const override { return "prometheus"; }
  absl::StatusOr<ExternalMetrics> Fetch() override {
    ExternalMetrics m;
    if (!c_.queue_depth_query.empty()) {
      absl::StatusOr<double> v = Query("queue_depth", c_.queue_depth_query);
      if (!v.ok()) return v.status();
      m.queue_depth = static_cast<int>(std::max(0.0, std::round(*v)));
    }
    if (!c_.pending_jobs_query.empty()) {
      absl::StatusOr<double> v = Query("pending_jobs", c_.pending_jobs_query);
      if (!v.ok()) return v.status();
      m.pending_jobs = static_cast<int>(std::max(0.0, std::round(*v)));
    }
    if (!c_.utilization_query.empty()) {
      absl::StatusOr<double> v = Query("utilization", c_.utilization_query);
      if (!v.ok()) return v.status();
      m.utilization = std::clamp(*v, 0.0, 100.0);
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
};

}  // namespace

std::unique_ptr<MetricsSource> MakeMetricsSource(const MetricsSourceConfig& c,
                                                 Clock& clock) {
  switch (c.type) {
    case MetricsSourceType::kFleet:
      return nullptr;
    case MetricsSourceType::kHttpJson:
      return std::make_unique<HttpJsonSource>(c);
    case MetricsSourceType::kCommand:
      return std::make_unique<CommandSource>(c, clock);
    case MetricsSourceType::kPrometheus:
      return std::make_unique<PrometheusSource>(c);
  }
  return nullptr;
}

absl::StatusOr<ExternalMetrics> ParseMetricsJson(absl::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a JSON object like {\"queue_depth\": 12}, got: ",
                     BodySnippet(body)));
  }
  ExternalMetrics m;
  bool any = false;
  if (j.contains("queue_depth")) {
    absl::StatusOr<int> v = CountField(j, "queue_depth");
    if (!v.ok()) return v.status();
    m.queue_depth = *v;
    any = true;
  }
  if (j.contains("pending_jobs")) {
    absl::StatusOr<int> v = CountField(j, "pending_jobs");
    if (!v.ok()) return v.status();
    m.pending_jobs = *v;
    any = true;
  }
  if (j.contains("utilization")) {
    const nlohmann::json& u = j["utilization"];
    if (!u.is_number() || !std::isfinite(u.get<double>()) ||
        u.get<double>() < 0 || u.get<double>() > 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'utilization' must be a number in 0..100, got ", u.dump()));
    }
    m.utilization = u.get<double>();
    any = true;
  }
  if (!any) {
    return absl::InvalidArgumentError(
        absl::StrCat("none of queue_depth, pending_jobs, utilization in: ",
                     BodySnippet(body)));
  }
  return m;
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
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe failed");
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::InternalError("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawnattr_t attr;
  // Own process group; signals the control plane blocks unblocked.
  InitChildSpawnAttr(&attr);
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": ", strerror(rc)));
  }
  CommandOutput out;
  const absl::Duration deadline = clock.SteadyNow() + timeout;
  // Waits are sliced so a FakeClock's advance is noticed too.
  auto wait_ms = [&]() -> int64_t {
    const absl::Duration left = deadline - clock.SteadyNow();
    if (left <= absl::ZeroDuration()) return 0;
    return std::clamp<int64_t>(
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1,
        100);
  };
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    const int64_t ms = wait_ms();
    if (ms == 0) {
      out.timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(ms)) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (pollfd& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        --open_fds;
        continue;
      }
      if (p.fd == out_pipe[0]) {
        if (out.stdout_text.size() < kMaxStdout) out.stdout_text.append(buf, n);
      } else {
        out.stderr_text.append(buf, n);
        if (out.stderr_text.size() > kKeepStderr) {
          out.stderr_text.erase(0, out.stderr_text.size() - kKeepStderr);
        }
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  // Its output is closed, but it may still run (it closed them itself).
  while (!out.timed_out) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    if (wait_ms() == 0) {
      out.timed_out = true;
      break;
    }
    // Nothing to poll but the child's exit: look again in 2 ms.
    poll(nullptr, 0, 2);
  }
  if (out.timed_out) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  out.exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                  : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                        : -1;
  return out;
}

}  // namespace navarch
