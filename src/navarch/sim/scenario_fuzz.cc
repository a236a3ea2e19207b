// libFuzzer target: arbitrary bytes as a simulator scenario file. Parsing
// must never crash, throw or hang; a scenario that does not parse must say
// why. Scenarios are parsed only, never run (a valid one may ask for hours
// of a 10,000-node fleet).
//
//   cmake --preset check && cmake --build build-check --target scenario_fuzz
//   build-check/fuzz/scenario_fuzz -max_total_time=60 <corpus copy>
// scripts/run-fuzzers runs it with src/navarch/sim/fuzz_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "navarch/sim/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  // A name in a folder that does not exist: a `config:` block that names a
  // relative policy file resolves to nothing, so no input reads real files.
  navarch::sim::ParseResult result =
      navarch::sim::ParseScenario(yaml, "/nonexistent-fuzz-dir/fuzz.yaml");
  if (!result.ok() &&
      (result.status().ok() || result.status().message().empty())) {
    std::abort();
  }
  return 0;
}
