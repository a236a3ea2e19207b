// Loads the control plane's YAML configuration into a Config.
//
// Strict where upstream was lenient: an unknown key, a value of the wrong
// type, a bad duration or an inconsistent setting is an error that names the
// file, line, column and key path; all of them are reported together, in file
// order. Upstream configuration files load unchanged: the keys its
// documentation uses are accepted as aliases of the canonical ones (see
// docs/configuration.md).
//
// Defaults are applied after validation, as upstream does; values that derive
// from others (heartbeat_timeout, storage.path, external_address) are left to
// ResolveConfig() in config.h.
#ifndef NAVARCH_CONFIG_CONFIG_LOADER_H_
#define NAVARCH_CONFIG_CONFIG_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/config/config.h"
#include "navarch/config/config_error.h"

namespace navarch {

// Everything one load produced.
struct ConfigLoadResult {
  Config config;                    // Meaningful only when ok().
  std::vector<ConfigError> errors;  // In file order.

  bool ok() const { return errors.empty(); }
  // OK, or InvalidArgument whose message is every error, one per line.
  absl::Status status() const;
};

// Parses `yaml`; `filename` is only used in messages. An empty document is a
// valid configuration (all defaults).
ConfigLoadResult ParseConfig(absl::string_view yaml,
                             absl::string_view filename);

absl::StatusOr<Config> LoadConfigString(absl::string_view yaml,
                                        absl::string_view filename);

// Reads and parses a file. NotFound (or another code from errno) when it
// cannot be read; InvalidArgument when it is not a valid configuration.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// The contents of a configuration file, with the size bounded.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path);

}  // namespace navarch

#endif  // NAVARCH_CONFIG_CONFIG_LOADER_H_
