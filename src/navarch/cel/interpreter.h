// Evaluates an expression tree. Internal.
#ifndef NAVARCH_CEL_INTERPRETER_H_
#define NAVARCH_CEL_INTERPRETER_H_

#include <utility>

#include "absl/status/status.h"
#include "navarch/cel/activation.h"
#include "navarch/cel/ast.h"
#include "navarch/cel/value.h"

namespace navarch::cel::internal {

// The outcome of evaluating a node: a value that is either borrowed (a
// constant of the program, a variable of the activation, or a part of one,
// all of which outlive the evaluation) or owned. Borrowing keeps the usual
// policy expression free of reference count traffic and allocation.
class Result {
 public:
  const Value& value() const { return ref_ != nullptr ? *ref_ : own_; }
  bool borrowed() const { return ref_ != nullptr; }

  void Borrow(const Value& v) { ref_ = &v; }
  void Set(Value v) {
    ref_ = nullptr;
    own_ = std::move(v);
  }
  // `part` lies inside value(): borrow it when value() is borrowed, else
  // copy it, since an owned value dies with this Result.
  void SetPart(const Result& whole, const Value& part) {
    if (whole.borrowed()) {
      Borrow(part);
    } else {
      Value copy = part;
      Set(std::move(copy));
    }
  }
  Value Take() { return ref_ != nullptr ? *ref_ : std::move(own_); }

 private:
  const Value* ref_ = nullptr;
  Value own_;
};

struct Frame {
  const Activation* activation;
  // Slot i holds the current element of the i-th enclosing macro.
  const Value** slots;
};

// Evaluates `e`. Errors are InvalidArgument statuses such as
// "no such key: x" or "no such overload: _+_(int, double)".
absl::Status Eval(const Expr& e, const Frame& frame, Result* out);

}  // namespace navarch::cel::internal

#endif  // NAVARCH_CEL_INTERPRETER_H_
