// libFuzzer target: arbitrary bytes as a control-plane configuration file.
// Loading must never crash, throw or hang, whatever the YAML; a file that
// loads must also resolve its derived values (ResolveConfig) without
// crashing, and a failed load must say why.
//
//   cmake --preset check && cmake --build build-check --target config_fuzz
//   build-check/fuzz/config_fuzz -max_total_time=60 <corpus copy>
// scripts/run-fuzzers runs it with src/navarch/config/fuzz_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "navarch/config/config.h"
#include "navarch/config/config_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  navarch::ConfigLoadResult result = navarch::ParseConfig(yaml, "fuzz.yaml");
  if (!result.ok()) {
    // An error is reported as InvalidArgument with a message, never as OK.
    if (result.status().ok() || result.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  navarch::ResolveConfig(&result.config);
  return 0;
}
