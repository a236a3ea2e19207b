// Turns CEL source into an expression tree ready to evaluate: syntax
// (langdef.md "Syntax"), macros (langdef.md "Macros"), function names,
// macro variable scopes and constant folding. Internal.
#ifndef NAVARCH_CEL_PARSER_H_
#define NAVARCH_CEL_PARSER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/cel/ast.h"

namespace navarch::cel::internal {

// The deepest nesting accepted, counted both as parser recursion (brackets,
// call arguments, conditionals) and as the height of the tree (which also
// grows with chains such as `a.b.c` or `x + y + z`). Deeper input is a
// compile error instead of a stack overflow; cel-go uses the same limit.
// `&&` and `||` chains are flattened, so they may be arbitrarily long.
inline constexpr uint32_t kMaxNesting = 250;

struct CompiledExpr {
  ExprPtr root;
  // How many macro iteration variables may be bound at once (the deepest
  // nesting of macros); the evaluator reserves that many slots.
  uint32_t num_slots = 0;
};

// Errors are InvalidArgument with a "line:col: " prefix.
absl::StatusOr<CompiledExpr> Compile(absl::string_view source);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_PARSER_H_
