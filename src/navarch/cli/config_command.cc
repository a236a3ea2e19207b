// `navarch config`: the contexts of the CLI's config file (contexts.h):
// get-contexts, current-context, use-context, set-context. None of them
// dials a control plane.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/contexts.h"
#include "navarch/cli/format.h"

namespace navarch::cli {
namespace {

std::string TokenSource(const Context& c) {
  if (!c.token_file.empty()) return c.token_file;
  return c.token.empty() ? "-" : "(in file)";
}

std::string Tls(const Context& c) {
  if (c.insecure_skip_verify) return "insecure";
  if (!c.cert_file.empty()) return "mtls";
  if (!c.ca_file.empty() || absl::StartsWithIgnoreCase(c.server, "https://")) {
    return "tls";
  }
  return "-";
}

// Never prints a token itself, only where it comes from.
nlohmann::json ToJson(const Context& c, bool current) {
  nlohmann::json j = {{"name", c.name},
                      {"server", c.server},
                      {"current", current},
                      {"token_file", c.token_file},
                      {"has_token", !c.token.empty()},
                      {"ca_file", c.ca_file},
                      {"cert_file", c.cert_file},
                      {"key_file", c.key_file},
                      {"insecure_skip_verify", c.insecure_skip_verify}};
  return j;
}

absl::Status GetContexts(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(CliConfig config, LoadCliConfig(s.config_path()));
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json array = nlohmann::json::array();
    for (const Context& c : config.contexts) {
      array.push_back(ToJson(c, c.name == config.current_context));
    }
    out.Json(array);
    return absl::OkStatus();
  }
  if (config.contexts.empty()) {
    out.out() << "No contexts in " << s.config_path()
              << " (add one with `navarch config set-context`)\n";
    return absl::OkStatus();
  }
  Table table({"CURRENT", "NAME", "SERVER", "TOKEN", "TLS"});
  for (const Context& c : config.contexts) {
    table.AddRow({c.name == config.current_context ? "*" : "", c.name, c.server,
                  TokenSource(c), Tls(c)});
  }
  table.Print(out.out(), out.color());
  return absl::OkStatus();
}

absl::Status CurrentContext(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(CliConfig config, LoadCliConfig(s.config_path()));
  if (config.current_context.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no current-context is set in ", s.config_path(),
                     " (set one with `navarch config use-context NAME`)"));
  }
  s.output().out() << config.current_context << "\n";
  return absl::OkStatus();
}

absl::Status UseContext(const std::string& name, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(CliConfig config, LoadCliConfig(s.config_path()));
  if (config.Find(name) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("context \"", name, "\" is not in ", s.config_path(),
                     " (known: ", config.KnownNames(), ")"));
  }
  config.current_context = name;
  NAVARCH_RETURN_IF_ERROR(SaveCliConfig(s.config_path(), config));
  s.output().out() << "Switched to context \"" << name << "\".\n";
  return absl::OkStatus();
}

struct SetFlags {
  std::string name;
  std::optional<std::string> server, token, token_file;
  std::optional<std::string> ca_file, cert_file, key_file;
  std::optional<bool> insecure_skip_verify;
};

// A path given on the command line, made absolute: the file resolves
// relative paths against its own folder, not the shell's.
void SetPath(const std::optional<std::string>& given, std::string& field) {
  if (!given.has_value()) return;
  if (given->empty() || absl::StartsWith(*given, "~/")) {
    field = *given;
    return;
  }
  field = std::filesystem::absolute(*given).lexically_normal().string();
}

// Applies the flags given to `c`; checks what the result must hold.
absl::Status Apply(const SetFlags& f, Context& c) {
  if (f.token.has_value() && f.token_file.has_value()) {
    return UsageError("give --token or --token-file, not both");
  }
  if (f.server) c.server = *f.server;
  if (f.token) {
    c.token = *f.token;
    c.token_file.clear();
  }
  if (f.token_file) {
    SetPath(f.token_file, c.token_file);
    c.token.clear();
  }
  SetPath(f.ca_file, c.ca_file);
  SetPath(f.cert_file, c.cert_file);
  SetPath(f.key_file, c.key_file);
  if (f.insecure_skip_verify) c.insecure_skip_verify = *f.insecure_skip_verify;
  if (c.server.empty()) {
    return UsageError(
        absl::StrCat("context \"", c.name, "\" is new: give its --server"));
  }
  if (absl::Status st = ParseServerAddress(c.server, false).status();
      !st.ok()) {
    return UsageError(st.message());
  }
  return absl::OkStatus();
}

absl::Status SetContext(const SetFlags& f, Session& s) {
  if (absl::Status st = ValidateContextName(f.name); !st.ok()) {
    return UsageError(st.message());
  }
  NAVARCH_ASSIGN_OR_RETURN(CliConfig config, LoadCliConfig(s.config_path()));
  Context* existing = config.Find(f.name);
  Context c = existing != nullptr ? *existing : Context{.name = f.name};
  NAVARCH_RETURN_IF_ERROR(Apply(f, c));
  if (existing != nullptr) {
    *existing = c;
  } else {
    config.contexts.push_back(c);
  }
  NAVARCH_RETURN_IF_ERROR(SaveCliConfig(s.config_path(), config));
  s.output().out() << "Context \"" << f.name << "\" "
                   << (existing != nullptr ? "modified" : "created") << " in "
                   << s.config_path() << ".\n";
  return absl::OkStatus();
}

void AddSetContext(CLI::App* group, CommandSet& commands) {
  auto f = std::make_shared<SetFlags>();
  CLI::App* c = commands.Add(
      group, "set-context",
      "create a context, or change the settings given of an existing one",
      [f](Session& s) { return SetContext(*f, s); });
  c->add_option("NAME", f->name, "context name")->required();
  c->add_option("--server", f->server, "control plane address");
  c->add_option("--token", f->token,
                "bearer token, kept in the file (0600); --token-file keeps "
                "it out");
  c->add_option("--token-file", f->token_file,
                "file holding the bearer token, read on each use");
  c->add_option("--ca-file", f->ca_file, "PEM roots to verify the server");
  c->add_option("--cert-file", f->cert_file, "PEM client certificate");
  c->add_option("--key-file", f->key_file, "PEM key of --cert-file");
  c->add_option("--insecure-skip-verify", f->insecure_skip_verify,
                "true: TLS without verifying the server (test clusters)");
}

}  // namespace

void AddConfigCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group = app.add_subcommand(
      "config", "the CLI's contexts: named control planes, one per region");
  group->require_subcommand(1);
  commands.Add(group, "get-contexts",
               "list the contexts; * marks the current one",
               [](Session& s) { return GetContexts(s); });
  commands.Add(group, "current-context", "print the current context's name",
               [](Session& s) { return CurrentContext(s); });
  auto use = std::make_shared<std::string>();
  commands
      .Add(group, "use-context", "make a context the current one",
           [use](Session& s) { return UseContext(*use, s); })
      ->add_option("NAME", *use, "context name")
      ->required();
  AddSetContext(group, commands);
}

}  // namespace navarch::cli
