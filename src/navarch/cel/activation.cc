#include "navarch/cel/activation.h"

#include <utility>

namespace navarch::cel {

void Activation::Bind(absl::string_view name, Value value) {
  if (name.find('.') != absl::string_view::npos) has_qualified_names_ = true;
  vars_.insert_or_assign(std::string(name), std::move(value));
}

}  // namespace navarch::cel
