#include "navarch/store/store.h"

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"

namespace navarch {

absl::Status Store::CommitSync(WriteBatch batch) {
  absl::Notification done;
  absl::Status result;
  Commit(std::move(batch), [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

bool EventKindMatches(const std::string& pattern, const std::string& kind) {
  if (!pattern.empty() && pattern.back() == '*') {
    return absl::StartsWith(
        kind, absl::string_view(pattern).substr(0, pattern.size() - 1));
  }
  return pattern == kind;
}

}  // namespace navarch
