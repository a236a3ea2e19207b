// The variables an expression is evaluated against.
#ifndef NAVARCH_CEL_ACTIVATION_H_
#define NAVARCH_CEL_ACTIVATION_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "navarch/cel/value.h"

namespace navarch::cel {

// Maps variable names to values. Build it, then evaluate any number of
// programs against it; a const Activation may be shared between threads.
class Activation {
 public:
  Activation() = default;

  // Binds `name` to `value`, replacing an earlier binding. A dotted name such
  // as "a.b" binds a qualified identifier: in `a.b.c` the longest bound
  // prefix wins (langdef.md "Name Resolution").
  void Bind(absl::string_view name, Value value);

  // The value bound to `name`, or nullptr.
  const Value* Find(absl::string_view name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? nullptr : &it->second;
  }

  // Whether some bound name contains a dot; lets evaluation skip qualified
  // lookups in the common case.
  bool has_qualified_names() const { return has_qualified_names_; }

 private:
  absl::flat_hash_map<std::string, Value> vars_;
  bool has_qualified_names_ = false;
};

}  // namespace navarch::cel

#endif  // NAVARCH_CEL_ACTIVATION_H_
