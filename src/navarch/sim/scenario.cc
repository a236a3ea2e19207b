#include "navarch/sim/scenario.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "navarch/api/names.h"
#include "navarch/base/duration.h"
#include "navarch/config/config_loader.h"
#include "navarch/health/policy.h"
#include "yaml-cpp/yaml.h"

namespace navarch::sim {

std::string ScenarioError::ToString() const {
  std::string out = file;
  if (pos.line > 0) absl::StrAppend(&out, ":", pos.line, ":", pos.column);
  absl::StrAppend(&out, ": ");
  if (!path.empty()) absl::StrAppend(&out, path, ": ");
  absl::StrAppend(&out, message);
  return out;
}

absl::Status ParseResult::status() const {
  if (errors.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const auto& e : errors) lines.push_back(e.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

bool Comparison::Holds(double actual) const {
  constexpr double kEps = 1e-9;
  if (op == ">=") return actual >= value - kEps;
  if (op == "<=") return actual <= value + kEps;
  if (op == ">") return actual > value + kEps;
  if (op == "<") return actual < value - kEps;
  return std::fabs(actual - value) < kEps;
}

std::string Comparison::ToString() const {
  std::string v = absl::StrCat(value);
  return op == "==" ? v : absl::StrCat(op, v);
}

bool IsKnownFailureType(absl::string_view type) {
  for (const char* t : kFailureTypes) {
    if (type == t) return true;
  }
  return false;
}

Config SimDefaultConfig() {
  Config c = DefaultConfig();
  c.server.health_check_interval = absl::Seconds(5);
  c.server.heartbeat_interval = absl::Seconds(3);
  c.storage.backend = StorageBackend::kMemory;
  ResolveConfig(&c);
  return c;
}

namespace {

template <size_t N>
bool OneOf(absl::string_view s, const char* const (&list)[N]) {
  for (const char* x : list) {
    if (s == x) return true;
  }
  return false;
}

template <size_t N>
std::string ListOf(const char* const (&list)[N]) {
  return absl::StrJoin(std::begin(list), std::end(list), ", ");
}

bool ParseComparisonText(absl::string_view text, Comparison* out) {
  out->op = "==";
  text = absl::StripAsciiWhitespace(text);
  for (const char* op : {">=", "<=", "==", ">", "<"}) {
    if (absl::StartsWith(text, op)) {
      out->op = op;
      text.remove_prefix(strlen(op));
      break;
    }
  }
  text = absl::StripAsciiWhitespace(text);
  if (absl::EndsWith(text, "%")) text.remove_suffix(1);
  return absl::SimpleAtod(text, &out->value) && std::isfinite(out->value);
}

class Reader {
 public:
  Reader(std::string file, std::vector<ScenarioError>* errors)
      : file_(std::move(file)), errors_(errors) {}

  static Pos PosOf(const YAML::Node& n) {
    Pos p;
    if (!n.IsDefined()) return p;
    const YAML::Mark m = n.Mark();
    if (!m.is_null() && m.line >= 0) {
      p.line = m.line + 1;
      p.column = m.column + 1;
    }
    return p;
  }

  void Error(Pos pos, std::string path, std::string message) {
    errors_->push_back({file_, pos, std::move(path), std::move(message)});
  }
  void Error(const YAML::Node& n, std::string path, std::string message) {
    Error(PosOf(n), std::move(path), std::move(message));
  }

  // Calls fn(key, value, path) for each entry of a mapping; unknown keys
  // and duplicates are errors. Null is an empty mapping.
  void Map(const YAML::Node& n, const std::string& path,
           const std::set<std::string>& known,
           const std::function<void(const std::string&, const YAML::Node&,
                                    const std::string&)>& fn) {
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsMap()) {
      Error(n, path, "must be a mapping");
      return;
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = it->first.Scalar();
      std::string p = path.empty() ? key : absl::StrCat(path, ".", key);
      if (!known.empty() && !known.contains(key)) {
        Error(it->first, p,
              absl::StrCat("unknown key '", key,
                           "' (known: ", absl::StrJoin(known, ", "), ")"));
        continue;
      }
      if (!seen.insert(key).second) {
        Error(it->first, p, absl::StrCat("duplicate key '", key, "'"));
        continue;
      }
      fn(key, it->second, p);
    }
  }

  void List(const YAML::Node& n, const std::string& path,
            const std::function<void(const YAML::Node&, const std::string&,
                                     int)>& fn) {
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsSequence()) {
      Error(n, path, "must be a list");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      fn(n[i], absl::StrCat(path, "[", i, "]"), static_cast<int>(i));
    }
  }

  std::optional<std::string> Str(const YAML::Node& n, const std::string& p) {
    if (n.IsNull()) return std::string();
    if (!n.IsScalar()) {
      Error(n, p, "must be a string");
      return std::nullopt;
    }
    return n.Scalar();
  }
  std::optional<int64_t> Int(const YAML::Node& n, const std::string& p,
                             int64_t min, int64_t max) {
    int64_t v;
    if (!n.IsScalar() || !absl::SimpleAtoi(n.Scalar(), &v)) {
      Error(n, p, absl::StrCat("must be an integer, not '", Text(n), "'"));
      return std::nullopt;
    }
    if (v < min || v > max) {
      Error(n, p, absl::StrCat(v, " is out of range [", min, ", ", max, "]"));
      return std::nullopt;
    }
    return v;
  }
  std::optional<double> Double(const YAML::Node& n, const std::string& p,
                               double min, double max) {
    double v;
    if (!n.IsScalar() || !absl::SimpleAtod(n.Scalar(), &v) ||
        !std::isfinite(v)) {
      Error(n, p, absl::StrCat("must be a number, not '", Text(n), "'"));
      return std::nullopt;
    }
    if (v < min || v > max) {
      Error(n, p, absl::StrCat(v, " is out of range [", min, ", ", max, "]"));
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> Bool(const YAML::Node& n, const std::string& p) {
    std::string s = n.IsScalar() ? absl::AsciiStrToLower(n.Scalar()) : "";
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    Error(n, p, absl::StrCat("must be true or false, not '", Text(n), "'"));
    return std::nullopt;
  }
  // Go duration strings; a bare number is an error (upstream rejects them).
  std::optional<absl::Duration> Dur(const YAML::Node& n, const std::string& p) {
    if (!n.IsScalar()) {
      Error(n, p, "must be a duration such as \"30s\" or \"5m\"");
      return std::nullopt;
    }
    absl::StatusOr<absl::Duration> d = ParseGoDuration(n.Scalar());
    if (!d.ok()) {
      Error(n, p,
            absl::StrCat("'", n.Scalar(),
                         "' is not a duration (write it with a unit, e.g. "
                         "\"30s\", \"5m\", \"1h30m\")"));
      return std::nullopt;
    }
    if (*d < absl::ZeroDuration()) {
      Error(n, p, absl::StrCat("'", n.Scalar(), "' is negative"));
      return std::nullopt;
    }
    return *d;
  }
  std::map<std::string, std::string> StrMap(const YAML::Node& n,
                                            const std::string& p) {
    std::map<std::string, std::string> out;
    Map(n, p, {},
        [&](const std::string& k, const YAML::Node& v, const std::string& kp) {
          if (auto s = Str(v, kp)) out[k] = *s;
        });
    return out;
  }

  static std::string Text(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    if (n.IsSequence()) return "<list>";
    if (n.IsMap()) return "<mapping>";
    return "";
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<ScenarioError>* errors_;
};

void ParseNode(Reader& r, const YAML::Node& n, const std::string& path,
               NodeSpec& spec) {
  spec.pos = Reader::PosOf(n);
  r.Map(n, path,
        {"id", "provider", "region", "zone", "instance_type", "gpu_type",
         "gpu_count", "labels"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          if (k == "gpu_count") {
            if (auto i = r.Int(v, p, 1, 64)) spec.gpu_count = *i;
          } else if (k == "labels") {
            spec.labels = r.StrMap(v, p);
          } else if (auto s = r.Str(v, p)) {
            if (k == "id") spec.id = *s;
            if (k == "provider") spec.provider = *s;
            if (k == "region") spec.region = *s;
            if (k == "zone") spec.zone = *s;
            if (k == "instance_type") spec.instance_type = *s;
            if (k == "gpu_type") spec.gpu_type = *s;
          }
        });
  if (spec.zone.empty()) spec.zone = spec.region + "-a";
}

void ParseEvent(Reader& r, const YAML::Node& n, const std::string& path,
                EventSpec& e) {
  e.pos = Reader::PosOf(n);
  bool has_at = false;
  r.Map(n, path, {"at", "action", "target", "params"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          e.value_pos[k] = Reader::PosOf(v);
          if (k == "at") {
            has_at = true;
            if (auto d = r.Dur(v, p)) e.at = *d;
          } else if (k == "action") {
            if (auto s = r.Str(v, p)) {
              e.action = *s;
              if (!OneOf(e.action, kActions)) {
                r.Error(v, p,
                        absl::StrCat("unknown action '", e.action,
                                     "' (known: ", ListOf(kActions), ")"));
              }
            }
          } else if (k == "target") {
            if (auto s = r.Str(v, p)) e.target = *s;
          } else if (k == "params") {
            r.Map(v, p,
                  {"failure_type", "xid_code", "gpu_index", "message",
                   "command_type", "command_args", "expected_status", "timeout",
                   "log_message", "pool", "status"},
                  [&](const std::string& pk, const YAML::Node& pv,
                      const std::string& pp) {
                    e.value_pos["params." + pk] = Reader::PosOf(pv);
                    if (pk == "xid_code") {
                      if (auto i = r.Int(pv, pp, 1, 1000)) e.xid_code = *i;
                    } else if (pk == "gpu_index") {
                      if (auto i = r.Int(pv, pp, -1, 63)) e.gpu_index = *i;
                    } else if (pk == "command_args") {
                      e.command_args = r.StrMap(pv, pp);
                    } else if (pk == "timeout") {
                      if (auto d = r.Dur(pv, pp)) e.timeout = *d;
                    } else if (auto s = r.Str(pv, pp)) {
                      if (pk == "failure_type") e.failure_type = *s;
                      if (pk == "message") e.message = *s;
                      if (pk == "command_type") e.command_type = *s;
                      if (pk == "expected_status") e.expected_status = *s;
                      if (pk == "log_message") e.log_message = *s;
                      if (pk == "pool") e.pool = *s;
                      if (pk == "status") e.status = *s;
                    }
                  });
          }
        });
  if (!has_at) r.Error(n, path, "'at' is required (e.g. at: 5s)");
  if (e.action.empty()) r.Error(n, path, "'action' is required");
}

void ParseAssertion(Reader& r, const YAML::Node& n, const std::string& path,
                    AssertionSpec& a) {
  a.pos = Reader::PosOf(n);
  r.Map(n, path, {"type", "target", "expected", "params"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          a.value_pos[k] = Reader::PosOf(v);
          if (k == "params") {
            r.Map(v, p, {"status", "pool", "percentile"},
                  [&](const std::string& pk, const YAML::Node& pv,
                      const std::string& pp) {
                    a.value_pos["params." + pk] = Reader::PosOf(pv);
                    if (pk == "percentile") {
                      if (auto d = r.Double(pv, pp, 0, 100)) a.percentile = *d;
                    } else if (auto s = r.Str(pv, pp)) {
                      (pk == "status" ? a.status : a.pool) = *s;
                    }
                  });
          } else if (auto s = r.Str(v, p)) {
            if (k == "type") a.type = s->empty() ? "node_status" : *s;
            if (k == "target") a.target = *s;
            if (k == "expected") a.expected = *s;
          }
        });
}

std::vector<WeightedName> WeightMap(Reader& r, const YAML::Node& n,
                                    const std::string& path) {
  std::vector<WeightedName> out;
  r.Map(n, path, {},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          if (auto d = r.Double(v, p, 0, 1e9)) out.push_back({k, *d});
        });
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void ParseStress(Reader& r, const YAML::Node& n, const std::string& path,
                 StressSpec& s) {
  r.Map(
      n, path,
      {"duration", "metrics_interval", "seed", "report_file",
       "html_report_file", "log_file", "fleet_gen", "chaos"},
      [&](const std::string& k, const YAML::Node& v, const std::string& p) {
        if (k == "duration") {
          if (auto d = r.Dur(v, p)) s.duration = *d;
        } else if (k == "metrics_interval") {
          if (auto d = r.Dur(v, p)) {
            if (*d < absl::Seconds(1)) {
              r.Error(v, p, "must be at least 1s");
            } else {
              s.metrics_interval = *d;
            }
          }
        } else if (k == "seed") {
          if (auto i = r.Int(v, p, 0, INT64_MAX)) s.seed = *i;
        } else if (k == "fleet_gen") {
          FleetGenSpec g;
          r.Map(v, p,
                {"total_nodes", "templates", "providers", "regions", "zones",
                 "startup"},
                [&](const std::string& gk, const YAML::Node& gv,
                    const std::string& gp) {
                  if (gk == "total_nodes") {
                    if (auto i = r.Int(gv, gp, 1, 1000000)) g.total_nodes = *i;
                  } else if (gk == "templates") {
                    r.List(
                        gv, gp,
                        [&](const YAML::Node& tn, const std::string& tp, int) {
                          TemplateSpec t;
                          r.Map(tn, tp,
                                {"name", "weight", "gpu_count", "gpu_type",
                                 "instance_type", "labels"},
                                [&](const std::string& tk, const YAML::Node& tv,
                                    const std::string& tpp) {
                                  if (tk == "weight") {
                                    if (auto d = r.Double(tv, tpp, 0, 1e9))
                                      t.weight = *d;
                                    if (t.weight <= 0)
                                      r.Error(tv, tpp,
                                              "must be greater than 0");
                                  } else if (tk == "gpu_count") {
                                    if (auto i = r.Int(tv, tpp, 1, 64))
                                      t.gpu_count = *i;
                                  } else if (tk == "labels") {
                                    t.labels = r.StrMap(tv, tpp);
                                  } else if (auto str = r.Str(tv, tpp)) {
                                    if (tk == "name") t.name = *str;
                                    if (tk == "gpu_type") t.gpu_type = *str;
                                    if (tk == "instance_type")
                                      t.instance_type = *str;
                                  }
                                });
                          if (t.name.empty())
                            r.Error(tn, tp, "template 'name' is required");
                          g.templates.push_back(std::move(t));
                        });
                  } else if (gk == "providers") {
                    g.providers = WeightMap(r, gv, gp);
                  } else if (gk == "regions") {
                    g.regions = WeightMap(r, gv, gp);
                  } else if (gk == "zones") {
                    r.Map(gv, gp, {},
                          [&](const std::string& zk, const YAML::Node& zv,
                              const std::string& zp) {
                            std::vector<std::string>& zones = g.zones[zk];
                            r.List(zv, zp,
                                   [&](const YAML::Node& z,
                                       const std::string& zzp, int) {
                                     if (auto str = r.Str(z, zzp))
                                       zones.push_back(*str);
                                   });
                          });
                  } else if (gk == "startup") {
                    StartupSpec& st = g.startup;
                    r.Map(gv, gp,
                          {"pattern", "duration", "batch_size",
                           "jitter_percent", "cold_start_min", "cold_start_max",
                           "cold_start_mean", "cold_start_stddev"},
                          [&](const std::string& sk, const YAML::Node& sv,
                              const std::string& sp) {
                            if (sk == "pattern") {
                              if (auto str = r.Str(sv, sp)) {
                                st.pattern = str->empty() ? "instant" : *str;
                                if (st.pattern != "instant" &&
                                    st.pattern != "linear" &&
                                    st.pattern != "exponential" &&
                                    st.pattern != "wave") {
                                  r.Error(sv, sp,
                                          absl::StrCat(
                                              "unknown startup pattern '", *str,
                                              "' (known: instant, "
                                              "linear, exponential, "
                                              "wave)"));
                                }
                              }
                            } else if (sk == "batch_size") {
                              if (auto i = r.Int(sv, sp, 1, 1000000))
                                st.batch_size = *i;
                            } else if (sk == "jitter_percent") {
                              if (auto i = r.Int(sv, sp, 0, 100))
                                st.jitter_percent = *i;
                            } else if (auto d = r.Dur(sv, sp)) {
                              if (sk == "duration") st.duration = *d;
                              if (sk == "cold_start_min")
                                st.cold_start_min = *d;
                              if (sk == "cold_start_max")
                                st.cold_start_max = *d;
                              if (sk == "cold_start_mean")
                                st.cold_start_mean = *d;
                              if (sk == "cold_start_stddev")
                                st.cold_start_stddev = *d;
                            }
                          });
                  }
                });
          if (g.templates.empty()) {
            r.Error(v, p, "fleet_gen needs at least one template");
          }
          s.fleet_gen = std::move(g);
        } else if (k == "chaos") {
          ChaosSpec& c = s.chaos;
          r.Map(
              v, p,
              {"enabled", "failure_rate", "xid_distribution", "failure_types",
               "cascading", "recovery", "scheduled_outages",
               "correlated_failures"},
              [&](const std::string& ck, const YAML::Node& cv,
                  const std::string& cp) {
                if (ck == "enabled") {
                  if (auto b = r.Bool(cv, cp)) c.enabled = *b;
                } else if (ck == "failure_rate") {
                  if (auto d = r.Double(cv, cp, 0, 1e6)) c.failure_rate = *d;
                } else if (ck == "xid_distribution") {
                  r.Map(cv, cp, {},
                        [&](const std::string& xk, const YAML::Node& xv,
                            const std::string& xp) {
                          int code;
                          if (!absl::SimpleAtoi(xk, &code) || code <= 0) {
                            r.Error(
                                xv, xp,
                                absl::StrCat("'", xk, "' is not an XID code"));
                            return;
                          }
                          if (auto d = r.Double(xv, xp, 0, 1e9))
                            c.xid_distribution.push_back({code, *d});
                        });
                  std::sort(c.xid_distribution.begin(),
                            c.xid_distribution.end());
                } else if (ck == "failure_types") {
                  r.List(cv, cp,
                         [&](const YAML::Node& fn, const std::string& fp, int) {
                           WeightedName w;
                           r.Map(
                               fn, fp, {"type", "weight"},
                               [&](const std::string& fk, const YAML::Node& fv,
                                   const std::string& fpp) {
                                 if (fk == "weight") {
                                   if (auto d = r.Double(fv, fpp, 0, 1e9))
                                     w.weight = *d;
                                 } else if (auto str = r.Str(fv, fpp)) {
                                   w.name = *str;
                                   if (!IsKnownFailureType(w.name)) {
                                     r.Error(fv, fpp,
                                             absl::StrCat(
                                                 "unknown failure type '",
                                                 w.name, "' (known: ",
                                                 ListOf(kFailureTypes), ")"));
                                   }
                                 }
                               });
                           c.failure_types.push_back(w);
                         });
                } else if (ck == "cascading") {
                  CascadeSpec& cs = c.cascading;
                  r.Map(cv, cp,
                        {"enabled", "probability", "max_depth", "min_delay",
                         "max_delay", "scope", "max_affected_percent"},
                        [&](const std::string& k2, const YAML::Node& v2,
                            const std::string& p2) {
                          if (k2 == "enabled") {
                            if (auto b = r.Bool(v2, p2)) cs.enabled = *b;
                          } else if (k2 == "probability") {
                            if (auto d = r.Double(v2, p2, 0, 1))
                              cs.probability = *d;
                          } else if (k2 == "max_depth") {
                            if (auto i = r.Int(v2, p2, -1000, 1000))
                              cs.max_depth = *i <= 0 ? 3 : *i;
                          } else if (k2 == "max_affected_percent") {
                            if (auto d = r.Double(v2, p2, 0, 1))
                              cs.max_affected_percent = *d;
                          } else if (k2 == "scope") {
                            if (auto str = r.Str(v2, p2)) {
                              cs.scope = *str;
                              if (cs.scope != "zone" && cs.scope != "region" &&
                                  cs.scope != "provider" &&
                                  cs.scope != "rack" && cs.scope != "random") {
                                r.Error(v2, p2,
                                        absl::StrCat("unknown cascade scope '",
                                                     *str,
                                                     "' (known: zone, region, "
                                                     "provider, rack, "
                                                     "random)"));
                              }
                            }
                          } else if (auto d = r.Dur(v2, p2)) {
                            (k2 == "min_delay" ? cs.min_delay : cs.max_delay) =
                                *d;
                          }
                        });
                } else if (ck == "recovery") {
                  RecoverySpec& rs = c.recovery;
                  r.Map(cv, cp,
                        {"enabled", "probability", "mean_time", "std_dev",
                         "replace_fatal", "replace_cold_start"},
                        [&](const std::string& k2, const YAML::Node& v2,
                            const std::string& p2) {
                          if (k2 == "enabled") {
                            if (auto b = r.Bool(v2, p2)) rs.enabled = *b;
                          } else if (k2 == "replace_fatal") {
                            if (auto b = r.Bool(v2, p2)) rs.replace_fatal = *b;
                          } else if (k2 == "probability") {
                            if (auto d = r.Double(v2, p2, 0, 1))
                              rs.probability = *d;
                          } else if (auto d = r.Dur(v2, p2)) {
                            if (k2 == "mean_time") rs.mean_time = *d;
                            if (k2 == "std_dev") rs.std_dev = *d;
                            if (k2 == "replace_cold_start")
                              rs.replace_cold_start = *d;
                          }
                        });
                } else if (ck == "scheduled_outages") {
                  r.List(cv, cp,
                         [&](const YAML::Node& on, const std::string& op, int) {
                           OutageSpec o;
                           o.pos = Reader::PosOf(on);
                           r.Map(
                               on, op,
                               {"name", "start_time", "duration", "scope",
                                "target", "failure_type"},
                               [&](const std::string& k2, const YAML::Node& v2,
                                   const std::string& p2) {
                                 if (k2 == "start_time" || k2 == "duration") {
                                   if (auto d = r.Dur(v2, p2))
                                     (k2 == "duration" ? o.duration
                                                       : o.start_time) = *d;
                                 } else if (auto str = r.Str(v2, p2)) {
                                   if (k2 == "name") o.name = *str;
                                   if (k2 == "target") o.target = *str;
                                   if (k2 == "scope") {
                                     o.scope = *str;
                                     if (o.scope != "zone" &&
                                         o.scope != "region" &&
                                         o.scope != "provider" &&
                                         o.scope != "percentage") {
                                       r.Error(
                                           v2, p2,
                                           absl::StrCat(
                                               "unknown outage scope '", *str,
                                               "' (known: zone, region, "
                                               "provider, percentage)"));
                                     }
                                   }
                                   if (k2 == "failure_type") {
                                     o.failure_type = *str;
                                     if (!IsKnownFailureType(*str)) {
                                       r.Error(v2, p2,
                                               absl::StrCat(
                                                   "unknown failure type '",
                                                   *str, "' (known: ",
                                                   ListOf(kFailureTypes), ")"));
                                     }
                                   }
                                 }
                               });
                           if (o.scope.empty())
                             r.Error(on, op, "outage 'scope' is required");
                           c.scheduled_outages.push_back(std::move(o));
                         });
                } else if (ck == "correlated_failures") {
                  r.List(
                      cv, cp,
                      [&](const YAML::Node& cn, const std::string& cpp, int) {
                        CorrelatedSpec cf;
                        r.Map(
                            cn, cpp,
                            {"name", "trigger", "trigger_type", "trigger_xid",
                             "response", "response_type", "response_xid",
                             "probability", "delay", "scope", "max_affected"},
                            [&](const std::string& k2, const YAML::Node& v2,
                                const std::string& p2) {
                              if (k2 == "trigger_xid" || k2 == "response_xid") {
                                if (auto i = r.Int(v2, p2, 0, 1000))
                                  (k2 == "trigger_xid" ? cf.trigger_xid
                                                       : cf.response_xid) = *i;
                              } else if (k2 == "max_affected") {
                                if (auto i = r.Int(v2, p2, 1, 1000000))
                                  cf.max_affected = *i;
                              } else if (k2 == "probability") {
                                if (auto d = r.Double(v2, p2, 0, 1))
                                  cf.probability = *d;
                              } else if (k2 == "delay") {
                                if (auto d = r.Dur(v2, p2)) cf.delay = *d;
                              } else if (auto str = r.Str(v2, p2)) {
                                if (k2 == "name") cf.name = *str;
                                if (k2 == "scope") {
                                  cf.scope = *str;
                                  if (*str != "same_node" && *str != "zone" &&
                                      *str != "region" && *str != "provider" &&
                                      *str != "rack") {
                                    r.Error(v2, p2,
                                            absl::StrCat(
                                                "unknown scope '", *str,
                                                "' (known: same_node, zone, "
                                                "region, provider, rack)"));
                                  }
                                }
                                if (k2 == "trigger" || k2 == "trigger_type" ||
                                    k2 == "response" || k2 == "response_type") {
                                  if (!IsKnownFailureType(*str)) {
                                    r.Error(v2, p2,
                                            absl::StrCat(
                                                "unknown failure type '", *str,
                                                "' (known: ",
                                                ListOf(kFailureTypes), ")"));
                                  }
                                  if (absl::StartsWith(k2, "trigger")) {
                                    cf.trigger_type = *str;
                                  } else {
                                    cf.response_type = *str;
                                  }
                                }
                              }
                            });
                        c.correlated_failures.push_back(std::move(cf));
                      });
                }
              });
        } else if (auto str = r.Str(v, p)) {
          if (k == "report_file") s.report_file = *str;
          if (k == "html_report_file") s.html_report_file = *str;
          if (k == "log_file") s.log_file = *str;
        }
      });
}

// The lines of `text` that hold the value of the top-level key at
// [first_line, end_line) (0-based), dedented by `indent` columns, with every
// other line blank so that line numbers stay those of the scenario file.
std::string ExtractBlock(absl::string_view text, int first_line, int end_line,
                         int indent) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  std::string out;
  for (int i = 0; i < static_cast<int>(lines.size()); ++i) {
    if (i >= first_line && i < end_line) {
      absl::string_view l = lines[i];
      int strip = 0;
      while (strip < indent && strip < static_cast<int>(l.size()) &&
             l[strip] == ' ') {
        ++strip;
      }
      l.remove_prefix(strip);
      out.append(l.data(), l.size());
    }
    out.push_back('\n');
  }
  return out;
}

void ParseConfigBlock(Reader& r, absl::string_view text, const YAML::Node& root,
                      const YAML::Node& cfg, const std::string& filename,
                      Scenario& s) {
  s.has_config = true;
  std::string block;
  int column_shift = 0;
  const Pos pos = Reader::PosOf(cfg);
  if (cfg.IsMap() && cfg.Style() != YAML::EmitterStyle::Flow && pos.line > 0) {
    // The block ends where the next top-level key begins.
    int end = INT32_MAX;
    for (auto it = root.begin(); it != root.end(); ++it) {
      Pos kp = Reader::PosOf(it->first);
      if (kp.line > pos.line) end = std::min(end, kp.line - 1);
    }
    column_shift = pos.column - 1;
    block = ExtractBlock(text, pos.line - 1, end, column_shift);
  } else if (!cfg.IsNull()) {
    YAML::Emitter e;
    e << cfg;
    block = e.c_str();
  }
  ConfigLoadResult loaded = ParseConfig(block, filename);
  for (const ConfigError& e : loaded.errors) {
    Pos p = pos;
    if (e.line > 0 && column_shift > 0) p = {e.line, e.column + column_shift};
    if (e.line > 0 && column_shift == 0 && pos.line > 0 && cfg.IsMap() &&
        cfg.Style() != YAML::EmitterStyle::Flow) {
      p = {e.line, e.column};
    }
    r.Error(p, e.path.empty() ? "config" : absl::StrCat("config.", e.path),
            e.message);
  }
  if (!loaded.ok()) return;
  s.config = loaded.config;
  // A relative policy path is relative to the scenario, so a scenario and its
  // policy travel together.
  std::string& policy = s.config.server.health_policy;
  if (!policy.empty() && !std::filesystem::path(policy).is_absolute()) {
    policy = (std::filesystem::path(filename).parent_path() / policy).string();
  }
  if (!policy.empty()) {
    auto p = Policy::LoadFile(policy);
    if (!p.ok()) {
      r.Error(pos, "config.server.health_policy",
              absl::StrCat("cannot load ", policy, ": ", p.status().message()));
    }
  }
  s.config.storage.backend = StorageBackend::kMemory;
  ResolveConfig(&s.config);
}

void Validate(Reader& r, Scenario& s, const YAML::Node& root) {
  if (s.name.empty()) r.Error(root, "name", "'name' is required");
  const bool generated = s.stress && s.stress->fleet_gen;
  const bool pools = s.has_config && !s.config.pools.empty();
  if (s.fleet.empty() && !generated && !pools) {
    r.Error(root, "fleet",
            "'fleet' is required (or stress.fleet_gen, or config pools)");
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < s.fleet.size(); ++i) {
    const NodeSpec& n = s.fleet[i];
    std::string p = absl::StrCat("fleet[", i, "].id");
    if (n.id.empty()) {
      r.Error(n.pos, p, "node 'id' is required");
    } else if (!ids.insert(n.id).second) {
      r.Error(n.pos, p, absl::StrCat("duplicate node id '", n.id, "'"));
    }
  }
  // Nodes made by pools or generated by fleet_gen have ids that are only
  // known at run time.
  const bool open_targets = generated || pools;
  auto check_target = [&](const std::string& target, Pos pos,
                          const std::string& path, bool required) {
    if (target.empty()) {
      if (required) r.Error(pos, path, "'target' (a node id) is required");
      return;
    }
    if (!open_targets && !ids.contains(target)) {
      r.Error(pos, path,
              absl::StrCat("target '", target, "' is not a node of the fleet"));
    }
  };
  auto check_status = [&](const std::string& value, Pos pos,
                          const std::string& path) {
    if (!ParseNodeStatus(value).ok() || value == "unknown" ||
        value == "unspecified") {
      r.Error(pos, path,
              absl::StrCat("unknown node status '", value,
                           "' (known: active, cordoned, draining, unhealthy, "
                           "terminated)"));
    }
  };
  for (const EventSpec& e : s.events) {
    const std::string p = absl::StrCat("events[", e.index, "]");
    if (e.action == "inject_failure" || e.action == "recover_failure" ||
        e.action == "issue_command" || e.action == "wait_for_status") {
      check_target(e.target, e.PosOf("target"), p + ".target", true);
    }
    if (e.action == "inject_failure") {
      if (e.failure_type.empty()) {
        r.Error(e.PosOf("params"), p + ".params.failure_type",
                "failure_type is required");
      }
      if (e.failure_type == "xid_error" && e.xid_code == 0) {
        r.Error(e.PosOf("params.failure_type"), p + ".params.xid_code",
                "xid_code is required for xid_error");
      }
    }
    if ((e.action == "inject_failure" || e.action == "recover_failure") &&
        !e.failure_type.empty() && !IsKnownFailureType(e.failure_type)) {
      r.Error(e.PosOf("params.failure_type"), p + ".params.failure_type",
              absl::StrCat("unknown failure type '", e.failure_type,
                           "' (known: ", ListOf(kFailureTypes), ")"));
    }
    if (e.action == "issue_command" && !OneOf(e.command_type, kCommandTypes)) {
      r.Error(e.PosOf("params.command_type"), p + ".params.command_type",
              absl::StrCat("unknown command type '", e.command_type,
                           "' (known: ", ListOf(kCommandTypes), ")"));
    }
    if (e.action == "wait_for_status") {
      check_status(e.expected_status, e.PosOf("params.expected_status"),
                   p + ".params.expected_status");
    }
    if (e.action == "assert") {
      // Upstream reads the assertion type from params.failure_type.
      std::string type =
          e.failure_type.empty() ? "node_status" : e.failure_type;
      if (type != "node_status" && type != "health_status" &&
          type != "node_count") {
        r.Error(e.PosOf("params.failure_type"), p + ".params.failure_type",
                absl::StrCat("unknown assertion type '", type,
                             "' for action assert (known: node_status, "
                             "health_status, node_count)"));
      }
    }
  }
  for (size_t i = 0; i < s.assertions.size(); ++i) {
    const AssertionSpec& a = s.assertions[i];
    const std::string p = absl::StrCat("assertions[", i, "]");
    if (!OneOf(a.type, kAssertionTypes)) {
      r.Error(a.PosOf("type"), p + ".type",
              absl::StrCat("unknown assertion type '", a.type,
                           "' (known: ", ListOf(kAssertionTypes), ")"));
      continue;
    }
    Comparison c;
    if (a.type == "node_status") {
      check_target(a.target, a.PosOf("target"), p + ".target", true);
      check_status(a.expected, a.PosOf("expected"), p + ".expected");
    } else if (a.type == "health_status") {
      check_target(a.target, a.PosOf("target"), p + ".target", true);
      if (a.expected != "healthy" && a.expected != "degraded" &&
          a.expected != "unhealthy" && a.expected != "unknown") {
        r.Error(a.PosOf("expected"), p + ".expected",
                absl::StrCat("unknown health status '", a.expected,
                             "' (known: healthy, degraded, unhealthy, "
                             "unknown)"));
      }
    } else if (a.type == "time_to_replace" || a.type == "time_to_detect") {
      if (!ParseGoDuration(a.expected).ok()) {
        r.Error(
            a.PosOf("expected"), p + ".expected",
            absl::StrCat("'", a.expected, "' is not a duration (e.g. \"5m\")"));
      }
    } else if (!ParseComparisonText(a.expected, &c)) {
      r.Error(a.PosOf("expected"), p + ".expected",
              absl::StrCat("'", a.expected,
                           "' is not a number or a comparison such as "
                           "\">=800\""));
    }
    if (!a.status.empty())
      check_status(a.status, a.PosOf("params.status"), p + ".params.status");
    const std::string& pool = a.type == "pool_size" ? a.target : a.pool;
    if (a.type == "pool_size" && pool.empty()) {
      r.Error(a.pos, p + ".target", "'target' (a pool name) is required");
    }
    if (!pool.empty() && !s.config.pools.contains(pool)) {
      r.Error(a.PosOf(a.type == "pool_size" ? "target" : "params.pool"),
              a.type == "pool_size" ? p + ".target" : p + ".params.pool",
              absl::StrCat("pool '", pool, "' is not in config.pools"));
    }
  }
}

}  // namespace

bool ParseComparison(absl::string_view text, Comparison* out) {
  return ParseComparisonText(text, out);
}

ParseResult ParseScenario(absl::string_view yaml, const std::string& filename) {
  ParseResult result;
  Scenario& s = result.scenario;
  s.file = filename;
  s.config = SimDefaultConfig();
  Reader r(filename, &result.errors);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    r.Error(Pos{e.mark.line + 1, e.mark.column + 1}, "",
            absl::StrCat("YAML syntax error: ", e.msg));
    return result;
  } catch (const std::exception& e) {
    r.Error(Pos{}, "", absl::StrCat("YAML error: ", e.what()));
    return result;
  }
  if (!root.IsMap()) {
    r.Error(root, "", "a scenario must be a YAML mapping");
    return result;
  }
  try {
    r.Map(
        root, "",
        {"name", "description", "fleet", "events", "assertions", "stress",
         "config", "boot_delay"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          if (k == "fleet") {
            r.List(v, p, [&](const YAML::Node& n, const std::string& np, int) {
              NodeSpec spec;
              ParseNode(r, n, np, spec);
              s.fleet.push_back(std::move(spec));
            });
          } else if (k == "events") {
            r.List(v, p,
                   [&](const YAML::Node& n, const std::string& np, int i) {
                     EventSpec e;
                     e.index = i;
                     ParseEvent(r, n, np, e);
                     s.events.push_back(std::move(e));
                   });
          } else if (k == "assertions") {
            r.List(v, p, [&](const YAML::Node& n, const std::string& np, int) {
              AssertionSpec a;
              ParseAssertion(r, n, np, a);
              s.assertions.push_back(std::move(a));
            });
          } else if (k == "stress") {
            StressSpec st;
            ParseStress(r, v, p, st);
            s.stress = std::move(st);
          } else if (k == "config") {
            ParseConfigBlock(r, yaml, root, v, filename, s);
          } else if (k == "boot_delay") {
            if (auto d = r.Dur(v, p)) s.boot_delay = *d;
          } else if (auto str = r.Str(v, p)) {
            if (k == "name") s.name = *str;
            if (k == "description") s.description = *str;
          }
        });
    Validate(r, s, root);
  } catch (const std::exception& e) {
    r.Error(Pos{}, "", absl::StrCat("YAML error: ", e.what()));
  }
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ScenarioError& a, const ScenarioError& b) {
                     if (a.pos.line != b.pos.line)
                       return a.pos.line < b.pos.line;
                     return a.pos.column < b.pos.column;
                   });
  return result;
}

ParseResult LoadScenarioFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ParseResult r;
    r.errors.push_back({path, {}, "", "cannot read the file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseScenario(ss.str(), path);
}

}  // namespace navarch::sim
