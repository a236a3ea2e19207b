#include "navarch/cli/app.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/cli/client.h"
#include "navarch/cli/command.h"
#include "navarch/cli/contexts.h"
#include "navarch/cli/parse.h"
#include "navarch/cli/suggest.h"

namespace navarch::cli {
namespace {

struct GlobalFlags {
  ConnectionOptions connection;
  std::string output = "table";
  std::string timeout = "30s";
  std::string context;
  std::string config_file;
  // The connection flags, to tell whether the command line gave them.
  std::vector<CLI::Option*> connection_flags;
  CLI::Option* server = nullptr;
  CLI::Option* token = nullptr;
  CLI::Option* ca_file = nullptr;
  CLI::Option* cert_file = nullptr;
  CLI::Option* key_file = nullptr;
};

void AddTlsFlags(CLI::App& app, GlobalFlags& flags) {
  flags.ca_file = app.add_option(
      "--ca-file", flags.connection.ca_file,
      "PEM certificates to verify the server with (turns on TLS)");
  flags.cert_file =
      app.add_option("--cert-file", flags.connection.cert_file,
                     "PEM client certificate for mutual TLS (with --key-file)");
  flags.key_file = app.add_option("--key-file", flags.connection.key_file,
                                  "PEM key of --cert-file");
  CLI::Option* insecure = app.add_flag(
      "--insecure-skip-verify,--insecure",
      flags.connection.insecure_skip_verify,
      "TLS without verifying the server's certificate (test clusters only)");
  flags.connection_flags.insert(
      flags.connection_flags.end(),
      {flags.ca_file, flags.cert_file, flags.key_file, insecure});
}

void AddContextFlags(CLI::App& app, GlobalFlags& flags) {
  CLI::Option* context = app.add_option(
      "--context", flags.context,
      "the context (control plane) of the config file to use instead of "
      "its current-context");
  flags.connection_flags.push_back(context);
  app.add_option("--config-file", flags.config_file,
                 "the CLI's config file of contexts (default: "
                 "$NAVARCH_CONFIG, else "
                 "$XDG_CONFIG_HOME/navarch/config.yaml, else "
                 "~/.config/navarch/config.yaml)");
}

void AddGlobalFlags(CLI::App& app, GlobalFlags& flags) {
  // NAVARCH_SERVER and NAVARCH_AUTH_TOKEN are read in Overrides, not by
  // CLI11, so that --all-contexts can refuse the flags but not the variables.
  flags.server = app.add_option("-s,--server", flags.connection.server,
                                "control plane address: host:port, "
                                "http://host:port, or https://host[:port] for "
                                "TLS (env NAVARCH_SERVER)")
                     ->capture_default_str()
                     ->check(Checked("ADDRESS", [](const std::string& v) {
                       return ParseServerAddress(v, false);
                     }));
  flags.token = app.add_option("--token", flags.connection.token,
                               "bearer token sent with every call (env "
                               "NAVARCH_AUTH_TOKEN)");
  flags.connection_flags.insert(flags.connection_flags.end(),
                                {flags.server, flags.token});
  app.add_option("-o,--output", flags.output, "output format: table or json")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "table" || v == "json") return "";
            return absl::StrCat("unsupported output format: ", v,
                                " (use table or json)");
          },
          "table|json"));
  app.add_option("--timeout", flags.timeout,
                 "deadline of each call to the control plane (Go duration)")
      ->capture_default_str()
      ->check(Checked("DURATION", ParseTimeout));
  AddTlsFlags(app, flags);
  AddContextFlags(app, flags);
}

std::optional<std::string> Given(const CLI::Option* flag,
                                 const std::string& value) {
  if (flag->count() == 0) return std::nullopt;
  return value;
}

// Flags first, then the environment.
Overrides FlagsAndEnvironment(const GlobalFlags& f, const Getenv& env) {
  Overrides o;
  o.server = Given(f.server, f.connection.server);
  if (!o.server) o.server = env("NAVARCH_SERVER");
  o.token = Given(f.token, f.connection.token);
  // Upstream's docs also name NAVARCH_TOKEN; honour it second.
  if (!o.token) o.token = env("NAVARCH_AUTH_TOKEN");
  if (!o.token) o.token = env("NAVARCH_TOKEN");
  o.ca_file = Given(f.ca_file, f.connection.ca_file);
  o.cert_file = Given(f.cert_file, f.connection.cert_file);
  o.key_file = Given(f.key_file, f.connection.key_file);
  o.insecure_skip_verify = f.connection.insecure_skip_verify;
  return o;
}

// Where commands connect: the config file is read on first use only, so
// commands that need no server never read it.
class Connector {
 public:
  Connector(const GlobalFlags& flags, Getenv env)
      : flags_(flags),
        env_(std::move(env)),
        path_(ConfigPath(flags.config_file, env_)),
        timeout_(*ParseTimeout(flags.timeout)) {}  // checked by CLI11

  const std::string& path() const { return path_; }

  absl::StatusOr<Client*> Single() {
    if (client_ != nullptr) return client_.get();
    NAVARCH_ASSIGN_OR_RETURN(const CliConfig* config, Config());
    NAVARCH_ASSIGN_OR_RETURN(
        ConnectionOptions o,
        ResolveConnection(FlagsAndEnvironment(flags_, env_), flags_.context,
                          *config, path_, env_));
    if (o.cert_file.empty() != o.key_file.empty()) {
      return UsageError(
          "--cert-file and --key-file go together (a client certificate "
          "and its key)");
    }
    o.timeout = timeout_;
    NAVARCH_ASSIGN_OR_RETURN(client_, Client::Connect(o));
    return client_.get();
  }

  absl::StatusOr<std::vector<Target>> All() {
    for (const CLI::Option* flag : flags_.connection_flags) {
      if (flag->count() > 0) {
        return UsageError(absl::StrCat(
            "--all-contexts uses each context's own server, token and TLS "
            "settings; drop ",
            flag->get_name()));
      }
    }
    NAVARCH_ASSIGN_OR_RETURN(const CliConfig* config, Config());
    if (config->contexts.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--all-contexts: no contexts in ", path_,
          " (add one with `navarch config set-context NAME --server ...`)"));
    }
    std::vector<Target> targets;
    for (const Context& c : config->contexts) {
      absl::StatusOr<ConnectionOptions> o = ContextConnection(c, path_, env_);
      if (o.ok()) o->timeout = timeout_;
      targets.push_back({c.name, std::move(o)});
    }
    return targets;
  }

 private:
  absl::StatusOr<const CliConfig*> Config() {
    if (!config_.has_value()) {
      NAVARCH_ASSIGN_OR_RETURN(config_, LoadCliConfig(path_));
    }
    return &*config_;
  }

  const GlobalFlags& flags_;
  Getenv env_;
  std::string path_;
  absl::Duration timeout_;
  std::optional<CliConfig> config_;
  std::unique_ptr<Client> client_;
};

void PrintError(std::ostream& err, const absl::Status& status) {
  err << "Error: " << status.message() << "\n";
}

// Parses `args` into `app`; an exit code when there is nothing to run
// (help, version, a usage error).
std::optional<int> Parse(CLI::App& app, const std::vector<std::string>& args,
                         std::ostream& out, std::ostream& err) {
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    // A mistyped command reads better with the nearest real one than with
    // CLI11's "argument was not expected".
    if (auto unknown = UnknownCommand(app, args); unknown.has_value()) {
      err << "Error: " << *unknown
          << "\nRun with --help for more information.\n";
    } else {
      app.exit(e, out, err);
    }
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out,
        std::ostream& err, Clock& clock, const RunOptions& options) {
  CLI::App app{
      "navarch: operate a Navarch GPU fleet (nodes, instances, pools, "
      "providers, events).",
      "navarch"};
  app.set_version_flag("--version",
                       std::string("navarch version ") + NAVARCH_VERSION);
  app.footer(
      "Environment: NAVARCH_SERVER (--server), NAVARCH_AUTH_TOKEN (--token),\n"
      "NAVARCH_CONFIG (--config-file). Precedence: flags > environment >\n"
      "--context or the config file's current-context > defaults.\n"
      "Exit codes: 0 success, 1 error, 2 usage.");
  // Usage errors read like the other errors: "Error: ..." once, then a hint.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return absl::StrCat("Error: ", e.what(),
                        "\nRun with --help for more information.\n");
  });
  // Global flags work after the command too (`navarch list -o json`).
  app.fallthrough();
  GlobalFlags flags;
  AddGlobalFlags(app, flags);

  CommandSet commands;
  AddNodeCommands(app, commands);
  AddInstanceCommands(app, commands);
  AddPoolCommands(app, commands);
  AddProviderCommands(app, commands);
  AddClusterCommands(app, commands);
  AddEventCommands(app, commands);
  AddVersionCommand(app, commands);
  AddPolicyCommands(app, commands);
  AddExplainCommand(app, commands);
  AddConfigCommands(app, commands);
  AddCompletionCommand(app, commands);

  if (args.empty()) {
    out << app.help();
    return kExitOk;
  }
  if (std::optional<int> code = Parse(app, args, out, err)) return *code;
  if (commands.chosen() == nullptr) {  // only global flags were given
    err << "Error: no command given\nRun with --help for more information.\n";
    return kExitUsage;
  }

  Output output(out, err,
                flags.output == "json" ? Format::kJson : Format::kTable,
                options.color);
  Connector connector(flags, ProcessEnv());
  Session session(output, clock, [&] { return connector.Single(); },
                  {connector.path(), [&] { return connector.All(); }});
  absl::Status status = (*commands.chosen())(session);
  if (status.ok()) return kExitOk;
  PrintError(err, status);
  if (IsUsageError(status)) {
    err << "Run with --help for more information.\n";
    return kExitUsage;
  }
  return kExitError;
}

}  // namespace navarch::cli
