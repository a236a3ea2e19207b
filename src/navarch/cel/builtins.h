// The operators and standard functions (langdef.md "List of Standard
// Definitions") on evaluated arguments. Internal.
#ifndef NAVARCH_CEL_BUILTINS_H_
#define NAVARCH_CEL_BUILTINS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "navarch/cel/ast.h"
#include "navarch/cel/value.h"

namespace navarch::cel::internal {

// Applies call.fn to `args` (the receiver first for methods); `call` also
// supplies a precompiled regular expression for matches().
absl::Status CallBuiltin(const Expr& call, absl::Span<const Value* const> args,
                         Value* out);

// "no such overload: fn(type, type)".
absl::Status NoSuchOverload(absl::string_view fn,
                            absl::Span<const Value* const> args);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_BUILTINS_H_
