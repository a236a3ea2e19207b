#include "navarch/provider/aws/aws_credentials.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace navarch {
namespace {

constexpr absl::Duration kRefreshBefore = absl::Minutes(5);

// section → key → value of an INI file; '#' and ';' start comments.
std::map<std::string, std::map<std::string, std::string>> ParseIni(
    const std::string& text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(
          absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      continue;
    }
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    out[section][std::string(absl::StripAsciiWhitespace(kv.first))] =
        std::string(absl::StripAsciiWhitespace(kv.second));
  }
  return out;
}

}  // namespace

AwsCredentialChain::AwsCredentialChain(AwsCredentialOptions options)
    : options_(std::move(options)) {
  if (!options_.getenv) options_.getenv = ProcessEnv();
}

std::optional<std::string> AwsCredentialChain::Env(
    const std::string& name) const {
  std::optional<std::string> v = options_.getenv(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

absl::StatusOr<std::optional<AwsCredentials>> AwsCredentialChain::FromFile()
    const {
  std::string path = options_.credentials_file;
  if (path.empty()) path = Env("AWS_SHARED_CREDENTIALS_FILE").value_or("");
  if (path.empty()) {
    std::optional<std::string> home = Env("HOME");
    if (!home) return std::nullopt;
    path = *home + "/.aws/credentials";
  }
  std::string profile = options_.profile;
  if (profile.empty()) profile = Env("AWS_PROFILE").value_or("default");
  std::ifstream in(path);
  if (!in) {
    if (!options_.credentials_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read AWS credentials file ", path));
    }
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto ini = ParseIni(text.str());
  auto s = ini.find(profile);
  if (s == ini.end() || !s->second.contains("aws_access_key_id") ||
      !s->second.contains("aws_secret_access_key")) {
    return std::nullopt;
  }
  AwsCredentials c;
  c.access_key_id = s->second["aws_access_key_id"];
  c.secret_access_key = s->second["aws_secret_access_key"];
  c.session_token = s->second["aws_session_token"];
  return c;
}

absl::StatusOr<AwsCredentials> AwsCredentialChain::FromMetadata() {
  MetadataCallOptions call;
  call.timeout = options_.metadata_timeout;
  call.connect_timeout = std::min(options_.metadata_timeout, absl::Seconds(1));
  call.clock = options_.clock;
  Ec2MetadataClient imds(
      Ec2MetadataEndpoint(options_.getenv, options_.metadata_endpoint), call);
  const std::string dir = "meta-data/iam/security-credentials/";
  absl::StatusOr<std::string> role = imds.Get(dir);
  if (!role.ok()) return role.status();
  const std::string name(
      absl::StripAsciiWhitespace(role->substr(0, role->find('\n'))));
  absl::StatusOr<std::string> json = imds.Get(dir + name);
  if (!json.ok()) return json.status();
  const nlohmann::json j = nlohmann::json::parse(*json, nullptr, false);
  auto field = [&j](const char* k) {
    if (!j.is_object()) return std::string();
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>()
                                            : std::string();
  };
  if (field("AccessKeyId").empty() || field("SecretAccessKey").empty()) {
    return absl::UnavailableError(
        "instance metadata: role credentials unreadable");
  }
  AwsCredentials c;
  c.access_key_id = field("AccessKeyId");
  c.secret_access_key = field("SecretAccessKey");
  c.session_token = field("Token");
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, field("Expiration"), &c.expiration,
                       &err)) {
    c.expiration = absl::InfinitePast();  // fetched again next time
  }
  return c;
}

absl::StatusOr<AwsCredentials> AwsCredentialChain::Get() {
  std::optional<std::string> key = Env("AWS_ACCESS_KEY_ID");
  std::optional<std::string> secret = Env("AWS_SECRET_ACCESS_KEY");
  if (key && secret) {
    return AwsCredentials{*key, *secret, Env("AWS_SESSION_TOKEN").value_or("")};
  }
  absl::StatusOr<std::optional<AwsCredentials>> file = FromFile();
  if (!file.ok()) return file.status();
  if (*file) return **file;
  if (Ec2MetadataDisabled(options_.getenv)) {
    return absl::UnauthenticatedError(
        "no AWS credentials: none in the environment or the shared "
        "credentials file, and instance metadata is disabled");
  }
  Clock& clock =
      options_.clock != nullptr ? *options_.clock : RealClock::Default();
  absl::MutexLock lock(&mu_);
  if (cached_ && clock.Now() < cached_->expiration - kRefreshBefore) {
    return *cached_;
  }
  absl::StatusOr<AwsCredentials> fresh = FromMetadata();
  if (fresh.ok()) {
    cached_ = *fresh;
    return *fresh;
  }
  // Still valid though due for refresh: keep using it.
  if (cached_ && clock.Now() < cached_->expiration) return *cached_;
  return absl::UnauthenticatedError(absl::StrCat(
      "no AWS credentials: none in the environment or the shared credentials "
      "file, and instance metadata failed: ",
      fresh.status().message()));
}

}  // namespace navarch
