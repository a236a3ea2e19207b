// simulator: runs scenarios on virtual time against the real control-plane
// components. Thin: flags, output and exit codes; the work is in
// src/navarch/sim. docs/simulator.md is the user's guide.
//
//   simulator run SCENARIO.yaml [--seed N] [--output DIR] [--realtime] [-v]
//                 [--every-call]
//   simulator validate SCENARIO.yaml
//   simulator --version | --help
//
// Exit codes: 0 every assertion held; 1 an assertion failed or an event
// failed; 2 the scenario is invalid (or the command line is).
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/debugging/leak_check.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/base/duration.h"
#include "navarch/sim/report.h"
#include "navarch/sim/scenario.h"
#include "navarch/sim/simulation.h"

namespace {

using navarch::FormatGoDuration;
using navarch::sim::ParseResult;
using navarch::sim::Scenario;

int PrintErrors(const ParseResult& parsed) {
  for (const auto& e : parsed.errors) std::cerr << e.ToString() << "\n";
  std::cerr << parsed.scenario.file << ": " << parsed.errors.size()
            << (parsed.errors.size() == 1 ? " error" : " errors")
            << "; the scenario is invalid\n";
  return 2;
}

int Validate(const std::string& path) {
  ParseResult parsed = navarch::sim::LoadScenarioFile(path);
  if (!parsed.ok()) return PrintErrors(parsed);
  const Scenario& s = parsed.scenario;
  std::cout << "Scenario: " << s.name << "\n";
  if (!s.description.empty())
    std::cout << "Description: " << s.description << "\n";
  std::cout << "Type: " << (s.stress ? "stress" : "scenario") << "\n";
  if (s.stress && s.stress->fleet_gen) {
    std::cout << "Fleet: generated, " << s.stress->fleet_gen->total_nodes
              << " nodes from " << s.stress->fleet_gen->templates.size()
              << " templates, startup " << s.stress->fleet_gen->startup.pattern
              << "\n";
  } else {
    std::cout << "Fleet: " << s.fleet.size() << " nodes\n";
  }
  if (s.has_config) {
    std::cout << "Control plane: config block, " << s.config.pools.size()
              << " pools, heartbeat "
              << FormatGoDuration(s.config.server.heartbeat_interval)
              << ", health checks "
              << FormatGoDuration(s.config.server.health_check_interval)
              << "\n";
  }
  if (s.stress) {
    const auto& c = s.stress->chaos;
    std::cout << "Duration: " << FormatGoDuration(s.stress->duration) << "\n";
    std::cout << "Chaos: " << (c.enabled ? "enabled" : "disabled") << ", "
              << c.failure_rate << " failures/min per 1000 nodes"
              << (c.cascading.enabled ? ", cascading" : "")
              << (c.recovery.enabled ? ", recovery" : "") << "\n";
    std::cout << "Outages: " << c.scheduled_outages.size()
              << ", correlated failures: " << c.correlated_failures.size()
              << "\n";
    if (!s.stress->report_file.empty())
      std::cout << "Report: " << s.stress->report_file << "\n";
  }
  std::cout << "Events: " << s.events.size() << "\n";
  std::cout << "Assertions: " << s.assertions.size() << "\n";
  std::cout << "Scenario is valid.\n";
  return 0;
}

int Run(const std::string& path, uint64_t seed, std::string output,
        bool realtime, bool verbose, bool every_call) {
  ParseResult parsed = navarch::sim::LoadScenarioFile(path);
  if (!parsed.ok()) return PrintErrors(parsed);
  const Scenario& s = parsed.scenario;
  navarch::RealClock& wall = navarch::RealClock::Default();
  navarch::sim::SimOptions o;
  o.seed = seed;
  o.out = &std::cout;
  o.verbose = verbose;
  o.log_stream = &std::cerr;
  o.elide_calls = !every_call;
  // The process ends with the run: the model is left to the OS, except in
  // sanitizer builds, where LeakSanitizer checks the teardown.
#ifdef NAVARCH_SANITIZED
  o.skip_teardown = false;
#else
  o.skip_teardown = true;
#endif
  // stress.log_file: the control plane's log goes there (as with -v).
  std::ofstream log_file;
  if (s.stress && !s.stress->log_file.empty()) {
    log_file.open(s.stress->log_file, std::ios::trunc);
    if (!log_file) {
      std::cerr << "cannot write " << s.stress->log_file << "\n";
      return 2;
    }
    o.verbose = true;
    o.log_stream = &log_file;
  }
  o.wall_clock = &wall;
  if (realtime) {
    const absl::Duration origin = wall.SteadyNow();
    o.pace = [&wall, origin](absl::Duration virtual_elapsed) {
      absl::Duration wait = origin + virtual_elapsed - wall.SteadyNow();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    };
  }
  if (output.empty()) {
    output = absl::StrCat(
        "sim-runs/",
        absl::FormatTime("%Y-%m-%d_%H-%M-%S", wall.Now(), absl::UTCTimeZone()));
  }
  std::cout << "Running " << s.name << " (" << path << ")\n";
  // Left to the operating system at exit, as the model is (skip_teardown):
  // a 10,000-node report is megabytes of JSON objects.
  // A static pointer keeps it reachable, so LeakSanitizer does not report
  // it: absl::IgnoreLeak is a no-op where absl was built without LSan
  // (Debian's is).
  static navarch::sim::SimResult* result = nullptr;
  result = new navarch::sim::SimResult(navarch::sim::RunScenario(s, o));
  absl::IgnoreLeak(result);
  const navarch::sim::SimResult& r = *result;
  absl::Status w = navarch::sim::WriteReports(output, r.report);
  if (!w.ok()) std::cerr << "writing the report: " << w.message() << "\n";
  std::cout << "\n" << navarch::sim::SummaryText(r.report, r.seed);
  int failed = 0;
  for (const auto& a : r.assertions) {
    if (!a.passed) {
      ++failed;
      std::cout << a.ToString() << "\n";
    }
  }
  for (const auto& e : r.errors) std::cout << "ERROR " << e << "\n";
  std::cout << "Report: " << output << "/report.json\n";
  std::cout << "HTML:   " << output << "/report.html\n";
  if (r.exit_code() == 0) {
    std::cout << "PASSED: " << r.assertions.size() << " assertions held\n";
  } else {
    std::cout << "FAILED: " << failed << " of " << r.assertions.size()
              << " assertions failed, " << r.errors.size() << " event errors\n";
  }
  return r.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  // As in the control plane: Debian's Abseil leaves the deadlock detector on
  // for every lock; the tests keep it on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Named, so that --help says "simulator", not the path it was run by.
  CLI::App app{"Navarch simulator: scenarios on virtual time", "simulator"};
  app.set_version_flag("--version",
                       std::string("simulator version ") + NAVARCH_VERSION);
  app.require_subcommand(1);
  std::string path, output;
  uint64_t seed = 0;
  bool realtime = false, verbose = false, every_call = false;
  CLI::App* run = app.add_subcommand("run", "Run a scenario");
  run->add_option("scenario", path, "Scenario file")->required();
  run->add_option("--seed", seed, "Random seed (default: stress.seed, else 1)");
  run->add_option("--output", output,
                  "Report folder (default ./sim-runs/<timestamp>/)");
  run->add_flag("--realtime", realtime,
                "Pace virtual time to the wall clock (1 s per s)");
  run->add_flag("-v,--verbose", verbose,
                "Log the control plane (virtual timestamps) to stderr");
  run->add_flag("--every-call", every_call,
                "Healthy nodes make every heartbeat and health report "
                "call (slower; the same summary)");
  CLI::App* validate =
      app.add_subcommand("validate", "Check a scenario without running it");
  validate->add_option("scenario", path, "Scenario file")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*validate) return Validate(path);
  return Run(path, seed, output, realtime, verbose, every_call);
}
