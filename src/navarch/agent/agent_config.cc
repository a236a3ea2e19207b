#include "navarch/agent/agent_config.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "navarch/agent/node_identity.h"
#include "navarch/base/duration.h"
#include "navarch/base/ids.h"
#include "navarch/config/config_error.h"
#include "navarch/config/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace navarch::agent {
namespace {

using yaml::Entry;
using yaml::KeySpec;
using yaml::Site;
using yaml::YamlReader;

KeySpec Text(YamlReader& r, const char* name, std::string* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<std::string> s = r.String(e)) *dst = *s;
          }};
}

// A duration with a floor: tickers below it would spin.
KeySpec Interval(YamlReader& r, const char* name, absl::Duration* dst,
                 absl::Duration min) {
  return {{name}, "", [&r, dst, min](const Entry& e) {
            std::optional<absl::Duration> d = r.Duration(e);
            if (!d) return;
            if (*d < min) {
              r.Error(e.site,
                      absl::StrCat("must be at least ", FormatGoDuration(min)));
              return;
            }
            *dst = *d;
          }};
}

KeySpec Size(YamlReader& r, const char* name, size_t* dst, int64_t min,
             int64_t max) {
  return {{name}, "", [&r, dst, min, max](const Entry& e) {
            if (std::optional<int64_t> v = r.Int(e, min, max)) *dst = *v;
          }};
}

// A name parsed by `parse` (log level, log format); empty leaves it unset.
template <typename T>
KeySpec Named(YamlReader& r, const char* name, std::optional<T>* dst,
              absl::StatusOr<T> (*parse)(absl::string_view)) {
  return {{name}, "", [&r, dst, parse](const Entry& e) {
            std::optional<std::string> s = r.String(e);
            if (!s || s->empty()) return;
            absl::StatusOr<T> v = parse(*s);
            if (v.ok()) {
              *dst = *v;
            } else {
              r.Error(e.site, std::string(v.status().message()));
            }
          }};
}

KeySpec Flag(YamlReader& r, const char* name, bool* dst) {
  return {{name}, "", [&r, dst](const Entry& e) {
            if (std::optional<bool> b = r.Bool(e)) *dst = *b;
          }};
}

// Text that `check` accepts (empty passes).
KeySpec Checked(YamlReader& r, const char* name, std::string* dst,
                absl::Status (*check)(absl::string_view)) {
  return {{name}, "", [&r, dst, check](const Entry& e) {
            std::optional<std::string> s = r.String(e);
            if (!s) return;
            absl::Status st = s->empty() ? absl::OkStatus() : check(*s);
            if (!st.ok()) {
              r.Error(e.site, std::string(st.message()));
              return;
            }
            *dst = *s;
          }};
}

absl::Status CheckNodeId(absl::string_view id) {
  if (id == kNodeIdAuto) return absl::OkStatus();
  absl::Status s = ValidateId("node_id", id);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat(s.message(), " (or \"auto\": from the cloud)"));
}

absl::Status CheckSource(absl::string_view source) {
  return ParseNodeIdSource(source).status();
}

// `name:` holding a mapping read by `keys`.
KeySpec Block(YamlReader& r, const char* name, std::vector<KeySpec> keys) {
  return {{name}, "", [&r, keys = std::move(keys)](const Entry& e) {
            r.ReadMap(e.value, e.site, e.slot, keys);
          }};
}

std::vector<KeySpec> AgentKeys(YamlReader& r, AgentConfig& c) {
  const absl::Duration ms = absl::Milliseconds(1);
  const absl::Duration s = absl::Seconds(1);
  return {
      Block(r, "hooks",
            {Text(r, "cordon", &c.hooks.cordon),
             Text(r, "uncordon", &c.hooks.uncordon),
             Text(r, "drain", &c.hooks.drain),
             Interval(r, "timeout", &c.hooks.timeout, s)}),
      Block(r, "diagnostic",
            {Text(r, "command", &c.diagnostic_command),
             Interval(r, "timeout", &c.diagnostic_timeout, s)}),
      Block(r, "shutdown",
            {Text(r, "command", &c.shutdown_command),
             Interval(r, "timeout", &c.shutdown_timeout, s)}),
      Block(r, "events",
            {Size(r, "queue_size", &c.event_queue_size, 1, 1000000),
             Interval(r, "xid_dedup_window", &c.xid_dedup_window,
                      absl::ZeroDuration())}),
      Block(r, "intervals",
            {Interval(r, "gpu_poll", &c.gpu_poll_interval, 100 * ms),
             Interval(r, "command_poll", &c.command_poll_interval, 100 * ms),
             Interval(r, "kmsg_poll", &c.kmsg_poll_interval, 10 * ms)}),
      Checked(r, "node_id", &c.identity.node_id, &CheckNodeId),
      Block(r, "node_identity",
            {Checked(r, "source", &c.identity.source, &CheckSource),
             Flag(r, "allow_hostname", &c.identity.allow_hostname),
             Interval(r, "timeout", &c.identity.timeout, 10 * ms),
             Interval(r, "connect_timeout", &c.identity.connect_timeout,
                      10 * ms)}),
      Block(r, "logging",
            {Named<LogLevel>(r, "level", &c.log_level, &ParseLogLevel),
             Named<LogFormat>(r, "format", &c.log_format, &ParseLogFormat)}),
  };
}

}  // namespace

absl::StatusOr<AgentConfig> ParseAgentConfig(absl::string_view text,
                                             const std::string& filename) {
  AgentConfig c;
  YamlReader r(filename);
  if (std::optional<YAML::Node> root = r.Load(text)) {
    r.Guard([&] {
      r.ReadMap(*root, YamlReader::SiteOf(*root, Site{1, 1, ""}, ""), "",
                AgentKeys(r, c));
    });
  }
  std::vector<ConfigError> errors = r.TakeErrors();
  if (!errors.empty()) return ErrorsToStatus(errors);
  return c;
}

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read agent config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseAgentConfig(ss.str(), path);
}

}  // namespace navarch::agent
