// `navarch policy ...`: health-policy tooling that needs no control plane, so
// that policies get unit tests in their users' CI (docs/health.md).
#include "navarch/health/policy.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/cel/json.h"
#include "navarch/cel/program.h"
#include "navarch/cli/command.h"

namespace navarch::cli {
namespace {

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::shared_ptr<const Policy>> LoadPolicy(
    const std::string& path) {
  if (path.empty()) return Policy::Default();
  return Policy::LoadFile(path);
}

struct EvalFlags {
  std::string expression;
  std::string event_file;
};

absl::Status Eval(const EvalFlags& f, Session& s) {
  auto program = cel::Program::Compile(f.expression);
  if (!program.ok()) return program.status();
  cel::Value event = *cel::ValueFromJson(nlohmann::json::object());
  if (!f.event_file.empty()) {
    auto text = ReadAll(f.event_file);
    if (!text.ok()) return text.status();
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.event_file, ": not valid JSON"));
    }
    auto v = cel::ValueFromJson(j);
    if (!v.ok()) return v.status();
    event = *v;
  }
  cel::Activation vars;
  vars.Bind("event", event);
  auto result = program->Evaluate(vars);
  if (!result.ok()) return result.status();
  s.output().out() << cel::ValueToJson(*result).dump() << "\n";
  return absl::OkStatus();
}

struct TestFlags {
  std::string policy;
  std::string events_file;
};

absl::Status Test(const TestFlags& f, Session& s) {
  auto policy = LoadPolicy(f.policy);
  if (!policy.ok()) return policy.status();
  auto text = ReadAll(f.events_file);
  if (!text.ok()) return text.status();
  std::istringstream lines(*text);
  std::string line;
  int index = 0;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto event = EventJsonToCel(line);
    if (!event.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.events_file, ":", line_no, ": ", event.status().message()));
    }
    RuleMatch match = (*policy)->Match(*event);
    nlohmann::json out = nlohmann::json::object();
    out["event"] = index;
    out["rule"] = match.rule == nullptr ? "" : match.rule->name;
    HealthStatus result =
        match.rule == nullptr ? HEALTH_STATUS_HEALTHY : match.rule->result;
    out["result"] = result == HEALTH_STATUS_UNHEALTHY  ? "unhealthy"
                    : result == HEALTH_STATUS_DEGRADED ? "degraded"
                                                       : "healthy";
    if (!match.errors.empty()) {
      nlohmann::json errors = nlohmann::json::array();
      for (const auto& [rule, error] : match.errors) {
        errors.push_back({{"rule", rule}, {"error", error}});
        s.output().err() << "event " << index << ": rule " << rule
                         << " failed: " << error << "\n";
      }
      out["errors"] = errors;
    }
    s.output().out() << out.dump() << "\n";
    ++index;
  }
  return absl::OkStatus();
}

absl::Status Check(const std::string& path, Session& s) {
  auto policy = Policy::LoadFile(path);
  if (!policy.ok()) return policy.status();
  s.output().out() << path << ": ok (" << (*policy)->rules().size()
                   << " rules)\n";
  return absl::OkStatus();
}

}  // namespace

void AddPolicyCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* policy =
      app.add_subcommand("policy", "health-policy tooling (no server needed)");
  policy->require_subcommand(1);

  auto eval = std::make_shared<EvalFlags>();
  CLI::App* e = commands.Add(
      policy, "eval", "evaluate one CEL expression; prints the value as JSON",
      [eval](Session& s) { return Eval(*eval, s); });
  e->add_option("expression", eval->expression, "the CEL expression")
      ->required();
  e->add_option("--event", eval->event_file,
                "JSON file bound to `event` (default: an empty map)");

  auto test = std::make_shared<TestFlags>();
  CLI::App* t = commands.Add(
      policy, "test",
      "grade events (JSON lines) with a policy; one JSON line each",
      [test](Session& s) { return Test(*test, s); });
  t->add_option("policy", test->policy,
                "policy file (default: the built-in policy)");
  t->add_option("--events", test->events_file,
                "events, one JSON object per line")
      ->required();

  auto path = std::make_shared<std::string>();
  CLI::App* c = commands.Add(policy, "check", "validate a policy file",
                             [path](Session& s) { return Check(*path, s); });
  c->add_option("policy", *path, "policy file")->required();

  commands.Add(policy, "default", "print the built-in default policy",
               [](Session& s) {
                 s.output().out() << Policy::DefaultYaml();
                 return absl::OkStatus();
               });
}

}  // namespace navarch::cli
