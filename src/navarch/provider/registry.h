// Provider factories by type name, and the providers built from `providers:`.
// The registry is an object filled at start-up (no static initialisers):
// main registers the types it ships, then builds one provider per entry.
#ifndef NAVARCH_PROVIDER_REGISTRY_H_
#define NAVARCH_PROVIDER_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/provider.h"

namespace navarch {

// What a factory may use besides its own config entry.
struct ProviderContext {
  Clock* clock = nullptr;  // Required.
  uint64_t seed = 1;       // For providers that draw random numbers.
  std::string data_dir;    // Where providers may keep files.
  // The control plane's gRPC address (HOST:PORT) for agents a provider
  // starts itself; known once the server listens.
  std::function<std::string()> agent_server;
  // Told about every HTTP request a cloud provider makes (metrics); may be
  // null.
  CloudCallObserver* call_observer = nullptr;
};

using ProviderFactory = std::function<absl::StatusOr<std::unique_ptr<Provider>>(
    const ProviderConfig& config, const ProviderContext& context)>;

// Not thread-safe while being filled; read-only (and so thread-safe) after.
class ProviderRegistry {
 public:
  // `type` as written in YAML ("fake", "local", ...). A second registration
  // of one type is ALREADY_EXISTS.
  absl::Status RegisterFactory(const std::string& type,
                               ProviderFactory factory);

  // Builds one provider per entry. A type without a factory is
  // UNIMPLEMENTED and names the provider.
  absl::Status Build(const std::map<std::string, ProviderConfig>& providers,
                     const ProviderContext& context);

  // Adds a ready provider under its name (tests, the simulator).
  absl::Status Add(std::unique_ptr<Provider> provider);

  // nullptr when there is none of that name.
  Provider* Get(const std::string& name) const;
  std::vector<Provider*> All() const;

 private:
  std::map<std::string, ProviderFactory> factories_;
  std::map<std::string, std::unique_ptr<Provider>> providers_;
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_REGISTRY_H_
