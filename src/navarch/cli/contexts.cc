#include "navarch/cli/contexts.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/file.h"
#include "navarch/config/config_error.h"
#include "navarch/config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace navarch::cli {
namespace {

using yaml::Entry;
using yaml::KeySpec;
using yaml::Site;
using yaml::YamlReader;

KeySpec Text(YamlReader& r, std::vector<std::string> names, std::string* dst) {
  return {std::move(names), "", [&r, dst](const Entry& e) {
            if (std::optional<std::string> s = r.String(e)) *dst = *s;
          }};
}

KeySpec Flag(YamlReader& r, const char* name, bool* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<bool> b = r.Bool(e)) *dst = *b;
          }};
}

std::vector<KeySpec> TlsKeys(YamlReader& r, Context& c) {
  return {Text(r, {"ca_file"}, &c.ca_file),
          Text(r, {"cert_file"}, &c.cert_file),
          Text(r, {"key_file"}, &c.key_file),
          Flag(r, "insecure_skip_verify", &c.insecure_skip_verify)};
}

std::vector<KeySpec> ContextKeys(YamlReader& r, Context& c) {
  return {Text(r, {"name"}, &c.name),
          Text(r, {"server"}, &c.server),
          Text(r, {"token"}, &c.token),
          Text(r, {"token_file"}, &c.token_file),
          {{"tls"}, "", [&r, &c](const Entry& e) {
             r.ReadMap(e.value, e.site, e.slot, TlsKeys(r, c));
           }}};
}

// One item of `contexts:`; checks what a single key cannot.
void ReadContext(YamlReader& r, const Entry& item, CliConfig& config) {
  Context c;
  if (!r.ReadMap(item.value, item.site, item.slot, ContextKeys(r, c))) return;
  if (c.name.empty()) return r.Error(item.site, "a context needs a name");
  if (absl::Status s = ValidateContextName(c.name); !s.ok()) {
    return r.Error(item.site, std::string(s.message()));
  }
  if (!r.ClaimName(absl::StrCat("context:", c.name), item.site,
                   absl::StrCat("context \"", c.name, "\""))) {
    return;
  }
  if (c.server.empty()) {
    return r.Error(item.site,
                   absl::StrCat("context \"", c.name, "\" needs a server"));
  }
  if (!c.token.empty() && !c.token_file.empty()) {
    return r.Error(item.site, absl::StrCat("context \"", c.name,
                                           "\": give token or token_file, "
                                           "not both"));
  }
  config.contexts.push_back(std::move(c));
}

std::vector<KeySpec> TopKeys(YamlReader& r, CliConfig& config) {
  return {
      Text(r, {"current-context", "current_context"}, &config.current_context),
      {{"contexts"}, "", [&r, &config](const Entry& e) {
         for (const Entry& item : r.ListItems(e.value, e.site, e.slot)) {
           ReadContext(r, item, config);
         }
       }}};
}

// "~/x" under $HOME; a relative path beside the config file.
std::string ResolvePath(const std::string& path, const std::string& config_path,
                        const Getenv& env) {
  if (path.empty()) return path;
  if (absl::StartsWith(path, "~/")) {
    std::optional<std::string> home = env("HOME");
    return absl::StrCat(home.value_or(""), path.substr(1));
  }
  std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(config_path).parent_path() / p).string();
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read token_file ", path, ": ", text.status().message()));
  }
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("token_file ", path, " is empty"));
  }
  return token;
}

absl::Status UnknownContext(const std::string& name, const CliConfig& config,
                            const std::string& config_path) {
  return absl::NotFoundError(absl::StrCat(
      "context \"", name, "\" is not in ", config_path, " (known: ",
      config.KnownNames(), "; see `navarch config get-contexts`)"));
}

// The context a command without --all-contexts uses, or null for none.
absl::StatusOr<const Context*> ChosenContext(const std::string& context_flag,
                                             const CliConfig& config,
                                             const std::string& config_path) {
  const std::string& name =
      context_flag.empty() ? config.current_context : context_flag;
  if (name.empty()) return nullptr;
  const Context* c = config.Find(name);
  if (c == nullptr) return UnknownContext(name, config, config_path);
  return c;
}

template <typename T>
void Override(const std::optional<T>& value, T& field) {
  if (value.has_value()) field = *value;
}

}  // namespace

const Context* CliConfig::Find(absl::string_view name) const {
  for (const Context& c : contexts) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Context* CliConfig::Find(absl::string_view name) {
  return const_cast<Context*>(std::as_const(*this).Find(name));
}

std::string CliConfig::KnownNames() const {
  if (contexts.empty()) return "none";
  std::vector<std::string> names;
  for (const Context& c : contexts) names.push_back(c.name);
  return absl::StrJoin(names, ", ");
}

Getenv ProcessEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

std::string ConfigPath(const std::string& flag, const Getenv& env) {
  if (!flag.empty()) return flag;
  if (auto p = env("NAVARCH_CONFIG")) return *p;
  if (auto xdg = env("XDG_CONFIG_HOME")) {
    return absl::StrCat(*xdg, "/navarch/config.yaml");
  }
  return absl::StrCat(env("HOME").value_or(""), "/.config/navarch/config.yaml");
}

absl::Status ValidateContextName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char ch : name) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(ch)) ||
                ch == '.' || ch == '_' || ch == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid context name \"", name,
                   "\": use 1 to 63 letters, digits, '.', '_' or '-'"));
}

absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view text,
                                         const std::string& filename) {
  CliConfig config;
  YamlReader r(filename);
  if (std::optional<YAML::Node> root = r.Load(text)) {
    r.Guard([&] {
      r.ReadMap(*root, YamlReader::SiteOf(*root, Site{1, 1, ""}, ""), "",
                TopKeys(r, config));
    });
  }
  std::vector<ConfigError> errors = r.TakeErrors();
  if (!errors.empty()) return ErrorsToStatus(errors);
  return config;
}

absl::StatusOr<CliConfig> LoadCliConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return CliConfig();
  if (!text.ok()) return text.status();
  return ParseCliConfig(*text, path);
}

std::string RenderCliConfig(const CliConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (!config.current_context.empty()) {
    out << YAML::Key << "current-context" << YAML::Value
        << config.current_context;
  }
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq;
  for (const Context& c : config.contexts) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << c.name
        << YAML::Key << "server" << YAML::Value << c.server;
    if (!c.token.empty()) out << YAML::Key << "token" << YAML::Value << c.token;
    if (!c.token_file.empty()) {
      out << YAML::Key << "token_file" << YAML::Value << c.token_file;
    }
    if (!c.ca_file.empty() || !c.cert_file.empty() || !c.key_file.empty() ||
        c.insecure_skip_verify) {
      out << YAML::Key << "tls" << YAML::Value << YAML::BeginMap;
      if (!c.ca_file.empty())
        out << YAML::Key << "ca_file" << YAML::Value << c.ca_file;
      if (!c.cert_file.empty())
        out << YAML::Key << "cert_file" << YAML::Value << c.cert_file;
      if (!c.key_file.empty())
        out << YAML::Key << "key_file" << YAML::Value << c.key_file;
      if (c.insecure_skip_verify) {
        out << YAML::Key << "insecure_skip_verify" << YAML::Value << true;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return absl::StrCat(out.c_str(), "\n");
}

absl::Status SaveCliConfig(const std::string& path, const CliConfig& config) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    bool created = std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
    }
    if (created) ::chmod(dir.c_str(), 0700);
  }
  return WriteFileAtomically(path, RenderCliConfig(config), 0600);
}

absl::StatusOr<ConnectionOptions> ContextConnection(
    const Context& context, const std::string& config_path, const Getenv& env) {
  ConnectionOptions o;
  o.server = context.server;
  o.token = context.token;
  if (!context.token_file.empty()) {
    absl::StatusOr<std::string> token =
        ReadToken(ResolvePath(context.token_file, config_path, env));
    if (!token.ok()) return token.status();
    o.token = std::move(*token);
  }
  o.ca_file = ResolvePath(context.ca_file, config_path, env);
  o.cert_file = ResolvePath(context.cert_file, config_path, env);
  o.key_file = ResolvePath(context.key_file, config_path, env);
  o.insecure_skip_verify = context.insecure_skip_verify;
  return o;
}

absl::StatusOr<ConnectionOptions> ResolveConnection(
    const Overrides& overrides, const std::string& context_flag,
    const CliConfig& config, const std::string& config_path,
    const Getenv& env) {
  absl::StatusOr<const Context*> chosen =
      ChosenContext(context_flag, config, config_path);
  if (!chosen.ok()) return chosen.status();
  ConnectionOptions o;
  if (*chosen != nullptr) {
    // A token given on the command line makes the context's unneeded: its
    // token_file is not read (it may not exist where the flag is used).
    Context c = **chosen;
    if (overrides.token.has_value()) c.token_file.clear();
    absl::StatusOr<ConnectionOptions> from =
        ContextConnection(c, config_path, env);
    if (!from.ok()) {
      return absl::Status(
          from.status().code(),
          absl::StrCat("context \"", c.name, "\": ", from.status().message()));
    }
    o = std::move(*from);
  }
  Override(overrides.server, o.server);
  Override(overrides.token, o.token);
  Override(overrides.ca_file, o.ca_file);
  Override(overrides.cert_file, o.cert_file);
  Override(overrides.key_file, o.key_file);
  o.insecure_skip_verify =
      o.insecure_skip_verify || overrides.insecure_skip_verify;
  return o;
}

}  // namespace navarch::cli
