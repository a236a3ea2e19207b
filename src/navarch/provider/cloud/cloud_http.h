// What the cloud providers (Lambda, GCE, EC2) share: one API call over HTTP
// with a deadline per attempt, retried with exponential backoff and jitter on
// 5xx, 429 (honouring Retry-After) and network errors, never on a 4xx that
// means the request was wrong; secrets kept out of every message; every
// call reported to an observer (/metrics); and the way a cloud's error is
// carried in an absl::Status (class, scope, the cloud's code, region, zone).
#ifndef NAVARCH_PROVIDER_CLOUD_CLOUD_HTTP_H_
#define NAVARCH_PROVIDER_CLOUD_CLOUD_HTTP_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/backoff.h"
#include "navarch/base/clock.h"
#include "navarch/net/http_client.h"

namespace navarch {

// ------------------------------------------------------------------ errors

// How far a capacity or quota error reaches: the selector backs off that
// much (a zone, the region, or the whole provider) and tries elsewhere.
enum class CloudErrorScope { kUnknown, kZone, kRegion, kProvider };
absl::string_view CloudErrorScopeName(CloudErrorScope scope);

// What a cloud said about a failed call.
struct CloudErrorInfo {
  CloudErrorScope scope = CloudErrorScope::kUnknown;
  std::string cloud_code;  // "InsufficientInstanceCapacity", ...
  std::string region;
  std::string zone;
  bool quota = false;  // a quota, not a lack of machines
};

// A provider error: `code` is the class (provider.h: RESOURCE_EXHAUSTED for
// capacity and quota, INVALID_ARGUMENT/PERMISSION_DENIED/... for requests
// that cannot succeed, UNAVAILABLE for transient trouble). The message reads
// "<provider> <region>/<zone>: <cloud code>: <message>" so that events and
// `navarch explain` show it whole; `info` travels as a payload.
absl::Status CloudError(absl::StatusCode code, absl::string_view provider,
                        const CloudErrorInfo& info, absl::string_view message);
// The info of an error made by CloudError; nullopt for any other status.
std::optional<CloudErrorInfo> CloudErrorInfoOf(const absl::Status& status);

// ------------------------------------------------------------------ calls

// Told about every attempt of every call (for navarch_provider_* metrics).
// Implementations are thread-safe.
class CloudCallObserver {
 public:
  virtual ~CloudCallObserver() = default;
  // `result`: "ok", an HTTP status class ("4xx", "5xx", "429") or
  // "network".
  virtual void OnCall(absl::string_view provider, absl::string_view operation,
                      absl::string_view result, absl::Duration latency) = 0;
};

// Removes secrets from text before it leaves the provider. Thread-safe.
// A secret that stays (an API key, a private key) is Add()ed; one that is
// replaced from time to time (an OAuth or session token) is AddRotating()ed,
// and only the last kRotatingKept of those are kept, so a process that runs
// for months does not scan every token it ever had. Adding a string twice
// keeps it once.
class Redactor {
 public:
  static constexpr size_t kRotatingKept = 8;

  void Add(std::string secret);  // Ignored when shorter than 4 characters.
  void AddRotating(std::string secret);  // Likewise.
  std::string operator()(absl::string_view text) const;
  size_t size() const;  // How many secrets it looks for.

 private:
  bool KnownLocked(const std::string& secret) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::string> secrets_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> rotating_ ABSL_GUARDED_BY(mu_);
};

struct CloudHttpOptions {
  std::string provider;    // The config name, for messages and metrics.
  Clock* clock = nullptr;  // Times each attempt's deadline. Null: real.
  // Waits between attempts. Null: absl::SleepFor. Tests record instead.
  std::function<void(absl::Duration)> sleep;
  CloudCallObserver* observer = nullptr;  // May be null.
  uint64_t seed = 1;                      // Jitter.
  int max_attempts = 4;
  BackoffPolicy backoff = {absl::Seconds(1), absl::Seconds(30), 2.0, 0.2};
  absl::Duration attempt_timeout = absl::Seconds(30);
  // The longest Retry-After honoured; longer ones end the retries.
  absl::Duration max_retry_after = absl::Seconds(60);
  std::string ca_file;  // CA bundle for https; empty: the system's store.
};

// One cloud's HTTP calls. Thread-safe.
class CloudHttp {
 public:
  explicit CloudHttp(CloudHttpOptions options);

  // Whether a response should be retried (default: 5xx and 429). EC2 also
  // retries its throttling codes, which come as 400.
  using RetryIf = std::function<bool(const HttpResponse&)>;
  // Called before each attempt, to add a fresh signature or token.
  using Sign = std::function<absl::Status(HttpRequest&)>;

  // Sends `request`, retrying as above. Returns the final response whatever
  // its status (the provider reads its error body), or UNAVAILABLE /
  // DEADLINE_EXCEEDED after the last transport failure. `operation` names
  // the call in metrics ("launch", "RunInstances").
  absl::StatusOr<HttpResponse> Call(absl::string_view operation,
                                    HttpRequest request,
                                    const Sign& sign = nullptr,
                                    const RetryIf& retry_if = nullptr);

  Redactor& redactor() { return redactor_; }
  const std::string& provider() const { return options_.provider; }

 private:
  // The wait before attempt `attempt` + 1 after `response` (nullopt: stop).
  std::optional<absl::Duration> RetryDelay(const HttpResponse* response,
                                           Backoff& backoff) const;

  CloudHttpOptions options_;
  Redactor redactor_;
  absl::Mutex mu_;
  uint64_t calls_ ABSL_GUARDED_BY(mu_) = 0;  // seeds each call's jitter
};

// Retry-After as seconds or an HTTP date, relative to `now`; nullopt when
// absent or unreadable.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_CLOUD_CLOUD_HTTP_H_
