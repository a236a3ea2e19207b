// The CLI's contexts, as kubectl has them: a YAML file of named control
// planes (one per region: server, token, TLS settings) and the one in use.
// Independent control planes stay independent; the CLI only knows where
// each one is. This file holds the file's model, reading and writing it, and
// which connection a command gets from flags, environment and contexts.
#ifndef NAVARCH_CLI_CONTEXTS_H_
#define NAVARCH_CLI_CONTEXTS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/cli/client.h"

namespace navarch::cli {

// One control plane the CLI knows by name. Paths may start with "~/" and,
// when relative, are relative to the config file's folder.
struct Context {
  std::string name;
  std::string server;
  std::string token;       // written in the file, or
  std::string token_file;  // read when the CLI connects (whitespace trimmed)
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;

  bool operator==(const Context&) const = default;
};

// ~/.config/navarch/config.yaml.
struct CliConfig {
  std::string current_context;  // may be empty
  std::vector<Context> contexts;

  const Context* Find(absl::string_view name) const;
  Context* Find(absl::string_view name);
  // "eu-west, us-east", or "none" when there are none.
  std::string KnownNames() const;

  bool operator==(const CliConfig&) const = default;
};

// An environment variable, or nullopt when unset or empty (as CLI11 reads
// them). Injected so tests need not touch the process environment.
using Getenv = std::function<std::optional<std::string>(const char*)>;
Getenv ProcessEnv();

// The config file: `flag` (--config-file) if given, else $NAVARCH_CONFIG,
// else $XDG_CONFIG_HOME/navarch/config.yaml, else
// $HOME/.config/navarch/config.yaml.
std::string ConfigPath(const std::string& flag, const Getenv& env);

// Strict: unknown keys, wrong types, duplicate or bad names, a token given
// both ways are errors with file:line:column.
absl::StatusOr<CliConfig> ParseCliConfig(absl::string_view text,
                                         const std::string& filename);
// A file that does not exist is an empty config.
absl::StatusOr<CliConfig> LoadCliConfig(const std::string& path);
// YAML that ParseCliConfig reads back to `config` (comments are not kept).
std::string RenderCliConfig(const CliConfig& config);
// Writes `config` to `path` atomically (temporary file, rename) with mode
// 0600, since it may hold tokens; creates the folder (0700) if missing.
absl::Status SaveCliConfig(const std::string& path, const CliConfig& config);

// A context name: letters, digits, '.', '_', '-'; 1 to 63 characters.
absl::Status ValidateContextName(absl::string_view name);

// What the command line or the environment set (nullopt: neither did).
// The flag wins over the environment; app.cc merges them.
struct Overrides {
  std::optional<std::string> server;
  std::optional<std::string> token;
  std::optional<std::string> ca_file;
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
  bool insecure_skip_verify = false;
};

// The connection of `context` as written in the file at `config_path`,
// with its paths resolved and its token_file read (errors do not name the
// context: the caller does).
absl::StatusOr<ConnectionOptions> ContextConnection(
    const Context& context, const std::string& config_path, const Getenv& env);

// The connection a command uses, field by field: flags and environment
// (`overrides`) > the context named by `context_flag` (--context), or the
// file's current-context when that is empty > the built-in defaults
// (localhost:50051, no token, no TLS). An unknown context is an error that
// lists the known ones.
absl::StatusOr<ConnectionOptions> ResolveConnection(
    const Overrides& overrides, const std::string& context_flag,
    const CliConfig& config, const std::string& config_path, const Getenv& env);

// One context to run a command against (--all-contexts), or why it cannot
// be (an unreadable token_file): that context fails, the others still run.
struct Target {
  std::string context;
  absl::StatusOr<ConnectionOptions> connection;
};

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_CONTEXTS_H_
