// libFuzzer harness for the kernel-log parsers (target kmsg_fuzz, clang's
// check preset; see tests/CMakeLists.txt). The invariants are those of
// kmsg_fuzz_test.cc, which runs a fixed-seed slice of this in every test run.
//
//   cmake --preset check && cmake --build build-check --target kmsg_fuzz
//   build-check/fuzz/kmsg_fuzz -max_total_time=60 <corpus copy>
// scripts/run-fuzzers runs it with src/navarch/agent/events/fuzz_corpus.
#include <cstddef>
#include <cstdint>

#include "navarch/agent/events/kmsg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  navarch::agent::KmsgRecord r = navarch::agent::ParseKmsgRecord(input);
  if (r.message.size() > input.size()) __builtin_trap();
  for (absl::string_view text : {input, absl::string_view(r.message)}) {
    auto x = navarch::agent::ParseXidLine(text);
    if (!x) continue;
    if (x->code < 0 || x->code > 999999999) __builtin_trap();
    if (x->pci.size() > 32 || x->pid.size() > 32 ||
        x->process_name.size() > 64 || x->text.size() > 1024) {
      __builtin_trap();
    }
  }
  navarch::agent::ParsePciAddress(input);
  return 0;
}
