// The expression tree the parser builds and the interpreter walks. Internal.
#ifndef NAVARCH_CEL_AST_H_
#define NAVARCH_CEL_AST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "navarch/cel/value.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace navarch::cel::internal {

enum class ExprKind : uint8_t {
  kConst,          // value
  kIdent,          // name: a variable from the activation
  kIterVar,        // slot: a macro's iteration variable
  kSelect,         // args[0].name; `qualified` when it may name a variable
  kHas,            // has(args[0].name)
  kIndex,          // args[0][args[1]]
  kCall,           // fn(args...): operators and standard functions
  kList,           // [args...]
  kMap,            // {args[0]: args[1], args[2]: args[3], ...}
  kAnd,            // args[0] && args[1] && ... (flattened chain)
  kOr,             // args[0] || args[1] || ...
  kConditional,    // args[0] ? args[1] : args[2]
  kComprehension,  // macro over args[0], iteration variable in `slot`
};

// Operators and standard functions, resolved at compile time.
enum class Builtin : uint8_t {
  kNot,
  kNegate,
  kAdd,
  kSubtract,
  kMultiply,
  kDivide,
  kModulo,
  kEqual,
  kNotEqual,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kIn,
  kSize,
  kContains,
  kStartsWith,
  kEndsWith,
  kMatches,
  kToInt,
  kToUint,
  kToDouble,
  kToString,
  kToBool,
  kToBytes,
  kDyn,
};

enum class Macro : uint8_t {
  kAll,        // args[1] is the predicate
  kExists,     // args[1] is the predicate
  kExistsOne,  // args[1] is the predicate
  kMap,        // args[1] is the transform
  kMapFilter,  // args[1] is the filter, args[2] the transform
  kFilter,     // args[1] is the predicate
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  Builtin fn = Builtin::kNot;  // kCall
  Macro macro = Macro::kAll;   // kComprehension
  uint32_t offset = 0;         // byte offset of the node in the source
  uint32_t height = 1;         // 1 + the tallest child's height
  uint32_t slot = 0;           // kIterVar, kComprehension
  Value value;                 // kConst
  // kIdent: the variable; kSelect, kHas: the field; kComprehension: the
  // iteration variable.
  std::string name;
  // kSelect rooted at an identifier: the dotted name ("a.b.c") to try first
  // when the activation binds qualified names.
  std::string qualified;
  std::vector<std::unique_ptr<Expr>> args;
  // kCall kMatches with a constant pattern: compiled once.
  std::shared_ptr<const re2::RE2> regex;
};

using ExprPtr = std::unique_ptr<Expr>;

// Names used in "no such overload" messages, as in the CEL definition.
const char* BuiltinName(Builtin fn);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_AST_H_
