#include "navarch/provider/aws/sigv4.h"

#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace navarch {
namespace {

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
        absl::ascii_isxdigit(s[i + 2])) {
      out.push_back(static_cast<char>(
          std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Each name and value decoded, then encoded the one way SigV4 wants, and
// sorted by name, then value.
std::string CanonicalQuery(absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    params.emplace_back(UrlEncode(PercentDecode(kv.first)),
                        UrlEncode(PercentDecode(kv.second)));
  }
  std::sort(params.begin(), params.end());
  return absl::StrJoin(params, "&", absl::PairFormatter("="));
}

// Lower-case names, sorted; values trimmed with inner runs of spaces
// collapsed to one.
std::map<std::string, std::string> CanonicalHeaders(
    const std::map<std::string, std::string>& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    std::string v(value);
    absl::RemoveExtraAsciiWhitespace(&v);
    out[absl::AsciiStrToLower(name)] = v;
  }
  return out;
}

std::string SignedHeaderList(const std::map<std::string, std::string>& h) {
  std::vector<std::string> names;
  for (const auto& [name, value] : h) names.push_back(name);
  return absl::StrJoin(names, ";");
}

std::string Scope(absl::string_view amz_date, const SigV4Request& request) {
  return absl::StrCat(amz_date.substr(0, 8), "/", request.region, "/",
                      request.service, "/aws4_request");
}

}  // namespace

std::string SigV4CanonicalRequest(const SigV4Request& request) {
  const std::map<std::string, std::string> headers =
      CanonicalHeaders(request.headers);
  std::string out = absl::StrCat(request.method, "\n", request.path, "\n",
                                 CanonicalQuery(request.query), "\n");
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&out, name, ":", value, "\n");
  }
  absl::StrAppend(&out, "\n", SignedHeaderList(headers), "\n",
                  Sha256Hex(request.body));
  return out;
}

std::string SigV4StringToSign(const SigV4Request& request,
                              absl::string_view amz_date) {
  return absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n",
                      Scope(amz_date, request), "\n",
                      Sha256Hex(SigV4CanonicalRequest(request)));
}

std::string SigV4Authorization(const SigV4Request& request,
                               const AwsCredentials& credentials,
                               absl::string_view amz_date) {
  std::string key = Hmac(absl::StrCat("AWS4", credentials.secret_access_key),
                         amz_date.substr(0, 8));
  key = Hmac(key, request.region);
  key = Hmac(key, request.service);
  key = Hmac(key, "aws4_request");
  const std::string signature =
      absl::BytesToHexString(Hmac(key, SigV4StringToSign(request, amz_date)));
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key_id,
                      "/", Scope(amz_date, request), ", SignedHeaders=",
                      SignedHeaderList(CanonicalHeaders(request.headers)),
                      ", Signature=", signature);
}

std::string AmzDate(absl::Time t) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", t, absl::UTCTimeZone());
}

absl::Status SignHttpRequest(HttpRequest& request,
                             const AwsCredentials& credentials,
                             absl::string_view region,
                             absl::string_view service, absl::Time now) {
  absl::StatusOr<ParsedUrl> url = ParseUrl(request.url);
  if (!url.ok()) return url.status();
  const bool default_port = (url->scheme == "https" && url->port == 443) ||
                            (url->scheme == "http" && url->port == 80);
  const std::string host =
      default_port ? url->host : absl::StrCat(url->host, ":", url->port);
  const std::string amz_date = AmzDate(now);
  // Signed and sent with the same spelling.
  request.headers.erase("Authorization");
  request.headers["Host"] = host;
  request.headers["X-Amz-Date"] = amz_date;
  if (!credentials.session_token.empty()) {
    request.headers["X-Amz-Security-Token"] = credentials.session_token;
  }
  SigV4Request s;
  s.method = request.method;
  std::pair<std::string, std::string> target =
      absl::StrSplit(url->target, absl::MaxSplits('?', 1));
  s.path = target.first;
  s.query = target.second;
  s.headers = request.headers;
  if (!request.body.empty() || !request.content_type.empty()) {
    s.headers["Content-Type"] = request.content_type;
  }
  s.body = request.body;
  s.region = std::string(region);
  s.service = std::string(service);
  request.headers["Authorization"] =
      SigV4Authorization(s, credentials, amz_date);
  return absl::OkStatus();
}

}  // namespace navarch
