// The fake's OAuth side: the token endpoint of the service-account flow
// (developers.google.com/identity/protocols/oauth2/service-account) and the
// metadata server's token (cloud.google.com/compute/docs/metadata).
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "navarch/provider/gcp/testing/fake_gce.h"

namespace navarch::testing {
namespace {

using json = nlohmann::json;

constexpr char kAud[] = "https://oauth2.googleapis.com/token";
constexpr char kGrant[] = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// The OAuth error shape: {"error","error_description"}.
void OAuthError(httplib::Response& res, const std::string& error,
                const std::string& description) {
  if (std::getenv("FAKE_GCE_LOG") != nullptr) {
    fprintf(stderr, "fake_gce: token refused: %s: %s\n", error.c_str(),
            description.c_str());
  }
  res.status = 400;
  res.set_content(
      json{{"error", error}, {"error_description", description}}.dump(),
      "application/json");
}

bool VerifyRs256(const std::string& key_pem, const std::string& signed_part,
                 const std::string& signature) {
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(
          ctx, reinterpret_cast<const unsigned char*>(signature.data()),
          signature.size(),
          reinterpret_cast<const unsigned char*>(signed_part.data()),
          signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

// What is wrong with a JWT bearer assertion ("" when nothing).
std::string CheckAssertion(const std::string& jwt, const std::string& key_pem,
                           const std::string& email) {
  std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  std::string header, claims, signature;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[0], &header) ||
      !absl::WebSafeBase64Unescape(parts[1], &claims) ||
      !absl::WebSafeBase64Unescape(parts[2], &signature)) {
    return "malformed JWT";
  }
  if (!VerifyRs256(key_pem, parts[0] + "." + parts[1], signature)) {
    return "Invalid JWT Signature.";
  }
  json h = json::parse(header, nullptr, false);
  json c = json::parse(claims, nullptr, false);
  if (!h.is_object() || h.value("alg", "") != "RS256" ||
      h.value("typ", "") != "JWT") {
    return "Invalid JWT header";
  }
  if (!c.is_object() || c.value("iss", "") != email ||
      c.value("aud", "") != kAud) {
    return "Invalid JWT: iss or aud";
  }
  // An access token needs a scope; an ID token names its audience instead.
  if (c.value("scope", "").empty() && c.value("target_audience", "").empty()) {
    return "Invalid JWT: scope or target_audience is required";
  }
  const int64_t iat = c.value("iat", int64_t{0});
  const int64_t exp = c.value("exp", int64_t{0});
  if (iat <= 0 || exp <= iat || exp - iat > 3600) {
    return "Invalid JWT: Token must be a short-lived token (60 minutes)";
  }
  return "";
}

json JwtClaims(const std::string& jwt) {
  std::vector<std::string> parts = absl::StrSplit(jwt, '.');
  std::string claims;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[1], &claims)) {
    return json::object();
  }
  json c = json::parse(claims, nullptr, false);
  return c.is_object() ? c : json::object();
}

bool ComputeScope(const std::string& scopes) {
  for (absl::string_view s : absl::StrSplit(scopes, ' ')) {
    if (s == "https://www.googleapis.com/auth/compute" ||
        s == "https://www.googleapis.com/auth/cloud-platform") {
      return true;
    }
  }
  return false;
}

}  // namespace

void FakeGce::Token(const httplib::Request& req, httplib::Response& res) {
  httplib::Params form;
  httplib::detail::parse_query_text(req.body, form);
  auto get = [&form](const std::string& key) {
    auto it = form.find(key);
    return it == form.end() ? std::string() : it->second;
  };
  {
    absl::MutexLock lock(&mu_);
    ++token_calls_;
  }
  if (!absl::StartsWith(req.get_header_value("Content-Type"),
                        "application/x-www-form-urlencoded")) {
    return OAuthError(res, "invalid_request", "form body expected");
  }
  if (get("grant_type") != kGrant) {
    return OAuthError(res, "unsupported_grant_type", "Invalid grant_type");
  }
  std::string problem =
      CheckAssertion(get("assertion"), options_.sa_key_pem, options_.sa_email);
  if (!problem.empty()) return OAuthError(res, "invalid_grant", problem);
  const json claims = JwtClaims(get("assertion"));
  if (claims.contains("target_audience")) {
    // An OpenID Connect ID token (gcloud asks for one on activation): a JWT
    // that clients decode but that opens nothing here.
    const json id = {{"iss", "https://accounts.google.com"},
                     {"aud", claims["target_audience"]},
                     {"email", options_.sa_email},
                     {"sub", "1"},
                     {"iat", claims.value("iat", 0)},
                     {"exp", claims.value("exp", 0)}};
    const std::string jwt = absl::StrCat(
        absl::WebSafeBase64Escape(R"({"alg":"RS256","typ":"JWT"})"), ".",
        absl::WebSafeBase64Escape(id.dump()), ".",
        absl::WebSafeBase64Escape("not-signed"));
    res.set_content(json{{"id_token", jwt}}.dump(), "application/json");
    return;
  }
  std::string token;
  {
    absl::MutexLock lock(&mu_);
    token = absl::StrCat("ya29.fake-", issued_.size() + 1, "-sa");
    issued_.push_back(token);
    // Only a token with a Compute scope opens the Compute API.
    if (ComputeScope(JwtClaims(get("assertion")).value("scope", ""))) {
      tokens_.insert(token);
    }
  }
  res.set_content(json{{"access_token", token},
                       {"expires_in", options_.token_lifetime_s},
                       {"token_type", "Bearer"}}
                      .dump(),
                  "application/json");
}

void FakeGce::RouteAuth() {
  httplib::Server& s = server_.server();
  s.Post("/token", [this](const httplib::Request& req, httplib::Response& res) {
    Token(req, res);
  });
  // The metadata server refuses requests without the flavor header (a guard
  // against SSRF) and names itself in its answers.
  auto flavored = [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Metadata-Flavor", "Google");
    if (req.get_header_value("Metadata-Flavor") == "Google") return true;
    res.status = 403;
    res.set_content("Missing Metadata-Flavor:Google header.", "text/plain");
    return false;
  };
  s.Get("/computeMetadata/v1/instance/service-accounts/([^/]+)/",
        [this, flavored](const httplib::Request& req, httplib::Response& res) {
          if (!flavored(req, res)) return;
          res.set_content(json{{"aliases", {"default"}},
                               {"email", options_.sa_email},
                               {"scopes",
                                {"https://www.googleapis.com/auth/"
                                 "cloud-platform"}}}
                              .dump(),
                          "application/json");
        });
  s.Get("/computeMetadata/v1/instance/(name|id|zone|machine-type)",
        [this, flavored](const httplib::Request& req, httplib::Response& res) {
          if (flavored(req, res)) InstanceMetadata(req.matches[1], res);
        });
  s.Get("/computeMetadata/v1/instance/service-accounts/([^/]+)/token",
        [this, flavored](const httplib::Request& req, httplib::Response& res) {
          if (!flavored(req, res)) return;
          const std::string who = req.matches[1];
          if (who != "default" && who != options_.sa_email) {
            res.status = 404;
            return;
          }
          absl::MutexLock lock(&mu_);
          ++metadata_calls_;
          std::string token =
              absl::StrCat("ya29.fake-", issued_.size() + 1, "-md");
          issued_.push_back(token);
          tokens_.insert(token);
          res.set_content(json{{"access_token", token},
                               {"expires_in", options_.token_lifetime_s},
                               {"token_type", "Bearer"}}
                              .dump(),
                          "application/json");
        });
}

void FakeGce::MetadataSpeaksFor(const std::string& name) {
  absl::MutexLock lock(&mu_);
  metadata_instance_ = name;
}

void FakeGce::InstanceMetadata(const std::string& item,
                               httplib::Response& res) {
  absl::MutexLock lock(&mu_);
  auto it = instances_.find(metadata_instance_);
  if (metadata_instance_.empty() || it == instances_.end()) {
    res.status = 404;
    return;
  }
  const json& i = it->second;
  auto last = [](const std::string& url) {
    return url.substr(url.rfind('/') + 1);
  };
  // The project's number, as the metadata server writes it.
  const std::string project = "projects/123456789012";
  std::string value = i.value("name", "");
  if (item == "id") value = i.value("id", "");
  if (item == "zone") {
    value = absl::StrCat(project, "/zones/", last(i.value("zone", "")));
  }
  if (item == "machine-type") {
    value = absl::StrCat(project, "/machineTypes/",
                         last(i.value("machineType", "")));
  }
  res.set_content(value, "application/text");
}

}  // namespace navarch::testing
