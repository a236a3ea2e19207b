#include "navarch/agent/agent_config.h"

#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/base/duration.h"
#include "yaml-cpp/yaml.h"

namespace navarch::agent {
namespace {

class Reader {
 public:
  explicit Reader(std::string filename) : filename_(std::move(filename)) {}

  void Error(const YAML::Node& at, const std::string& message) {
    const YAML::Mark m = at.Mark();
    if (m.is_null()) {
      errors_.push_back(absl::StrCat(filename_, ": ", message));
    } else {
      errors_.push_back(absl::StrCat(filename_, ":", m.line + 1, ":",
                                     m.column + 1, ": ", message));
    }
  }

  // Reads a mapping whose keys must all be in `keys`.
  void Map(const YAML::Node& node, const std::string& path,
           const std::map<std::string, std::function<void(const YAML::Node&,
                                                          const std::string&)>>&
               keys) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Error(node, absl::StrCat(path.empty() ? "the file" : path,
                               " must be a mapping"));
      return;
    }
    std::vector<std::string> known;
    for (const auto& [k, _] : keys) known.push_back(k);
    std::map<std::string, bool> seen;
    for (const auto& kv : node) {
      std::string key = kv.first.Scalar();
      std::string full = path.empty() ? key : absl::StrCat(path, ".", key);
      auto it = keys.find(key);
      if (it == keys.end()) {
        Error(kv.first, absl::StrCat("unknown key \"", full, "\" (known: ",
                                     absl::StrJoin(known, ", "), ")"));
        continue;
      }
      if (seen[key]) {
        Error(kv.first, absl::StrCat("duplicate key \"", full, "\""));
        continue;
      }
      seen[key] = true;
      it->second(kv.second, full);
    }
  }

  std::function<void(const YAML::Node&, const std::string&)> String(
      std::string* dst) {
    return [this, dst](const YAML::Node& n, const std::string& path) {
      if (n.IsNull()) return;
      if (!n.IsScalar())
        return Error(n, absl::StrCat(path, " must be a string"));
      *dst = n.Scalar();
    };
  }

  std::function<void(const YAML::Node&, const std::string&)> Duration(
      absl::Duration* dst, absl::Duration min) {
    return [this, dst, min](const YAML::Node& n, const std::string& path) {
      if (n.IsNull()) return;
      if (!n.IsScalar())
        return Error(n, absl::StrCat(path, " must be a duration like 30s"));
      auto d = ParseGoDuration(n.Scalar());
      if (!d.ok())
        return Error(n, absl::StrCat(path, ": ", d.status().message()));
      if (*d < min) {
        return Error(
            n, absl::StrCat(path, " must be at least ", FormatGoDuration(min)));
      }
      *dst = *d;
    };
  }

  std::function<void(const YAML::Node&, const std::string&)> Size(size_t* dst,
                                                                  size_t min,
                                                                  size_t max) {
    return [this, dst, min, max](const YAML::Node& n, const std::string& path) {
      if (n.IsNull()) return;
      long long v = 0;
      if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v) || v < 0 ||
          static_cast<size_t>(v) < min || static_cast<size_t>(v) > max) {
        return Error(n, absl::StrCat(path, " must be a whole number from ", min,
                                     " to ", max));
      }
      *dst = static_cast<size_t>(v);
    };
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string filename_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<AgentConfig> ParseAgentConfig(absl::string_view yaml,
                                             const std::string& filename) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  AgentConfig c;
  Reader r(filename);
  const absl::Duration ms = absl::Milliseconds(1);
  const absl::Duration s = absl::Seconds(1);
  try {
    r.Map(
        root, "",
        {
            {"hooks",
             [&](const YAML::Node& n, const std::string& p) {
               r.Map(n, p,
                     {{"cordon", r.String(&c.hooks.cordon)},
                      {"uncordon", r.String(&c.hooks.uncordon)},
                      {"drain", r.String(&c.hooks.drain)},
                      {"timeout", r.Duration(&c.hooks.timeout, s)}});
             }},
            {"diagnostic",
             [&](const YAML::Node& n, const std::string& p) {
               r.Map(n, p,
                     {{"command", r.String(&c.diagnostic_command)},
                      {"timeout", r.Duration(&c.diagnostic_timeout, s)}});
             }},
            {"shutdown",
             [&](const YAML::Node& n, const std::string& p) {
               r.Map(n, p,
                     {{"command", r.String(&c.shutdown_command)},
                      {"timeout", r.Duration(&c.shutdown_timeout, s)}});
             }},
            {"events",
             [&](const YAML::Node& n, const std::string& p) {
               r.Map(n, p,
                     {{"queue_size", r.Size(&c.event_queue_size, 1, 1000000)},
                      {"xid_dedup_window",
                       r.Duration(&c.xid_dedup_window, absl::ZeroDuration())}});
             }},
            {"intervals",
             [&](const YAML::Node& n, const std::string& p) {
               r.Map(
                   n, p,
                   {{"gpu_poll", r.Duration(&c.gpu_poll_interval, 100 * ms)},
                    {"command_poll",
                     r.Duration(&c.command_poll_interval, 100 * ms)},
                    {"kmsg_poll", r.Duration(&c.kmsg_poll_interval, 10 * ms)}});
             }},
            {"logging",
             [&](const YAML::Node& n, const std::string& p) {
               std::string level, format;
               r.Map(n, p,
                     {{"level", r.String(&level)},
                      {"format", r.String(&format)}});
               if (!level.empty()) {
                 auto l = ParseLogLevel(level);
                 if (l.ok()) {
                   c.log_level = *l;
                 } else {
                   r.Error(n["level"],
                           absl::StrCat(p, ".level: ", l.status().message()));
                 }
               }
               if (!format.empty()) {
                 auto f = ParseLogFormat(format);
                 if (f.ok()) {
                   c.log_format = *f;
                 } else {
                   r.Error(n["format"],
                           absl::StrCat(p, ".format: ", f.status().message()));
                 }
               }
             }},
        });
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ": ", e.what()));
  }
  if (!r.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(r.errors(), "\n"));
  }
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
