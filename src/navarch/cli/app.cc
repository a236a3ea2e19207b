#include "navarch/cli/app.h"

#include <cstdlib>
#include <memory>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "navarch/cli/client.h"
#include "navarch/cli/command.h"
#include "navarch/cli/parse.h"
#include "navarch/cli/suggest.h"

namespace navarch::cli {
namespace {

struct GlobalFlags {
  ConnectionOptions connection;
  std::string output = "table";
  std::string timeout = "30s";
};

void AddGlobalFlags(CLI::App& app, GlobalFlags& flags) {
  app.add_option("-s,--server", flags.connection.server,
                 "control plane address: host:port, http://host:port, or "
                 "https://host[:port] for TLS")
      ->envname("NAVARCH_SERVER")
      ->capture_default_str()
      ->check(Checked("ADDRESS", [](const std::string& v) {
        return ParseServerAddress(v, false);
      }));
  app.add_option("--token", flags.connection.token,
                 "bearer token sent with every call")
      ->envname("NAVARCH_AUTH_TOKEN");
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
  app.add_option("--ca-file", flags.connection.ca_file,
                 "PEM certificates to verify the server with (turns on TLS)");
  app.add_option("--cert-file", flags.connection.cert_file,
                 "PEM client certificate for mutual TLS (with --key-file)");
  app.add_option("--key-file", flags.connection.key_file,
                 "PEM key of --cert-file");
  app.add_flag("--insecure-skip-verify,--insecure",
               flags.connection.insecure_skip_verify,
               "TLS without verifying the server's certificate (test "
               "clusters only)");
}

void PrintError(std::ostream& err, const absl::Status& status) {
  err << "Error: " << status.message() << "\n";
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
      "Environment: NAVARCH_SERVER (--server), NAVARCH_AUTH_TOKEN (--token).\n"
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
  AddEventCommands(app, commands);
  AddVersionCommand(app, commands);
  AddPolicyCommands(app, commands);
  AddExplainCommand(app, commands);
  AddCompletionCommand(app, commands);

  if (args.empty()) {
    out << app.help();
    return kExitOk;
  }
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
  if (commands.chosen() == nullptr) {  // only global flags were given
    err << "Error: no command given\nRun with --help for more information.\n";
    return kExitUsage;
  }

  ConnectionOptions connection = flags.connection;
  connection.timeout = *ParseTimeout(flags.timeout);  // checked by CLI11
  if (connection.token.empty()) {
    // Upstream's docs also name NAVARCH_TOKEN; honour it second.
    if (const char* t = std::getenv("NAVARCH_TOKEN"); t != nullptr) {
      connection.token = t;
    }
  }
  Output output(out, err,
                flags.output == "json" ? Format::kJson : Format::kTable,
                options.color);
  absl::Status status;
  if (connection.cert_file.empty() != connection.key_file.empty()) {
    status = UsageError(
        "--cert-file and --key-file go together (a client certificate and "
        "its key)");
  } else {
    std::unique_ptr<Client> client;
    Session session(output, clock, [&]() -> absl::StatusOr<Client*> {
      if (client == nullptr) {
        auto c = Client::Connect(connection);
        if (!c.ok()) return c.status();
        client = std::move(*c);
      }
      return client.get();
    });
    status = (*commands.chosen())(session);
  }
  if (status.ok()) return kExitOk;
  PrintError(err, status);
  if (IsUsageError(status)) {
    err << "Run with --help for more information.\n";
    return kExitUsage;
  }
  return kExitError;
}

}  // namespace navarch::cli
