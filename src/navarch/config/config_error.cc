#include "navarch/config/config_error.h"

#include "absl/strings/str_cat.h"

namespace navarch {

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) absl::StrAppend(&out, ":", line, ":", column);
  absl::StrAppend(&out, ": ");
  if (!path.empty()) absl::StrAppend(&out, path, ": ");
  absl::StrAppend(&out, message);
  return out;
}

}  // namespace navarch
