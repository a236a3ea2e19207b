// Cost of evaluating health-policy rules: compile once, evaluate per event.
//
//   cmake --build build --target cel_benchmark && build/bin/cel_benchmark
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/json.h"
#include "navarch/cel/program.h"
#include "nlohmann/json.hpp"

namespace navarch::cel {
namespace {

// The upstream default policy's first rule.
constexpr char kFatalXid[] =
    R"(event.event_type == "xid" && event.metrics.xid_code in )"
    R"([13, 31, 32, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 100, 119, 120])";

constexpr char kThermalCritical[] =
    R"(event.event_type == "thermal" && has(event.metrics.temperature) && )"
    R"(event.metrics.temperature >= 95)";

constexpr char kXidEvent[] = R"({
  "timestamp": "2026-11-27T10:00:00Z", "gpu_index": 3, "gpu_uuid": "GPU-1a2b3c",
  "system": "DCGM_HEALTH_WATCH_UNKNOWN", "event_type": "xid",
  "message": "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus",
  "metrics": {"xid_code": 79}})";

constexpr char kThermalEvent[] = R"({
  "timestamp": "2026-11-27T10:00:00Z", "gpu_index": 0, "gpu_uuid": "GPU-9f8e",
  "system": "DCGM_HEALTH_WATCH_THERMAL", "event_type": "thermal",
  "message": "GPU temperature high", "metrics": {"temperature": 97.5}})";

Activation EventActivation(const char* json) {
  Activation a;
  a.Bind("event", *ValueFromJson(nlohmann::json::parse(json)));
  return a;
}

void Evaluate(benchmark::State& state, const char* rule, const char* event) {
  const Program program = *Program::Compile(rule);
  const Activation activation = EventActivation(event);
  for (auto _ : state) {
    absl::StatusOr<Value> v = program.Evaluate(activation);
    benchmark::DoNotOptimize(v);
  }
}

// A match: a string comparison, two selections and a scan of the 20 codes.
void BM_FatalXidMatch(benchmark::State& state) {
  Evaluate(state, kFatalXid, kXidEvent);
}
BENCHMARK(BM_FatalXidMatch)->ThreadRange(1, 2);

// The usual case: another event type stops at the first comparison.
void BM_FatalXidOtherEvent(benchmark::State& state) {
  Evaluate(state, kFatalXid, kThermalEvent);
}
BENCHMARK(BM_FatalXidOtherEvent);

void BM_ThermalCritical(benchmark::State& state) {
  Evaluate(state, kThermalCritical, kThermalEvent);
}
BENCHMARK(BM_ThermalCritical);

// A rule that errs ("no such key"): the error path allocates a message.
void BM_MissingKeyError(benchmark::State& state) {
  Evaluate(state, "event.metrics.temperature >= 95", kXidEvent);
}
BENCHMARK(BM_MissingKeyError);

void BM_MacroOverList(benchmark::State& state) {
  Evaluate(state, "[13, 31, 79].exists(c, c == event.metrics.xid_code)",
           kXidEvent);
}
BENCHMARK(BM_MacroOverList);

// Per event as the health component would do it: JSON to Value, bind, then
// evaluate the fatal rule.
void BM_JsonBindEvaluate(benchmark::State& state) {
  const Program program = *Program::Compile(kFatalXid);
  const nlohmann::json event = nlohmann::json::parse(kXidEvent);
  for (auto _ : state) {
    Activation a;
    a.Bind("event", *ValueFromJson(event));
    absl::StatusOr<Value> v = program.Evaluate(a);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_JsonBindEvaluate);

void BM_CompileFatalXid(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<Program> p = Program::Compile(kFatalXid);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_CompileFatalXid);

}  // namespace
}  // namespace navarch::cel
