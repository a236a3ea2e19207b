// Compiles a CEL expression once and evaluates it many times.
//
//   absl::StatusOr<Program> rule = Program::Compile(
//       R"(event.event_type == "xid" && event.metrics.xid_code in [48, 79])");
//   if (!rule.ok()) ...  // "1:12: Syntax error: ..."
//   Activation vars;
//   vars.Bind("event", *ValueFromJson(event_json));
//   absl::StatusOr<Value> result = rule->Evaluate(vars);  // Value::Bool(true)
//
// The supported subset of the CEL language definition is described in
// docs/cel.md.
#ifndef NAVARCH_CEL_PROGRAM_H_
#define NAVARCH_CEL_PROGRAM_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/value.h"

namespace navarch::cel {

// A compiled expression. Immutable and cheap to copy (copies share the
// compiled form); Evaluate may be called from many threads at once.
class Program {
 public:
  // Parses and checks `expression`. Syntax errors, unknown functions, bad
  // macro arguments, invalid constant regular expressions, nesting beyond
  // 250 levels and expressions over 100,000 bytes are InvalidArgument errors
  // whose message starts with the position, "line:column: " (both 1-based,
  // columns in code points).
  static absl::StatusOr<Program> Compile(absl::string_view expression);

  // Evaluates against `activation`. A runtime error (a missing map key, an
  // unbound variable, "no such overload", overflow, division by zero, ...)
  // is an InvalidArgument status with CEL's message, e.g.
  // "no such key: temperature" or "no such overload: _+_(int, double)".
  // Typically takes well under a microsecond for a policy rule.
  absl::StatusOr<Value> Evaluate(const Activation& activation) const;

  // The expression as given to Compile.
  const std::string& source() const;

 private:
  struct Impl;
  explicit Program(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  std::shared_ptr<const Impl> impl_;
};

}  // namespace navarch::cel

#endif  // NAVARCH_CEL_PROGRAM_H_
