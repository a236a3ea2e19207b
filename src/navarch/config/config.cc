#include "navarch/config/config.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace navarch {

Config DefaultConfig() { return Config{}; }

absl::Duration EffectiveHeartbeatTimeout(const ServerConfig& server) {
  if (server.heartbeat_timeout > absl::ZeroDuration()) {
    return server.heartbeat_timeout;
  }
  return 3 * server.heartbeat_interval;
}

std::string DatabasePath(const Config& config) {
  if (config.storage.backend == StorageBackend::kMemory) return "";
  if (!config.storage.path.empty()) return config.storage.path;
  const std::string& dir = config.server.data_dir;
  if (dir.empty()) return "navarch.db";
  return absl::EndsWith(dir, "/") ? absl::StrCat(dir, "navarch.db")
                                  : absl::StrCat(dir, "/navarch.db");
}

std::string AgentServerAddress(const ServerConfig& server) {
  if (!server.external_address.empty()) return server.external_address;
  const std::string& address = server.address;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::StrCat("http://", address);
  std::string host = address.substr(0, colon);
  // A wildcard listener is reachable on every interface; agents on the same
  // machine (the local provider, tests) need a host they can dial.
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") {
    host = "localhost";
  }
  return absl::StrCat("http://", host, address.substr(colon));
}

void ResolveConfig(Config* config) {
  config->server.heartbeat_timeout = EffectiveHeartbeatTimeout(config->server);
  config->storage.path = DatabasePath(*config);
  config->server.external_address = AgentServerAddress(config->server);
}

absl::string_view ProviderTypeName(ProviderType type) {
  switch (type) {
    case ProviderType::kLambda:
      return "lambda";
    case ProviderType::kGcp:
      return "gcp";
    case ProviderType::kAws:
      return "aws";
    case ProviderType::kFake:
      return "fake";
    case ProviderType::kLocal:
      return "local";
  }
  return "unknown";
}

absl::string_view StrategyName(SelectionStrategy strategy) {
  switch (strategy) {
    case SelectionStrategy::kPriority:
      return "priority";
    case SelectionStrategy::kCost:
      return "cost";
    case SelectionStrategy::kAvailability:
      return "availability";
    case SelectionStrategy::kRoundRobin:
      return "round-robin";
  }
  return "unknown";
}

absl::string_view AutoscalerTypeName(AutoscalerType type) {
  switch (type) {
    case AutoscalerType::kReactive:
      return "reactive";
    case AutoscalerType::kQueue:
      return "queue";
    case AutoscalerType::kScheduled:
      return "scheduled";
    case AutoscalerType::kPredictive:
      return "predictive";
    case AutoscalerType::kComposite:
      return "composite";
  }
  return "unknown";
}

absl::string_view CompositeModeName(CompositeMode mode) {
  switch (mode) {
    case CompositeMode::kMax:
      return "max";
    case CompositeMode::kMin:
      return "min";
    case CompositeMode::kAvg:
      return "avg";
  }
  return "unknown";
}

absl::string_view NotifierTypeName(NotifierType type) {
  switch (type) {
    case NotifierType::kNoop:
      return "noop";
    case NotifierType::kWebhook:
      return "webhook";
  }
  return "unknown";
}

absl::string_view MetricsSourceTypeName(MetricsSourceType type) {
  switch (type) {
    case MetricsSourceType::kFleet:
      return "fleet";
    case MetricsSourceType::kHttpJson:
      return "http_json";
    case MetricsSourceType::kCommand:
      return "command";
    case MetricsSourceType::kPrometheus:
      return "prometheus";
  }
  return "unknown";
}

absl::string_view StorageBackendName(StorageBackend backend) {
  switch (backend) {
    case StorageBackend::kSqlite:
      return "sqlite";
    case StorageBackend::kMemory:
      return "memory";
  }
  return "unknown";
}

absl::string_view AuthRoleName(AuthRole role) {
  switch (role) {
    case AuthRole::kViewer:
      return "viewer";
    case AuthRole::kAgent:
      return "agent";
    case AuthRole::kOperator:
      return "operator";
  }
  return "unknown";
}

}  // namespace navarch
