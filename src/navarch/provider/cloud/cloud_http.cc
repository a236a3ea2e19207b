#include "navarch/provider/cloud/cloud_http.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace navarch {
namespace {

constexpr char kCloudErrorPayload[] = "type.navarch.dev/cloud-error";

CloudErrorScope ScopeFromName(absl::string_view name) {
  if (name == "zone") return CloudErrorScope::kZone;
  if (name == "region") return CloudErrorScope::kRegion;
  if (name == "provider") return CloudErrorScope::kProvider;
  return CloudErrorScope::kUnknown;
}

std::string ResultOf(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return "network";
  if (r->status == 429) return "429";
  if (r->status >= 200 && r->status < 300) return "ok";
  return absl::StrCat(r->status / 100, "xx");
}

}  // namespace

absl::string_view CloudErrorScopeName(CloudErrorScope scope) {
  switch (scope) {
    case CloudErrorScope::kZone:
      return "zone";
    case CloudErrorScope::kRegion:
      return "region";
    case CloudErrorScope::kProvider:
      return "provider";
    case CloudErrorScope::kUnknown:
      break;
  }
  return "unknown";
}

absl::Status CloudError(absl::StatusCode code, absl::string_view provider,
                        const CloudErrorInfo& info, absl::string_view message) {
  std::string where(provider);
  if (!info.region.empty() || !info.zone.empty()) {
    absl::StrAppend(&where, " ", info.region,
                    info.zone.empty() ? "" : absl::StrCat("/", info.zone));
  }
  std::string text = where;
  if (!info.cloud_code.empty()) absl::StrAppend(&text, ": ", info.cloud_code);
  absl::StrAppend(&text, ": ", message);
  absl::Status status(code, text);
  // Fields joined by a separator that none of them can hold.
  status.SetPayload(
      kCloudErrorPayload,
      absl::Cord(absl::StrCat(CloudErrorScopeName(info.scope), "\x1f",
                              info.cloud_code, "\x1f", info.region, "\x1f",
                              info.zone, "\x1f", info.quota ? "quota" : "")));
  return status;
}

std::optional<CloudErrorInfo> CloudErrorInfoOf(const absl::Status& status) {
  auto payload = status.GetPayload(kCloudErrorPayload);  // absl::optional
  if (!payload) return std::nullopt;
  std::vector<std::string> parts =
      absl::StrSplit(std::string(*payload), '\x1f');
  if (parts.size() != 5) return std::nullopt;
  CloudErrorInfo info;
  info.scope = ScopeFromName(parts[0]);
  info.cloud_code = parts[1];
  info.region = parts[2];
  info.zone = parts[3];
  info.quota = parts[4] == "quota";
  return info;
}

void Redactor::Add(std::string secret) {
  if (secret.size() < 4) return;
  absl::MutexLock lock(&mu_);
  if (KnownLocked(secret)) return;
  secrets_.push_back(std::move(secret));
}

void Redactor::AddRotating(std::string secret) {
  if (secret.size() < 4) return;
  absl::MutexLock lock(&mu_);
  if (KnownLocked(secret)) return;
  rotating_.push_back(std::move(secret));
  if (rotating_.size() > kRotatingKept) rotating_.pop_front();
}

bool Redactor::KnownLocked(const std::string& secret) const {
  return std::find(secrets_.begin(), secrets_.end(), secret) !=
             secrets_.end() ||
         std::find(rotating_.begin(), rotating_.end(), secret) !=
             rotating_.end();
}

size_t Redactor::size() const {
  absl::MutexLock lock(&mu_);
  return secrets_.size() + rotating_.size();
}

std::string Redactor::operator()(absl::string_view text) const {
  std::string out(text);
  absl::MutexLock lock(&mu_);
  for (const std::string& s : secrets_) {
    absl::StrReplaceAll({{s, "[redacted]"}}, &out);
  }
  for (const std::string& s : rotating_) {
    absl::StrReplaceAll({{s, "[redacted]"}}, &out);
  }
  return out;
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(value, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Time at;
  std::string err;
  if (!absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", std::string(value), &at,
                       &err)) {
    return std::nullopt;
  }
  return std::max(absl::ZeroDuration(), at - now);
}

CloudHttp::CloudHttp(CloudHttpOptions options) : options_(std::move(options)) {
  if (!options_.sleep) {
    options_.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  }
  options_.max_attempts = std::max(1, options_.max_attempts);
}

std::optional<absl::Duration> CloudHttp::RetryDelay(
    const HttpResponse* response, Backoff& backoff) const {
  const absl::Duration delay = backoff.Next();
  if (response == nullptr) return delay;
  auto it = response->headers.find("retry-after");
  if (it == response->headers.end()) return delay;
  Clock& clock =
      options_.clock != nullptr ? *options_.clock : RealClock::Default();
  std::optional<absl::Duration> asked =
      ParseRetryAfter(it->second, clock.Now());
  if (!asked) return delay;
  if (*asked > options_.max_retry_after) return std::nullopt;
  return std::max(delay, *asked);
}

absl::StatusOr<HttpResponse> CloudHttp::Call(absl::string_view operation,
                                             HttpRequest request,
                                             const Sign& sign,
                                             const RetryIf& retry_if) {
  uint64_t call;
  {
    absl::MutexLock lock(&mu_);
    call = calls_++;
  }
  std::mt19937_64 rng(options_.seed * 1000003u + call);
  Backoff backoff(options_.backoff, rng);
  request.timeout = options_.attempt_timeout;
  request.clock = options_.clock;
  request.ca_file = options_.ca_file;
  Clock& clock =
      options_.clock != nullptr ? *options_.clock : RealClock::Default();
  absl::StatusOr<HttpResponse> last = absl::UnavailableError("no attempt");
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    HttpRequest signed_request = request;
    if (sign) {
      if (absl::Status s = sign(signed_request); !s.ok()) return s;
    }
    const absl::Duration start = clock.SteadyNow();
    last = HttpDo(signed_request);
    if (options_.observer != nullptr) {
      options_.observer->OnCall(options_.provider, operation, ResultOf(last),
                                clock.SteadyNow() - start);
    }
    bool retry;
    if (last.ok()) {
      retry = retry_if ? retry_if(*last)
                       : (last->status >= 500 || last->status == 429);
    } else {
      retry = absl::IsUnavailable(last.status()) ||
              absl::IsDeadlineExceeded(last.status());
    }
    if (!retry || attempt == options_.max_attempts) break;
    std::optional<absl::Duration> delay =
        RetryDelay(last.ok() ? &*last : nullptr, backoff);
    if (!delay) break;
    options_.sleep(*delay);
  }
  if (!last.ok()) {
    return absl::Status(
        last.status().code(),
        redactor_(absl::StrCat(options_.provider, " ", operation, ": ",
                               last.status().message())));
  }
  return last;
}

}  // namespace navarch
