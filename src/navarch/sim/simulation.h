// One simulator run: the real fleet core (memory store), health policy,
// controllers (heartbeat monitor, pool manager with its autoscalers and
// replacement) and fake providers, with simulated agents, on a FakeClock.
// Time jumps from one timer to the next, so hours of fleet life take seconds.
//
// Deterministic: the clock starts at a fixed instant, every random draw comes
// from a generator seeded from the run's seed and its purpose, and nothing in
// the model reads the wall clock. The same scenario and seed give the same
// report `summary`, byte for byte.
#ifndef NAVARCH_SIM_SIMULATION_H_
#define NAVARCH_SIM_SIMULATION_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/sim/scenario.h"
#include "nlohmann/json.hpp"

namespace navarch::sim {

// Where virtual time starts: 2026-01-01T00:00:00Z.
inline constexpr int64_t kSimStartUnixSeconds = 1767225600;

struct SimOptions {
  // 0: the scenario's stress.seed, else 1.
  uint64_t seed = 0;
  // Progress, `log` actions and assertion results; null: silent.
  std::ostream* out = nullptr;
  // -v: the control plane's log (virtual timestamps) on `log_stream`.
  bool verbose = false;
  std::ostream* log_stream = nullptr;
  // Measures run.wall_seconds; null: not measured (0). Only the report's
  // `run` section depends on it.
  Clock* wall_clock = nullptr;
  // --realtime: called with the virtual time elapsed before each step, to
  // wait until as much wall time has passed.
  std::function<void(absl::Duration)> pace;
  // Healthy nodes skip the calls whose only effect is predictable
  // (sim_agent.h, docs/simulator.md "Skipped calls"); the summary is the same
  // either way. false (--every-call): every node makes every call.
  bool elide_calls = true;
  // The process exits after the run: the model (every node, agent, record
  // and event) is left to the operating system instead of being freed one
  // object at a time, which takes longer than a 10,000-node run itself.
  bool skip_teardown = false;
};

struct AssertionResult {
  std::string type;
  std::string target;
  std::string expected;
  std::string actual;
  bool passed = false;
  std::string source;  // "assertions[2]" or "events[5]"
  Pos pos;
  // "FAIL node_status node-1: expected unhealthy, actual active"
  std::string ToString() const;
};

struct SimResult {
  std::vector<AssertionResult> assertions;
  // Events that failed (a wait_for_status timeout, an injection into a node
  // that is not running...): the run stopped there.
  std::vector<std::string> errors;
  nlohmann::json report;  // summary, timeline, nodes, policy, run
  uint64_t seed = 0;
  // 0 all assertions held; 1 otherwise.
  int exit_code() const;
};

// Runs `scenario` (already validated) to the end.
SimResult RunScenario(const Scenario& scenario, const SimOptions& options);

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_SIMULATION_H_
