// How a command group plugs into the navarch CLI. Each group (nodes.cc,
// instances.cc, ...) declares its subcommands and flags on CLI11 and hands a
// Runner to CommandSet; after parsing, the app runs the chosen Runner with a
// Session. A new group is one file and one line in app.cc.
#ifndef NAVARCH_CLI_COMMAND_H_
#define NAVARCH_CLI_COMMAND_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/base/clock.h"
#include "navarch/cli/client.h"
#include "navarch/cli/contexts.h"
#include "nlohmann/json.hpp"

namespace navarch::cli {

enum class Format { kTable, kJson };

// Where a command writes. Data goes to out(); warnings and errors to err(),
// so `-o json | jq` always reads clean JSON.
class Output {
 public:
  Output(std::ostream& out, std::ostream& err, Format format, bool color)
      : out_(out), err_(err), format_(format), color_(color) {}

  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  bool json() const { return format_ == Format::kJson; }
  // Whether to paint: on a terminal only, and never in JSON.
  bool color() const { return color_ && !json(); }
  // Pretty-printed, two spaces, one trailing newline.
  void Json(const nlohmann::json& value);
  // "Warning: ..." on stderr.
  void Warn(absl::string_view message);

 private:
  std::ostream& out_;
  std::ostream& err_;
  Format format_;
  bool color_;
};

// What commands know of the CLI's contexts (contexts.h).
struct SessionContexts {
  // The config file `navarch config` reads and writes.
  std::string config_path;
  // Every context's connection, in file order (--all-contexts); an error
  // when the file has none or the command line also names a server.
  std::function<absl::StatusOr<std::vector<Target>>()> targets;
};

// What a running command may use. The client connects on first use, so
// commands that need no server (`version --client`, `config`) never dial,
// and a broken context does not stop `config use-context` from fixing it.
class Session {
 public:
  Session(Output& output, Clock& clock,
          std::function<absl::StatusOr<Client*>()> connect,
          SessionContexts contexts = {})
      : output_(output),
        clock_(clock),
        connect_(std::move(connect)),
        contexts_(std::move(contexts)) {}

  Output& output() { return output_; }
  Clock& clock() { return clock_; }
  absl::StatusOr<Client*> client() { return connect_(); }
  const std::string& config_path() const { return contexts_.config_path; }
  absl::StatusOr<std::vector<Target>> targets() const {
    if (!contexts_.targets) return absl::UnimplementedError("no contexts");
    return contexts_.targets();
  }

 private:
  Output& output_;
  Clock& clock_;
  std::function<absl::StatusOr<Client*>()> connect_;
  SessionContexts contexts_;
};

using Runner = std::function<absl::Status(Session&)>;

// A usage error found after parsing (a flag value CLI11 could not check):
// exit code 2 like CLI11's own. Commands return it instead of running.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

class CommandSet {
 public:
  // Adds subcommand `name` to `parent`; `run` runs if it is the one chosen.
  CLI::App* Add(CLI::App* parent, const std::string& name,
                const std::string& description, Runner run);
  // The chosen command's runner after parsing, or nullptr.
  const Runner* chosen() const { return chosen_; }

 private:
  std::vector<std::unique_ptr<Runner>> runners_;
  const Runner* chosen_ = nullptr;
};

// The command groups, one file each.
void AddNodeCommands(CLI::App& app, CommandSet& commands);      // nodes.cc
void AddInstanceCommands(CLI::App& app, CommandSet& commands);  // instances.cc
void AddPoolCommands(CLI::App& app, CommandSet& commands);      // pools.cc
void AddProviderCommands(CLI::App& app, CommandSet& commands);  // providers.cc
void AddClusterCommands(CLI::App& app, CommandSet& commands);   // cluster.cc
void AddEventCommands(CLI::App& app, CommandSet& commands);     // events.cc
void AddVersionCommand(CLI::App& app, CommandSet& commands);    // version.cc
void AddPolicyCommands(CLI::App& app, CommandSet& commands);    // policy.cc
void AddExplainCommand(CLI::App& app, CommandSet& commands);    // explain.cc
void AddConfigCommands(CLI::App& app, CommandSet& commands);    // config.cc
// After every other group: it describes the whole tree.
void AddCompletionCommand(CLI::App& app,
                          CommandSet& commands);  // completion.cc

// A CLI11 validator from one of our parse functions (parse.h), so a bad flag
// value is a usage error with our message.
template <typename Parse>
CLI::Validator Checked(std::string description, Parse parse) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        auto r = parse(value);
        return r.ok() ? std::string() : std::string(r.status().message());
      },
      std::move(description));
}

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_COMMAND_H_
