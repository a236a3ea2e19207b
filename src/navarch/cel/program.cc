#include "navarch/cel/program.h"

#include <utility>

#include "absl/container/inlined_vector.h"
#include "navarch/base/status.h"
#include "navarch/cel/interpreter.h"
#include "navarch/cel/parser.h"

namespace navarch::cel {

struct Program::Impl {
  std::string source;
  internal::CompiledExpr compiled;
};

absl::StatusOr<Program> Program::Compile(absl::string_view expression) {
  auto impl = std::make_shared<Impl>();
  impl->source = std::string(expression);
  NAVARCH_ASSIGN_OR_RETURN(impl->compiled, internal::Compile(impl->source));
  return Program(std::move(impl));
}

absl::StatusOr<Value> Program::Evaluate(const Activation& activation) const {
  // Per-call state lives on this stack, which is what makes concurrent
  // evaluation of one Program safe.
  absl::InlinedVector<const Value*, 8> slots(impl_->compiled.num_slots,
                                             nullptr);
  const internal::Frame frame{&activation, slots.data()};
  internal::Result result;
  NAVARCH_RETURN_IF_ERROR(
      internal::Eval(*impl_->compiled.root, frame, &result));
  return result.Take();
}

const std::string& Program::source() const { return impl_->source; }

}  // namespace navarch::cel
