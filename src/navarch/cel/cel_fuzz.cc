// libFuzzer target: compiles arbitrary bytes as a CEL expression and, when
// that succeeds, evaluates it against a small activation. Any crash, hang,
// sanitizer report or broken invariant is a bug.
//
//   cmake --preset check && cmake --build build-check --target cel_fuzz
//   build-check/fuzz/cel_fuzz -max_total_time=60 <corpus copy>
// scripts/run-fuzzers runs it with src/navarch/cel/fuzz_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/program.h"
#include "navarch/cel/value.h"

namespace {

const navarch::cel::Activation& FuzzActivation() {
  using navarch::cel::Value;
  static const navarch::cel::Activation* const activation = [] {
    auto* a = new navarch::cel::Activation();
    a->Bind("x", Value::Int(3));
    a->Bind("s", Value::String("abc"));
    a->Bind("l", Value::List({Value::Int(1), Value::String("x"), Value()}));
    a->Bind("m", *Value::Map({{Value::String("k"), Value::List({})},
                              {Value::Int(1), Value::Double(2.5)}}));
    a->Bind("a.b", *Value::Map({{Value::String("c"), Value::Bool(true)}}));
    return a;
  }();
  return *activation;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<navarch::cel::Program> program =
      navarch::cel::Program::Compile(input);
  if (!program.ok()) return 0;
  absl::StatusOr<navarch::cel::Value> value =
      program->Evaluate(FuzzActivation());
  if (!value.ok()) return 0;
  // A value prints as a literal that compiles and evaluates to itself.
  const std::string literal = value->DebugString();
  absl::StatusOr<navarch::cel::Program> again =
      navarch::cel::Program::Compile(literal);
  if (!again.ok()) std::abort();
  absl::StatusOr<navarch::cel::Value> same =
      again->Evaluate(navarch::cel::Activation());
  if (!same.ok() || same->DebugString() != literal) std::abort();
  return 0;
}
