#include "navarch/bootstrap/bounded_output.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace navarch::bootstrap {

BoundedOutput::BoundedOutput(size_t limit)
    : limit_(limit), head_limit_(limit - limit / 2), tail_limit_(limit / 2) {}

void BoundedOutput::Append(std::string_view data) {
  total_ += data.size();
  const size_t to_head = std::min(data.size(), head_limit_ - head_.size());
  head_.append(data.substr(0, to_head));
  data.remove_prefix(to_head);
  if (data.empty() || tail_limit_ == 0) return;
  tail_.append(data);
  if (tail_.size() > 2 * tail_limit_) {
    tail_.erase(0, tail_.size() - tail_limit_);
  }
}

std::string BoundedOutput::Text() const {
  const size_t tail_size = std::min(tail_.size(), tail_limit_);
  const std::string_view tail =
      std::string_view(tail_).substr(tail_.size() - tail_size);
  if (!truncated()) return absl::StrCat(head_, tail_);
  return absl::StrCat(head_, "\n[... ", total_ - head_.size() - tail_size,
                      " bytes of output dropped ...]\n", std::string(tail));
}

}  // namespace navarch::bootstrap
