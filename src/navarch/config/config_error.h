// One problem found in a YAML file Navarch reads (configuration, scenario,
// agent configuration, health policy), with where it is.
#ifndef NAVARCH_CONFIG_CONFIG_ERROR_H_
#define NAVARCH_CONFIG_CONFIG_ERROR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace navarch {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem has no position.
  int column = 0;  // 1-based.
  // Dotted key path as the user wrote it ("pools.training.min_nodes",
  // "pools.training.providers[1].name"); empty for the document itself.
  std::string path;
  std::string message;

  // "navarch.yaml:14:5: pools.training: unknown key 'instance_typo'"
  std::string ToString() const;

  bool operator==(const ConfigError&) const = default;
};

// OK, or InvalidArgument whose message is every error, one per line.
absl::Status ErrorsToStatus(const std::vector<ConfigError>& errors);

}  // namespace navarch

#endif  // NAVARCH_CONFIG_CONFIG_ERROR_H_
