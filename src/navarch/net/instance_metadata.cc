#include "navarch/net/instance_metadata.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace navarch {
namespace {

// The session token's lifetime (the most IMDSv2 allows, as the SDKs ask).
constexpr char kTokenTtlSeconds[] = "21600";

std::string NonEmpty(const GetEnv& env, const std::string& name) {
  std::optional<std::string> v = env(name);
  return v.value_or("");
}

HttpRequest WithOptions(HttpRequest req, const MetadataCallOptions& options) {
  req.timeout = options.timeout;
  req.connect_timeout = options.connect_timeout;
  req.clock = options.clock;
  // Metadata answers are short; anything large is not a metadata server.
  req.max_response_bytes = 64 << 10;
  return req;
}

}  // namespace

GetEnv ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string Ec2MetadataEndpoint(const GetEnv& env,
                                absl::string_view configured) {
  std::string base(configured);
  if (base.empty()) base = NonEmpty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty()) base = kEc2MetadataEndpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

bool Ec2MetadataDisabled(const GetEnv& env) {
  return absl::AsciiStrToLower(NonEmpty(env, "AWS_EC2_METADATA_DISABLED")) ==
         "true";
}

std::string GceMetadataHost(const GetEnv& env) {
  std::string host = NonEmpty(env, "GCE_METADATA_HOST");
  return host.empty() ? kGceMetadataHost : host;
}

Ec2MetadataClient::Ec2MetadataClient(std::string endpoint,
                                     MetadataCallOptions options)
    : endpoint_(std::move(endpoint)), options_(options) {}

absl::StatusOr<std::string> Ec2MetadataClient::Call(
    const std::string& method, const std::string& url,
    const std::string& header, const std::string& value) const {
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.headers[header] = value;
  absl::StatusOr<HttpResponse> r = HttpDo(WithOptions(req, options_));
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(absl::StrCat("EC2 instance metadata ", method,
                                               " ", url, ": HTTP ", r->status));
  }
  return r->body;
}

absl::StatusOr<std::string> Ec2MetadataClient::Get(absl::string_view path) {
  if (token_.empty()) {
    absl::StatusOr<std::string> token =
        Call("PUT", endpoint_ + "/latest/api/token",
             "X-aws-ec2-metadata-token-ttl-seconds", kTokenTtlSeconds);
    if (!token.ok()) return token.status();
    if (token->empty()) {
      return absl::UnavailableError(absl::StrCat(
          "EC2 instance metadata ", endpoint_, ": empty session token"));
    }
    token_ = *token;
  }
  return Call("GET", absl::StrCat(endpoint_, "/latest/", path),
              "X-aws-ec2-metadata-token", token_);
}

HttpRequest GceMetadataRequest(absl::string_view host, absl::string_view path) {
  HttpRequest req;
  req.url = absl::StrCat("http://", host, "/computeMetadata/v1/", path);
  req.headers["Metadata-Flavor"] = "Google";
  return req;
}

absl::StatusOr<std::string> GceMetadataGet(absl::string_view host,
                                           absl::string_view path,
                                           const MetadataCallOptions& options) {
  HttpRequest req = WithOptions(GceMetadataRequest(host, path), options);
  absl::StatusOr<HttpResponse> r = HttpDo(req);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("GCE metadata GET ", req.url, ": HTTP ", r->status));
  }
  auto flavor = r->headers.find("metadata-flavor");
  if (flavor == r->headers.end() || flavor->second != "Google") {
    return absl::UnavailableError(
        absl::StrCat("GCE metadata GET ", req.url,
                     ": the answer lacks Metadata-Flavor: Google (not a "
                     "Compute Engine metadata server)"));
  }
  return r->body;
}

}  // namespace navarch
