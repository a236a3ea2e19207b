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
  if (config.storage.backend != StorageBackend::kSqlite) return "";
  if (!config.storage.path.empty()) return config.storage.path;
  const std::string& dir = config.server.data_dir;
  if (dir.empty()) return "navarch.db";
  return absl::EndsWith(dir, "/") ? absl::StrCat(dir, "navarch.db")
                                  : absl::StrCat(dir, "/navarch.db");
}

namespace {

// "http://<host>:<port>" of a listen address.
std::string UrlOfListenAddress(const std::string& address) {
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

}  // namespace

std::string AgentServerAddress(const ServerConfig& server) {
  if (!server.external_address.empty()) return server.external_address;
  return UrlOfListenAddress(server.address);
}

std::string AgentHttpAddress(const ServerConfig& server) {
  if (!server.external_http_address.empty()) {
    return server.external_http_address;
  }
  const std::string listen = UrlOfListenAddress(server.http_address);
  const std::string& ext = server.external_address;
  const size_t scheme_end = ext.find("://");
  if (ext.empty() || scheme_end == std::string::npos) return listen;
  // The host machines already reach for gRPC, on the HTTP port.
  const size_t host_start = scheme_end + 3;
  std::string host =
      ext.substr(host_start, ext.find('/', host_start) - (host_start));
  if (const size_t colon = host.rfind(':');
      colon != std::string::npos &&
      host.find(']', colon) == std::string::npos) {
    host.resize(colon);
  }
  return absl::StrCat(ext.substr(0, host_start), host,
                      listen.substr(listen.rfind(':')));
}

void ResolveConfig(Config* config) {
  config->server.heartbeat_timeout = EffectiveHeartbeatTimeout(config->server);
  config->storage.path = DatabasePath(*config);
  config->server.external_http_address = AgentHttpAddress(config->server);
  config->server.external_address = AgentServerAddress(config->server);
}

bool PoolOnCloudsOnly(const Config& config, const PoolConfig& pool) {
  for (const PoolProvider& pp : pool.providers) {
    auto it = config.providers.find(pp.name);
    if (it == config.providers.end()) return false;
    const ProviderType type = it->second.type;
    if (type != ProviderType::kLambda && type != ProviderType::kGcp &&
        type != ProviderType::kAws) {
      return false;
    }
  }
  return !pool.providers.empty();
}

absl::string_view SshHostKeyPolicyName(SshHostKeyPolicy policy) {
  switch (policy) {
    case SshHostKeyPolicy::kKnownHosts:
      return "known_hosts";
    case SshHostKeyPolicy::kTofu:
      return "tofu";
    case SshHostKeyPolicy::kInsecure:
      return "insecure";
  }
  return "unknown";
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
    case StorageBackend::kPostgres:
      return "postgres";
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
