#include "navarch/net/http_client.h"

#include <httplib.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

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

absl::StatusOr<HttpResponse> HttpDo(const HttpRequest& request) {
  absl::StatusOr<ParsedUrl> url = ParseUrl(request.url);
  if (!url.ok()) return url.status();
  if (request.method != "GET" && request.method != "POST") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported HTTP method ", request.method));
  }
  const std::string host_port =
      absl::StrCat(url->scheme, "://",
                   url->host.find(':') != std::string::npos
                       ? absl::StrCat("[", url->host, "]")
                       : url->host,
                   ":", url->port);
  httplib::Client client(host_port);
  if (!client.is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a client for ", request.url));
  }
  const int64_t ms =
      std::max<int64_t>(1, absl::ToInt64Milliseconds(request.timeout));
  const time_t sec = ms / 1000;
  const time_t usec = (ms % 1000) * 1000;
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  client.set_follow_location(false);
  client.set_keep_alive(false);
  if (url->scheme == "https")
    client.enable_server_certificate_verification(true);
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
  httplib::Result res = request.method == "GET"
                            ? client.Get(url->target, headers, receiver)
                            : client.Post(url->target, headers, request.body,
                                          request.content_type.empty()
                                              ? "application/octet-stream"
                                              : request.content_type);
  if (too_big) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response from ", request.url, " is larger than ",
                     request.max_response_bytes, " bytes"));
  }
  if (!res) {
    const httplib::Error err = res.error();
    const std::string what = httplib::to_string(err);
    if (err == httplib::Error::Read || err == httplib::Error::Write ||
        err == httplib::Error::ConnectionTimeout) {
      // httplib reports a read timeout as a read error.
      return absl::DeadlineExceededError(absl::StrCat(
          request.method, " ", request.url, ": ", what, " (timeout ",
          absl::FormatDuration(request.timeout), ")"));
    }
    return absl::UnavailableError(
        absl::StrCat(request.method, " ", request.url, ": ", what));
  }
  HttpResponse out;
  out.status = res->status;
  out.body = request.method == "GET" ? std::move(body) : res->body;
  if (out.body.size() > request.max_response_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response from ", request.url, " is larger than ",
                     request.max_response_bytes, " bytes"));
  }
  for (const auto& [k, v] : res->headers) {
    out.headers[absl::AsciiStrToLower(k)] = v;
  }
  return out;
}

}  // namespace navarch
