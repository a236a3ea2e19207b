// A small blocking HTTP(S) client for the control plane's outbound calls:
// the webhook notifier, and the http_json and prometheus metrics sources.
// Every call has a deadline; bodies are bounded; errors are absl::Status with
// the URL (never a header value, which may hold a secret) in the message.
#ifndef NAVARCH_NET_HTTP_CLIENT_H_
#define NAVARCH_NET_HTTP_CLIENT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch {

// A URL split the way the client needs it.
struct ParsedUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // Without brackets for IPv6.
  int port = 0;        // Explicit or the scheme's default.
  std::string target;  // Path and query, at least "/".
};

// Parses http(s)://host[:port][/path][?query]. INVALID_ARGUMENT for anything
// else (another scheme, user info, a bad port, a fragment is dropped).
absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url);

// `url` with `key=value` appended to its query (both percent-encoded), using
// '&' when the URL already has a query. Upstream used '?' unconditionally.
std::string AddQueryParam(absl::string_view url, absl::string_view key,
                          absl::string_view value);

// RFC 3986 percent-encoding of everything but unreserved characters.
std::string UrlEncode(absl::string_view s);

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, PATCH or DELETE.
  std::string url;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string content_type;  // With a body.
  // The whole call's deadline: connecting, sending and the complete
  // response (DNS resolution excepted: the resolver has its own timeouts).
  absl::Duration timeout = absl::Seconds(30);
  // The most the TCP connect may take, within `timeout` (zero: `timeout`).
  // Short for link-local services that may silently drop packets (instance
  // metadata off its cloud).
  absl::Duration connect_timeout = absl::ZeroDuration();
  // Times the deadline. Null: RealClock::Default(). Must outlive the call.
  Clock* clock = nullptr;
  // A PEM CA bundle trusted for https instead of the system's store; empty:
  // the system's.
  std::string ca_file;
  // Responses larger than this fail with RESOURCE_EXHAUSTED.
  size_t max_response_bytes = 4 << 20;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Lower-case names.
};

// Performs the request. Any HTTP status is a response; a transport failure
// is UNAVAILABLE (DNS, connection refused, host unreachable, TLS) or
// DEADLINE_EXCEEDED (the deadline passed), its message naming the method,
// the URL and what failed in words. Thread-safe (each call uses its own
// connection).
absl::StatusOr<HttpResponse> HttpDo(const HttpRequest& request);

// A response body shortened for error messages (first 200 bytes, one line).
std::string BodySnippet(absl::string_view body);

}  // namespace navarch

#endif  // NAVARCH_NET_HTTP_CLIENT_H_
