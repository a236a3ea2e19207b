#include "navarch/provider/gcp/gcp_auth.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "navarch/net/instance_metadata.h"

namespace navarch {
namespace {

using json = nlohmann::json;

constexpr char kJwtGrant[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";

absl::StatusOr<std::string> Rs256(const std::string& pem,
                                  const std::string& data) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
      EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        "the service-account key's private_key is not a PEM private key");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    return absl::InvalidArgumentError(
        "the service-account key cannot sign RS256");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &len, in, data.size()) != 1) {
    return absl::InternalError("RS256 signing failed");
  }
  sig.resize(len);
  return sig;
}

// The token answer {"access_token","expires_in","token_type"}, shared by
// the OAuth endpoint and the metadata server.
absl::StatusOr<std::pair<std::string, absl::Duration>> ParseTokenAnswer(
    const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("access_token") ||
      !j["access_token"].is_string() || !j.contains("expires_in") ||
      !j["expires_in"].is_number_integer()) {
    return absl::UnavailableError("the token answer has no access_token");
  }
  return std::make_pair(j["access_token"].get<std::string>(),
                        absl::Seconds(j["expires_in"].get<int64_t>()));
}

// A refused token request: the OAuth error code and description (never the
// assertion).
absl::Status TokenError(const std::string& provider, const HttpResponse& r,
                        absl::string_view what) {
  json j = json::parse(r.body, nullptr, false);
  std::string code = j.is_object() ? j.value("error", "") : "";
  std::string text =
      j.is_object() ? j.value("error_description", "") : BodySnippet(r.body);
  absl::StatusCode status = absl::StatusCode::kUnavailable;
  if (r.status == 400 || r.status == 401) {
    status = absl::StatusCode::kUnauthenticated;
  } else if (r.status == 403 || r.status == 404) {
    status = absl::StatusCode::kPermissionDenied;
  }
  return CloudError(
      status, provider, CloudErrorInfo{CloudErrorScope::kProvider, code},
      absl::StrCat(what, " refused (HTTP ", r.status, "): ", text));
}

}  // namespace

absl::StatusOr<GcpServiceAccountKey> ParseServiceAccountKey(
    absl::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("type", "") != "service_account") {
    return absl::InvalidArgumentError(
        "not a service-account key (JSON with \"type\": \"service_account\")");
  }
  GcpServiceAccountKey key;
  key.client_email = j.value("client_email", "");
  key.private_key = j.value("private_key", "");
  key.private_key_id = j.value("private_key_id", "");
  key.token_uri = j.value("token_uri", kGoogleTokenAudience);
  key.project_id = j.value("project_id", "");
  if (key.client_email.empty() || key.private_key.empty()) {
    return absl::InvalidArgumentError(
        "the service-account key lacks client_email or private_key");
  }
  return key;
}

absl::StatusOr<std::string> SignGcpJwt(const GcpServiceAccountKey& key,
                                       absl::Time now,
                                       absl::string_view scope) {
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key.private_key_id.empty()) header["kid"] = key.private_key_id;
  const int64_t iat = absl::ToUnixSeconds(now);
  json claims = {{"iss", key.client_email},
                 {"scope", std::string(scope)},
                 {"aud", kGoogleTokenAudience},
                 {"iat", iat},
                 {"exp", iat + 3600}};
  std::string signed_part =
      absl::StrCat(absl::WebSafeBase64Escape(header.dump()), ".",
                   absl::WebSafeBase64Escape(claims.dump()));
  absl::StatusOr<std::string> sig = Rs256(key.private_key, signed_part);
  if (!sig.ok()) return sig.status();
  return absl::StrCat(signed_part, ".", absl::WebSafeBase64Escape(*sig));
}

GcpTokenSource::GcpTokenSource(CloudHttp& http, Clock& clock,
                               GcpTokenSourceOptions options)
    : http_(http), clock_(clock), options_(std::move(options)) {
  if (options_.key) http_.redactor().Add(options_.key->private_key);
}

absl::StatusOr<std::string> GcpTokenSource::Token() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  if (!token_.empty() && now + options_.refresh_margin < expires_) {
    return token_;
  }
  absl::StatusOr<Fetched> f =
      options_.key ? FetchWithKey() : FetchFromMetadata();
  if (!f.ok()) return f.status();
  http_.redactor().AddRotating(f->token);
  token_ = f->token;
  expires_ = now + f->lifetime;
  return token_;
}

absl::StatusOr<GcpTokenSource::Fetched> GcpTokenSource::FetchWithKey() {
  absl::StatusOr<std::string> jwt =
      SignGcpJwt(*options_.key, clock_.Now(), options_.scope);
  // The assertion travels only in the request body, which no message
  // quotes; it is not added to the redactor.
  if (!jwt.ok()) return jwt.status();
  HttpRequest req;
  req.method = "POST";
  req.url = options_.key->token_uri;
  req.content_type = "application/x-www-form-urlencoded";
  req.body = absl::StrCat("grant_type=", UrlEncode(kJwtGrant),
                          "&assertion=", UrlEncode(*jwt));
  absl::StatusOr<HttpResponse> r = http_.Call("token", std::move(req));
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return TokenError(http_.provider(), *r, "the service-account token");
  }
  auto parsed = ParseTokenAnswer(r->body);
  if (!parsed.ok()) return parsed.status();
  return Fetched{parsed->first, parsed->second};
}

absl::StatusOr<GcpTokenSource::Fetched> GcpTokenSource::FetchFromMetadata() {
  absl::StatusOr<HttpResponse> r =
      http_.Call("metadata_token",
                 GceMetadataRequest(options_.metadata_host,
                                    "instance/service-accounts/default/token"));
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return TokenError(http_.provider(), *r, "the metadata server's token");
  }
  auto parsed = ParseTokenAnswer(r->body);
  if (!parsed.ok()) return parsed.status();
  return Fetched{parsed->first, parsed->second};
}

}  // namespace navarch
