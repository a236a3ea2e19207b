// The control plane's configuration as typed values. Every default lives in a
// member initialiser below, so `Config{}` is the configuration of an empty
// file. config_loader.h turns YAML into these structs; docs/configuration.md
// is the user-facing reference for every key.
#ifndef NAVARCH_CONFIG_CONFIG_H_
#define NAVARCH_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "navarch/base/logging.h"

namespace navarch {

// ---------------------------------------------------------------- notifier

enum class NotifierType { kNoop, kWebhook };

// Endpoints of a workload system told about cordon / uncordon / drain. An
// empty URL means "skip this call and report success".
struct WebhookConfig {
  std::string cordon_url;
  std::string uncordon_url;
  std::string drain_url;
  std::string drain_status_url;
  absl::Duration timeout = absl::Seconds(30);
  // Sent as written: `${VAR}` is not expanded (upstream does not either).
  std::map<std::string, std::string> headers;

  bool operator==(const WebhookConfig&) const = default;
};

struct NotifierConfig {
  NotifierType type = NotifierType::kNoop;
  WebhookConfig webhook;  // Used only when type == kWebhook.

  bool operator==(const NotifierConfig&) const = default;
};

// ------------------------------------------------------------------ server

// TLS for both listeners (gRPC and HTTP). Files are read once, at start-up.
struct TlsConfig {
  std::string cert_file;  // PEM certificate chain; empty: no TLS.
  std::string key_file;   // PEM private key of the first certificate.
  // PEM CA bundle. Set: clients must present a certificate it signed (mTLS),
  // and a certificate naming a node authenticates that node's agent.
  std::string client_ca_file;

  bool enabled() const { return !cert_file.empty(); }
  bool operator==(const TlsConfig&) const = default;
};

// Limits of the HTTP listener (server.http; docs/security.md).
struct HttpLimitsConfig {
  int threads = 32;            // workers for requests (plus one for probes)
  int max_connections = 1024;  // open at once, in all
  // From one client address; behind a load balancer, every connection comes
  // from it: raise this or set 0 (no cap).
  int max_connections_per_client = 128;
  absl::Duration head_timeout = absl::Seconds(10);  // request line + headers
  absl::Duration body_timeout = absl::Seconds(30);

  bool operator==(const HttpLimitsConfig&) const = default;
};

struct ServerConfig {
  std::string address = ":50051";      // gRPC listener, host:port.
  std::string http_address = ":8080";  // REST, Connect JSON, metrics, probes.
  // How agents and bootstrap scripts reach the control plane (a URL). When
  // the file leaves it empty, ResolveConfig() derives it from `address`.
  std::string external_address;
  // How new machines reach the HTTP listener (a URL; the agent download of
  // {{.PackageURL}}). Empty: see AgentHttpAddress.
  std::string external_http_address;
  std::string data_dir = "./navarch-data";
  absl::Duration heartbeat_interval = absl::Seconds(30);
  // 0 (the default): ResolveConfig() sets 3 x heartbeat_interval.
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
  absl::Duration health_check_interval = absl::Seconds(60);
  absl::Duration autoscale_interval = absl::Seconds(30);
  // How often buffered heartbeat timestamps and metrics are written to the
  // store (docs/architecture.md: at most a second apart). Shorter spreads the
  // writes: p99 at 29,500 heartbeats/s 36-69 ms with 1 s, 14-18 ms with 200 ms.
  absl::Duration heartbeat_flush_interval = absl::Milliseconds(200);
  std::string health_policy;  // Path; empty = the built-in policy.
  // The agent files new machines download from /api/v1/agent/ (paths).
  // Empty agent_binary: the node-agent beside the control-plane executable;
  // empty agent_package: none served.
  std::string agent_binary;
  std::string agent_package;
  NotifierConfig notifier;
  TlsConfig tls;
  HttpLimitsConfig http;

  bool operator==(const ServerConfig&) const = default;
};

// -------------------------------------------------------------------- auth

// What a token may do. Each role's rights are listed in docs/security.md.
enum class AuthRole {
  kViewer,    // reads
  kAgent,     // the node agent RPCs
  kOperator,  // everything
};

// One bearer token. The secret never appears in the configuration file: it is
// read at start-up from the environment or a file.
struct AuthTokenConfig {
  std::string name;  // Recorded as the actor of what it does ("operator:ops").
  std::string token_env;   // Exactly one of token_env, token_file and value.
  std::string token_file;  // Surrounding whitespace is ignored.
  AuthRole role = AuthRole::kViewer;
  // The secret itself. Never read from YAML: only the command line
  // (--auth-token, NAVARCH_AUTH_TOKEN) and tests set it.
  std::string value;

  bool operator==(const AuthTokenConfig&) const = default;
};

struct AuthConfig {
  std::vector<AuthTokenConfig> tokens;  // Empty: authentication is off.
  // /metrics and the probes (/healthz, /readyz) are open unless these are set;
  // then they need a token of any role (or an agent certificate).
  bool protect_metrics = false;
  bool protect_probes = false;
  // The key that signs node tokens ("navarch-node.<node id>.<HMAC>"), each
  // of which acts as the agent of its one node (docs/security.md). Read
  // like a token's secret (name "node_token_key"; the role is unused).
  std::optional<AuthTokenConfig> node_token_key;
  // Whether agent-role tokens, which act for every node, may call the node
  // RPCs. True for configurations written for upstream.
  bool allow_shared_agent_tokens = true;

  bool enabled() const { return !tokens.empty() || node_token_key.has_value(); }
  bool operator==(const AuthConfig&) const = default;
};

// ----------------------------------------------------------------- storage

enum class StorageBackend { kSqlite, kMemory, kPostgres };

struct StorageConfig {
  StorageBackend backend = StorageBackend::kSqlite;
  // SQLite file. Empty until ResolveConfig() sets <data_dir>/navarch.db.
  std::string path;
  // PostgreSQL: a libpq connection string or postgres:// URL, without a
  // password (PGPASSWORD or a password file give it).
  std::string dsn;

  bool operator==(const StorageConfig&) const = default;
};

// Several control planes on one PostgreSQL database (docs/deployment.md):
// the one holding the leader lease serves, the others wait as standbys.
struct HaConfig {
  absl::Duration lease_duration = absl::Seconds(10);
  // Unique among the replicas; empty: "<hostname>:<pid>".
  std::string replica_id;

  bool operator==(const HaConfig&) const = default;
};

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kJson;

  bool operator==(const LoggingConfig&) const = default;
};

// Instance lifecycle tracking (provisioned VM -> registered node).
struct InstanceManagerConfig {
  absl::Duration registration_timeout = absl::Minutes(10);
  absl::Duration stale_check_interval = absl::Minutes(1);
  absl::Duration terminated_retention = absl::Hours(24);
  // At start-up, instances a provider lists with this cluster's tags that
  // the store does not know (and that no recorded provision request
  // explains): terminate them (true), or only report them as events.
  bool terminate_unknown = true;

  bool operator==(const InstanceManagerConfig&) const = default;
};

// --------------------------------------------------------------- providers

enum class ProviderType { kLambda, kGcp, kAws, kFake, kLocal };

// One entry of `providers:`. Which keys a type accepts is listed in
// docs/configuration.md; the loader rejects keys of another type, so a field
// here is empty unless it belongs to `type`.
// lambda: the keys beyond upstream's api_key_env (issue 16).
struct LambdaKeys {
  std::string api_key_file;  // Read instead of api_key_env when set.
  std::string endpoint;      // Empty: https://cloud.lambda.ai/api/v1.
  std::string ssh_key_name;  // The one SSH key every instance gets.
  std::string ca_file;       // An extra CA bundle for https.

  bool operator==(const LambdaKeys&) const = default;
};

struct ProviderConfig {
  std::string name;  // The key under `providers:`.
  ProviderType type = ProviderType::kFake;
  // Not under `providers:`: a pool named a provider type (lambda, aws, fake,
  // local) directly, as upstream's guides do, and got one with defaults.
  bool implicit = false;

  // lambda
  std::string api_key_env;     // Defaults to LAMBDA_API_KEY.
  std::string api_key_secret;  // A secret-manager reference (upstream docs).
  LambdaKeys lambda;           // lambda (issue 16)
  // gcp
  std::string project;  // Required.
  std::string zone;     // Defaults to us-central1-a.
  // gcp, aws
  std::string credentials_file;
  std::string credentials_secret;
  // aws
  std::string region;
  // aws (provider/aws/; docs/pools.md "AWS"): the YAML keys are endpoint,
  // image_id, subnet_ids, security_group_ids, key_name, instance_profile,
  // spot and profile.
  std::string aws_endpoint;  // Empty: AWS_ENDPOINT_URL_EC2 or the region's.
  std::string aws_image_id;  // Required.
  std::map<std::string, std::string> aws_subnet_ids;  // zone → subnet id
  std::vector<std::string> aws_security_group_ids;
  std::string aws_key_name;
  std::string aws_instance_profile;
  bool aws_spot = false;
  std::string aws_profile;  // Shared credentials file section.
  // fake, local: GPUs per instance.
  int gpu_count = 0;  // Defaults to 8 for fake and local.
  // local
  std::string gpu_model;   // Defaults to "NVIDIA H100 80GB HBM3".
  std::string agent_path;  // Empty: the provider picks the node-agent binary.
  bool keep_instances = false;

  // gcp (Google Compute Engine; docs/pools.md "## GCP"). `project`, `zone`
  // and `credentials_file` are above.
  struct Gcp {
    std::string endpoint;  // Empty: https://compute.googleapis.com/compute/v1
    std::string image;     // Boot image: a URL or projects/P/global/images/I
    std::string network;   // Empty: global/networks/default
    std::string subnetwork;
    std::string service_account;  // Email attached to the VMs; empty: none
    bool spot = false;
    std::string accelerator_type;  // N1 only, e.g. nvidia-tesla-t4
    int accelerator_count = 0;
    int boot_disk_gb = 0;  // 0: 200
    std::string ca_file;   // Extra CA bundle for https

    bool operator==(const Gcp&) const = default;
  } gcp;

  bool operator==(const ProviderConfig&) const = default;
};

// ------------------------------------------------------------- autoscaling

enum class AutoscalerType {
  kReactive,
  kQueue,
  kScheduled,
  kPredictive,
  kComposite
};
enum class CompositeMode { kMax, kMin, kAvg };

// A time window of a scheduled autoscaler: inside it the pool limits become
// [min_nodes, max_nodes]. Hours are in [start, end).
struct ScheduleWindow {
  std::vector<absl::Weekday> days;  // Empty: every day.
  int start = 0;                    // Hour 0..23, inclusive.
  int end = 24;                     // Hour 1..24, exclusive; start < end.
  int min_nodes = 0;
  int max_nodes = 0;

  bool operator==(const ScheduleWindow&) const = default;
};

// One autoscaler. Only the fields of `type` are meaningful; the loader rejects
// keys that belong to another type.
struct AutoscalingConfig {
  AutoscalerType type = AutoscalerType::kReactive;

  // reactive: percent GPU utilisation; scale_down_at < scale_up_at.
  int scale_up_at = 80;
  int scale_down_at = 20;
  // queue
  int jobs_per_node = 10;
  // scheduled
  std::vector<ScheduleWindow> schedule;
  // predictive
  int lookback_window = 10;
  double growth_factor = 1.2;
  // scheduled and predictive: at most one element (a vector, because a struct
  // cannot hold an optional of itself).
  std::vector<AutoscalingConfig> fallback;
  // composite
  CompositeMode mode = CompositeMode::kMax;
  std::vector<AutoscalingConfig> autoscalers;

  bool operator==(const AutoscalingConfig&) const = default;
};

// ------------------------------------------------------------------- pools

enum class SelectionStrategy { kPriority, kCost, kAvailability, kRoundRobin };

// One provider a pool may provision from.
struct PoolProvider {
  std::string name;  // A key of Config::providers.
  int priority = 0;  // Lower is preferred.
  int weight = 1;    // round-robin share; >= 1.
  std::vector<std::string> regions;
  std::string instance_type;  // Overrides the pool's instance_type.

  bool operator==(const PoolProvider&) const = default;
};

// A file copied to a new instance before setup_commands run.
struct FileUpload {
  std::string local;
  std::string remote;
  uint32_t mode = 0644;

  bool operator==(const FileUpload&) const = default;
};

// How the SSH bootstrap checks a new machine's host key (docs/pools.md,
// "SSH bootstrap").
enum class SshHostKeyPolicy {
  kKnownHosts,  // listed in ssh_known_hosts_file (OpenSSH's format)
  kTofu,        // the first key seen is pinned; another is refused
  kInsecure,    // anything, with a warning on every connection
};
absl::string_view SshHostKeyPolicyName(SshHostKeyPolicy policy);

// Settings a pool inherits when it does not set them itself: `defaults:`
// (upstream's `global:` too) and the top-level `health:`, `autoscaling:` and
// `scaling:` shorthands. Unset fields fall through to the built-in defaults of
// PoolConfig.
struct PoolDefaults {
  std::optional<std::vector<std::string>> ssh_keys;
  std::optional<std::string> ssh_user;
  std::optional<std::string> ssh_private_key_path;
  std::optional<int> unhealthy_after;
  std::optional<bool> auto_replace;
  std::optional<int> max_concurrent_replacements;
  std::optional<int> max_unhealthy_percent;
  std::optional<absl::Duration> drain_timeout;
  std::optional<absl::Duration> cooldown;
  std::optional<AutoscalingConfig> autoscaling;
  std::optional<absl::Duration> ip_wait_timeout;
  std::optional<absl::Duration> ssh_timeout;
  std::optional<absl::Duration> ssh_connect_timeout;
  std::optional<absl::Duration> command_timeout;
  std::optional<int> ssh_port;
  std::optional<SshHostKeyPolicy> ssh_host_key_policy;
  std::optional<std::string> ssh_known_hosts_file;

  bool operator==(const PoolDefaults&) const = default;
};

struct PoolHealthConfig {
  int unhealthy_after = 2;  // Consecutive unhealthy evaluations.
  bool auto_replace = true;
  // Replacements of this pool in flight at once (1..1000).
  int max_concurrent_replacements = 2;
  // Breaker: when more than this share of the pool (0..100) is unhealthy at
  // once, automatic replacement stops until an operator resets it; a
  // cluster-wide fault must not be "fixed" by replacing everything.
  int max_unhealthy_percent = 50;
  // How long a node being removed may take to drain before it is terminated.
  absl::Duration drain_timeout = absl::Minutes(5);

  bool operator==(const PoolHealthConfig&) const = default;
};

// Where a pool's scaling signals come from besides the fleet's own GPU
// utilisation (which is always read from heartbeats). See docs/autoscaling.md.
enum class MetricsSourceType { kFleet, kHttpJson, kCommand, kPrometheus };

struct MetricsSourceConfig {
  MetricsSourceType type = MetricsSourceType::kFleet;
  // http_json: GET this URL for {"pending_jobs": N, "queue_depth": M,
  // "utilization": U} (every key optional). prometheus: the server's base URL.
  std::string url;
  std::map<std::string, std::string> headers;  // http_json, prometheus.
  // command: argv (a YAML list), or one string run with /bin/sh -c. Prints
  // the same JSON as http_json on stdout and exits 0.
  std::vector<std::string> command;
  // prometheus: instant PromQL queries, each giving one number.
  std::string queue_depth_query;
  std::string pending_jobs_query;
  std::string utilization_query;
  absl::Duration timeout = absl::Seconds(10);

  bool operator==(const MetricsSourceConfig&) const = default;
};

// A pool after loading: defaults applied, aliases resolved.
struct PoolConfig {
  std::string name;
  // Never empty: the single-provider form (`provider: x`) is one entry.
  std::vector<PoolProvider> providers;
  SelectionStrategy strategy = SelectionStrategy::kPriority;
  std::string instance_type;
  std::string region;
  std::vector<std::string> zones;
  std::vector<std::string> ssh_keys;
  int min_nodes = 0;
  int max_nodes = 0;  // Always >= 1 and >= min_nodes after loading.
  absl::Duration cooldown = absl::Minutes(5);
  // Absent: the pool manager has no autoscaler for this pool.
  std::optional<AutoscalingConfig> autoscaling;
  MetricsSourceConfig metrics;
  PoolHealthConfig health;
  std::map<std::string, std::string> labels;  // Always has pool=<name>.
  // Cloud user data of new instances (cloud-init, a startup script): a
  // template (config/template.h), inline or read from user_data_file when
  // the pool manager starts; at most one of the two.
  std::string user_data;
  std::string user_data_file;
  // SSH bootstrap of new instances.
  std::vector<std::string> setup_commands;
  std::vector<FileUpload> file_uploads;
  std::string ssh_user = "ubuntu";
  std::string ssh_private_key_path;
  absl::Duration ip_wait_timeout = absl::Minutes(15);
  absl::Duration ssh_timeout = absl::Minutes(10);
  absl::Duration ssh_connect_timeout = absl::Seconds(30);
  absl::Duration command_timeout = absl::Minutes(5);
  int ssh_port = 22;
  SshHostKeyPolicy ssh_host_key_policy = SshHostKeyPolicy::kTofu;
  std::string ssh_known_hosts_file;  // Needed by kKnownHosts.

  bool operator==(const PoolConfig&) const = default;
};

// ------------------------------------------------------------------- whole

struct Config {
  ServerConfig server;
  StorageConfig storage;
  HaConfig ha;
  LoggingConfig logging;
  InstanceManagerConfig instance_manager;
  AuthConfig auth;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, PoolConfig> pools;  // May be empty.
  // Already applied to every pool; kept for pools created later.
  PoolDefaults defaults;

  bool operator==(const Config&) const = default;
};

// The configuration of an empty file: every default, no providers, no pools.
Config DefaultConfig();

// Fills the values that derive from others, so every component agrees on
// them: heartbeat_timeout (0 => 3 x heartbeat_interval), storage.path (empty
// => <data_dir>/navarch.db for sqlite), external_address (empty => see
// AgentServerAddress), external_http_address (AgentHttpAddress). Idempotent.
// Call it after command-line overrides.
void ResolveConfig(Config* config);

absl::Duration EffectiveHeartbeatTimeout(const ServerConfig& server);
// The SQLite file; empty for the memory backend.
std::string DatabasePath(const Config& config);
// The URL agents and setup_commands use to reach the control plane:
// external_address if set, else "http://<host>:<port>" from `address`, with
// localhost for an empty or wildcard host (":50051", "0.0.0.0:50051").
std::string AgentServerAddress(const ServerConfig& server);
// external_http_address if set, else the scheme and host of
// external_address with the port of http_address when external_address is
// set, else "http://<host>:<port>" from http_address as above.
std::string AgentHttpAddress(const ServerConfig& server);

// Whether every provider of `pool` is a cloud (lambda, gcp, aws): such a
// pool's machines need user data or an image to start the agent.
bool PoolOnCloudsOnly(const Config& config, const PoolConfig& pool);

// Names as written in YAML ("lambda", "round-robin", ...).
absl::string_view ProviderTypeName(ProviderType type);
absl::string_view StrategyName(SelectionStrategy strategy);
absl::string_view AutoscalerTypeName(AutoscalerType type);
absl::string_view CompositeModeName(CompositeMode mode);
absl::string_view NotifierTypeName(NotifierType type);
absl::string_view MetricsSourceTypeName(MetricsSourceType type);
absl::string_view StorageBackendName(StorageBackend backend);
absl::string_view AuthRoleName(AuthRole role);

}  // namespace navarch

#endif  // NAVARCH_CONFIG_CONFIG_H_
