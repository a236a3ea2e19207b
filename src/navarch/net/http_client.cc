#include "navarch/net/http_client.h"

#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"

namespace navarch {

absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url) {
  ParsedUrl out;
  size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "URL \"", url, "\" has no scheme (want http:// or https://)"));
  }
  out.scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (out.scheme != "http" && out.scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat(
        "URL \"", url, "\": scheme ", out.scheme, " is not http or https"));
  }
  absl::string_view rest = url.substr(scheme_end + 3);
  if (size_t hash = rest.find('#'); hash != absl::string_view::npos) {
    rest = rest.substr(0, hash);
  }
  size_t path_start = rest.find_first_of("/?");
  absl::string_view authority = rest.substr(0, path_start);
  out.target = path_start == absl::string_view::npos
                   ? "/"
                   : std::string(rest.substr(path_start));
  if (!out.target.empty() && out.target[0] == '?')
    out.target = "/" + out.target;
  if (authority.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL \"", url, "\" has no host"));
  }
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "URL \"", url,
        "\": credentials in the URL are not supported; use headers"));
  }
  absl::string_view host = authority, port;
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("URL \"", url, "\": unterminated IPv6 address"));
    }
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat("URL \"", url, "\": bad authority"));
      }
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL \"", url, "\" has no host"));
  }
  out.host = std::string(host);
  out.port = out.scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    int p = 0;
    if (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("URL \"", url, "\": bad port \"", port, "\""));
    }
    out.port = p;
  }
  return out;
}

std::string UrlEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string AddQueryParam(absl::string_view url, absl::string_view key,
                          absl::string_view value) {
  absl::string_view base = url, fragment;
  if (size_t hash = url.find('#'); hash != absl::string_view::npos) {
    base = url.substr(0, hash);
    fragment = url.substr(hash);
  }
  const char* sep = base.find('?') == absl::string_view::npos ? "?"
                    : (absl::EndsWith(base, "?") || absl::EndsWith(base, "&"))
                        ? ""
                        : "&";
  return absl::StrCat(base, sep, UrlEncode(key), "=", UrlEncode(value),
                      fragment);
}

std::string BodySnippet(absl::string_view body) {
  std::string s(body.substr(0, 200));
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  absl::StripAsciiWhitespace(&s);
  if (body.size() > 200) absl::StrAppend(&s, "...");
  return s;
}

namespace {

// The connect's share of the request's deadline.
absl::Duration ConnectTimeout(const HttpRequest& request) {
  if (request.connect_timeout <= absl::ZeroDuration()) return request.timeout;
  return std::min(request.connect_timeout, request.timeout);
}

const char* ConnectErrorWords(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connection refused (nothing listens on that port)";
    case ETIMEDOUT:
      return "connection timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    case ECONNRESET:
      return "connection reset";
    default:
      return nullptr;
  }
}

// httplib says only "Connection" when it cannot connect: resolve and connect
// once more ourselves to say why (DNS, refused, unreachable). Waits at most
// `budget` for the connect.
std::string DiagnoseConnectFailure(const ParsedUrl& url,
                                   absl::Duration budget) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(url.port);
  if (int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::StrCat("DNS: cannot resolve ", url.host, ": ",
                        gai_strerror(rc));
  }
  int err = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      socklen_t len = sizeof(err);
      if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(budget))) <=
          0) {
        err = ETIMEDOUT;
      } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
    }
    close(fd);
    if (err == 0) break;
  }
  freeaddrinfo(found);
  if (err == 0) return "connection failed (it connects now: transient)";
  const char* words = ConnectErrorWords(err);
  return words != nullptr ? std::string(words) : std::string(strerror(err));
}

// A transport failure in words, with the status code callers retry on.
absl::Status TransportError(const HttpRequest& request, const ParsedUrl& url,
                            httplib::Error err, bool deadline_hit) {
  const std::string what = absl::StrCat(request.method, " ", request.url, ": ");
  const std::string timeout = absl::FormatDuration(request.timeout);
  if (deadline_hit) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, "timed out: no complete response within ", timeout));
  }
  switch (err) {
    case httplib::Error::Connection:
      return absl::UnavailableError(absl::StrCat(
          what, DiagnoseConnectFailure(
                    url, std::min(ConnectTimeout(request), absl::Seconds(1)))));
    case httplib::Error::ConnectionTimeout:
      return absl::DeadlineExceededError(
          absl::StrCat(what, "timed out connecting (timeout ",
                       absl::FormatDuration(ConnectTimeout(request)), ")"));
    case httplib::Error::Read:
      // httplib reports its own read timeout as a read error too, and it
      // races the deadline timer (both are `timeout`): say both.
      return absl::DeadlineExceededError(absl::StrCat(
          what,
          "timed out or the connection closed: no complete response "
          "(timeout ",
          timeout, ")"));
    case httplib::Error::Write:
      return absl::UnavailableError(
          absl::StrCat(what, "connection lost while sending the request"));
    case httplib::Error::SSLConnection:
      return absl::UnavailableError(absl::StrCat(what, "TLS handshake failed"));
    case httplib::Error::SSLServerVerification:
      return absl::UnavailableError(
          absl::StrCat(what, "TLS: the server's certificate is not trusted"));
    case httplib::Error::SSLLoadingCerts:
      return absl::UnavailableError(
          absl::StrCat(what, "TLS: cannot load the CA certificates"));
    default:
      return absl::UnavailableError(
          absl::StrCat(what, httplib::to_string(err)));
  }
}

// Stops the request's connection once its deadline passes: httplib's own
// timeouts bound each read and write, not the whole call, so a server that
// trickles bytes could otherwise hold it forever. The timer may fire while
// the call returns, hence the mutex and the `done` flag.
class DeadlineGuard {
 public:
  DeadlineGuard(Clock& clock, absl::Duration timeout, httplib::Client& client)
      : clock_(clock), state_(std::make_shared<State>()) {
    state_->client = &client;
    timer_ = clock_.Schedule(timeout, [state = state_] {
      absl::MutexLock lock(&state->mu);
      if (state->client == nullptr) return;
      state->hit = true;
      state->client->stop();
    });
  }
  ~DeadlineGuard() { Disarm(); }
  // After this, the timer no longer touches the client. Whether it fired.
  bool Disarm() {
    clock_.Cancel(timer_);
    absl::MutexLock lock(&state_->mu);
    state_->client = nullptr;
    return state_->hit;
  }

 private:
  struct State {
    absl::Mutex mu;
    httplib::Client* client ABSL_GUARDED_BY(mu) = nullptr;
    bool hit ABSL_GUARDED_BY(mu) = false;
  };
  Clock& clock_;
  std::shared_ptr<State> state_;
  TimerId timer_ = 0;
};

std::unique_ptr<httplib::Client> MakeClient(const ParsedUrl& url,
                                            absl::Duration timeout,
                                            absl::Duration connect_timeout) {
  const std::string host_port = absl::StrCat(
      url.scheme, "://",
      url.host.find(':') != std::string::npos ? absl::StrCat("[", url.host, "]")
                                              : url.host,
      ":", url.port);
  auto client = std::make_unique<httplib::Client>(host_port);
  if (!client->is_valid()) return nullptr;
  const int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout));
  const time_t sec = ms / 1000;
  const time_t usec = (ms % 1000) * 1000;
  const int64_t cms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(connect_timeout));
  client->set_connection_timeout(cms / 1000, (cms % 1000) * 1000);
  client->set_read_timeout(sec, usec);
  client->set_write_timeout(sec, usec);
  client->set_follow_location(false);
  client->set_keep_alive(false);
  if (url.scheme == "https")
    client->enable_server_certificate_verification(true);
  return client;
}

httplib::Result Send(httplib::Client& client, const HttpRequest& request,
                     const std::string& target, const httplib::Headers& headers,
                     const httplib::ContentReceiver& receiver) {
  if (request.method == "GET") return client.Get(target, headers, receiver);
  const std::string type = request.content_type.empty()
                               ? "application/octet-stream"
                               : request.content_type;
  if (request.method == "PUT") {
    return client.Put(target, headers, request.body, type);
  }
  if (request.method == "PATCH") {
    return client.Patch(target, headers, request.body, type);
  }
  if (request.method == "DELETE") {
    return request.body.empty()
               ? client.Delete(target, headers)
               : client.Delete(target, headers, request.body, type);
  }
  return client.Post(target, headers, request.body, type);
}

absl::Status TooBig(const HttpRequest& request) {
  return absl::ResourceExhaustedError(
      absl::StrCat("response from ", request.url, " is larger than ",
                   request.max_response_bytes, " bytes"));
}

}  // namespace

absl::StatusOr<HttpResponse> HttpDo(const HttpRequest& request) {
  absl::StatusOr<ParsedUrl> url = ParseUrl(request.url);
  if (!url.ok()) return url.status();
  if (request.method != "GET" && request.method != "POST" &&
      request.method != "PUT" && request.method != "PATCH" &&
      request.method != "DELETE") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported HTTP method ", request.method));
  }
  std::unique_ptr<httplib::Client> client =
      MakeClient(*url, request.timeout, ConnectTimeout(request));
  if (client == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a client for ", request.url));
  }
  httplib::Headers headers;
  for (const auto& [k, v] : request.headers) headers.emplace(k, v);
  std::string body;
  bool too_big = false;
  httplib::ContentReceiver receiver = [&](const char* data, size_t len) {
    if (body.size() + len > request.max_response_bytes) {
      too_big = true;
      return false;
    }
    body.append(data, len);
    return true;
  };
  DeadlineGuard deadline(
      request.clock != nullptr ? *request.clock : RealClock::Default(),
      request.timeout, *client);
  if (!request.ca_file.empty()) client->set_ca_cert_path(request.ca_file);
  httplib::Result res = Send(*client, request, url->target, headers, receiver);
  const bool deadline_hit = deadline.Disarm();
  if (too_big) return TooBig(request);
  if (!res) return TransportError(request, *url, res.error(), deadline_hit);
  HttpResponse out;
  out.status = res->status;
  out.body = request.method == "GET" ? std::move(body) : res->body;
  if (out.body.size() > request.max_response_bytes) return TooBig(request);
  for (const auto& [k, v] : res->headers) {
    out.headers[absl::AsciiStrToLower(k)] = v;
  }
  return out;
}

}  // namespace navarch
