#include "navarch/controlplane/paging.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace navarch {

absl::Status CheckUnpagedAnswer(const google::protobuf::Message& answer,
                                int page_size, int count,
                                absl::string_view items, size_t limit) {
  if (page_size != 0) return absl::OkStatus();
  const size_t bytes = answer.ByteSizeLong();
  if (bytes <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the answer holds %d %s (%.1f MiB), more than the %.1f MiB one message "
      "may carry: ask for pages with page_size (e.g. 1000) and follow "
      "next_page_token (navarch list does)",
      count, items, bytes / 1048576.0, limit / 1048576.0));
}

}  // namespace navarch
