// A simulator scenario: upstream's YAML format (a fleet, timed events,
// assertions, an optional `stress:` block) plus our additions (a `config:`
// block with a control-plane configuration, `boot_delay`, assertion `params`,
// new assertion types). docs/simulator.md is the user's description.
//
// Parsing is strict (the shared reader, config/yaml_reader.h): an unknown
// key, an unknown action, failure type, command type, status or assertion
// type, or a target that is not in the fleet is an error naming
// file:line:column, the key path and the offending value. Every problem is
// collected, in file order.
#ifndef NAVARCH_SIM_SCENARIO_H_
#define NAVARCH_SIM_SCENARIO_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/config/config.h"
#include "navarch/config/config_error.h"
#include "navarch/provider/fake/fake_provider.h"

namespace navarch::sim {

// Where something was written; line and column are 1-based (0: unknown).
struct Pos {
  int line = 0;
  int column = 0;
};

// Scenario errors are the shared reader's: file:line:column, key path,
// message (config/config_error.h).
using ScenarioError = ConfigError;

struct NodeSpec {
  std::string id;
  std::string provider = "gcp";
  std::string region = "us-central1";
  std::string zone;  // default: region + "-a"
  std::string instance_type = "a3-highgpu-8g";
  std::string gpu_type = "NVIDIA H100 80GB HBM3";
  int gpu_count = 8;
  std::map<std::string, std::string> labels;
  Pos pos;
};

// The nine upstream actions, and ours: set_capacity and set_quota change a
// simulated cloud's capacity model (`clouds:`).
inline constexpr const char* kActions[] = {
    "start_fleet",   "stop_fleet",      "inject_failure", "recover_failure",
    "issue_command", "wait_for_status", "wait",           "log",
    "assert",        "set_capacity",    "set_quota"};

// Failure types with a simulated effect (docs/simulator.md has the table).
inline constexpr const char* kFailureTypes[] = {
    "xid_error",    "temperature",   "memory_error",
    "nvlink_error", "backend_error", "nvml_failure",
    "device_error", "boot_failure",  "network"};

inline constexpr const char* kCommandTypes[] = {"cordon", "uncordon", "drain",
                                                "terminate", "run_diagnostic"};

inline constexpr const char* kAssertionTypes[] = {
    "node_status",  "health_status",   "node_count",     "pool_size",
    "replacements", "time_to_replace", "time_to_detect", "min_healthy_percent",
    "failures",     "events",          "provisions"};

struct EventSpec {
  absl::Duration at;
  std::string action;
  std::string target;
  // params
  std::string failure_type;
  int xid_code = 0;
  int gpu_index = 0;
  std::string message;
  std::string command_type;
  std::map<std::string, std::string> command_args;
  std::string expected_status;
  absl::Duration timeout = absl::Seconds(30);
  std::string log_message;
  // `assert` action: expected value; pool/status filters for node_count.
  std::string pool;
  std::string status;
  // set_capacity / set_quota: the new cap (-1: none) and, when not zero,
  // how long until the previous one is back (an outage window).
  int capacity = -1;
  int quota = -1;
  absl::Duration duration = absl::ZeroDuration();
  Pos pos;
  int index = 0;  // position in the file
  // Where each value was written ("target", "params.failure_type", ...).
  std::map<std::string, Pos> value_pos;
  Pos PosOf(const std::string& key) const {
    auto it = value_pos.find(key);
    return it == value_pos.end() ? pos : it->second;
  }
};

// A numeric comparison written as "5", ">=5", "<= 90", "> 2", "<3", "==4".
struct Comparison {
  std::string op = "==";  // ==, >=, <=, >, <
  double value = 0;
  bool Holds(double actual) const;
  std::string ToString() const;
};

// Parses a Comparison; false when `text` is not one.
bool ParseComparison(absl::string_view text, Comparison* out);

struct AssertionSpec {
  std::string type = "node_status";
  std::string target;
  std::string expected;
  // params
  std::string status;  // node_count: count only nodes with this status
  std::string pool;    // node_count, replacements, time_to_*: this pool only
  double percentile = 95;  // time_to_replace, time_to_detect
  std::string kind;        // events: the pool.* event kind counted
  std::string contains;    // events: only those whose message holds this
  Pos pos;
  std::map<std::string, Pos> value_pos;
  Pos PosOf(const std::string& key) const {
    auto it = value_pos.find(key);
    return it == value_pos.end() ? pos : it->second;
  }
};

struct WeightedName {
  std::string name;
  double weight = 0;
};

struct TemplateSpec {
  std::string name;
  double weight = 1;
  int gpu_count = 8;
  std::string gpu_type = "NVIDIA H100 80GB HBM3";
  std::string instance_type;
  std::map<std::string, std::string> labels;
};

struct StartupSpec {
  std::string pattern = "linear";  // instant | linear | exponential | wave
  absl::Duration duration = absl::ZeroDuration();  // 0: the pattern's default
  int batch_size = 100;
  int jitter_percent = 10;
  absl::Duration cold_start_min = absl::ZeroDuration();
  absl::Duration cold_start_max = absl::ZeroDuration();
  absl::Duration cold_start_mean = absl::ZeroDuration();
  absl::Duration cold_start_stddev = absl::ZeroDuration();
};

struct FleetGenSpec {
  int total_nodes = 0;
  std::vector<TemplateSpec> templates;
  std::vector<WeightedName> providers;  // sorted by name
  std::vector<WeightedName> regions;    // sorted by name
  std::map<std::string, std::vector<std::string>> zones;
  StartupSpec startup;
};

struct CascadeSpec {
  bool enabled = false;
  double probability = 0;
  int max_depth = 3;
  absl::Duration min_delay = absl::Seconds(1);
  absl::Duration max_delay = absl::Seconds(10);
  std::string scope = "zone";  // zone | region | provider | rack | random
  double max_affected_percent = 0.1;  // fraction of the candidates
};

struct RecoverySpec {
  bool enabled = false;
  double probability = 0;
  absl::Duration mean_time = absl::Minutes(5);
  absl::Duration std_dev = absl::ZeroDuration();  // 0: mean / 4
  bool replace_fatal = false;
  absl::Duration replace_cold_start = absl::ZeroDuration();
};

struct OutageSpec {
  std::string name;
  absl::Duration start_time;  // after chaos starts
  absl::Duration duration;
  std::string scope;  // zone | region | provider | percentage
  std::string target;
  std::string failure_type = "network";
  Pos pos;
};

// When a failure matching the trigger is injected, with `probability` the
// response failure follows after `delay` on nodes in `scope` of the first.
struct CorrelatedSpec {
  std::string name;
  std::string trigger_type = "xid_error";
  int trigger_xid = 0;  // 0: any
  std::string response_type = "xid_error";
  int response_xid = 79;
  double probability = 0;
  absl::Duration delay = absl::Seconds(5);
  std::string scope = "same_node";  // same_node | zone | region | provider
  int max_affected = 1;
};

struct ChaosSpec {
  bool enabled = false;
  double failure_rate = 0;  // per minute per 1000 nodes
  std::vector<std::pair<int, double>> xid_distribution;  // sorted by code
  std::vector<WeightedName> failure_types;
  CascadeSpec cascading;
  RecoverySpec recovery;
  std::vector<OutageSpec> scheduled_outages;
  std::vector<CorrelatedSpec> correlated_failures;
};

struct StressSpec {
  absl::Duration duration = absl::Minutes(10);
  absl::Duration metrics_interval = absl::Seconds(5);
  uint64_t seed = 0;
  std::string report_file;
  std::string html_report_file;
  std::string log_file;
  std::optional<FleetGenSpec> fleet_gen;
  ChaosSpec chaos;
};

// The cloud a configured provider simulates (`clouds:`): caps on live
// instances, answered with the clouds' errors (FakeProvider), and how long
// a Provision call takes.
struct CloudSpec {
  std::string name;  // a provider of config.providers
  int quota = -1;    // live instances across the provider; -1: none
  absl::Duration call_latency = absl::ZeroDuration();
  std::map<std::string, FakeRegionOptions> regions;
  Pos pos;
};

struct Scenario {
  std::string file;
  std::string name;
  std::string description;
  std::vector<NodeSpec> fleet;
  std::vector<EventSpec> events;  // file order
  std::vector<AssertionSpec> assertions;
  std::optional<StressSpec> stress;
  // The control plane; without `config:` the simulator's defaults
  // (SimDefaultConfig).
  Config config;
  bool has_config = false;
  // A node provisioned by a pool boots this long before its agent registers.
  absl::Duration boot_delay = absl::Seconds(30);
  // By provider name; a provider not listed has no caps and answers at once.
  std::map<std::string, CloudSpec> clouds;
};

// The control plane a scenario without `config:` runs against: upstream's
// embedded one (health checks every 5 s, heartbeats every 3 s), the built-in
// policy, memory store.
Config SimDefaultConfig();

struct ParseResult {
  Scenario scenario;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
  // OK, or INVALID_ARGUMENT listing every error, one per line.
  absl::Status status() const;
};

// `filename` is used in messages and to resolve relative paths of the config
// block (the health policy) against the scenario's folder.
ParseResult ParseScenario(absl::string_view yaml, const std::string& filename);
ParseResult LoadScenarioFile(const std::string& path);

bool IsKnownFailureType(absl::string_view type);

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_SCENARIO_H_
