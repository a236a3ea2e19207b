// Tells the workload system (a scheduler, a webhook) that a node is being
// taken out of service, and asks whether its work has moved off.
#ifndef NAVARCH_NOTIFIER_NOTIFIER_H_
#define NAVARCH_NOTIFIER_NOTIFIER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace navarch {

enum class NoticeType { kCordon, kUncordon, kDrain };
absl::string_view NoticeTypeName(NoticeType type);  // "cordon", ...

// One thing the workload system is told.
struct Notice {
  NoticeType type = NoticeType::kCordon;
  std::string node_id;
  std::string reason;
  // Stable across retries, so a receiver can tell a retry from a new notice
  // ("event-<id>" of the event log entry it comes from; empty when none).
  std::string id;
  // When it happened (the event's time), not when it is (re)sent;
  // InfinitePast when unknown (the notifier then uses the send time).
  absl::Time time = absl::InfinitePast();
};

// Implementations are thread-safe. Calls may block on the network: callers
// run them on worker threads (the pool manager's), never under a fleet lock.
class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual absl::string_view name() const = 0;
  // No new work should be placed on the node.
  virtual absl::Status Cordon(const std::string& node_id,
                              const std::string& reason) = 0;
  virtual absl::Status Uncordon(const std::string& node_id) = 0;
  // Running work should move off the node.
  virtual absl::Status Drain(const std::string& node_id,
                             const std::string& reason) = 0;
  // True once nothing runs on the node any more.
  virtual absl::StatusOr<bool> IsDrained(const std::string& node_id) = 0;

  // Delivers `notice` (what the dispatcher calls): Cordon, Uncordon or Drain
  // unless the notifier carries the notice's id and time itself (the
  // webhook does).
  virtual absl::Status Notify(const Notice& notice) {
    switch (notice.type) {
      case NoticeType::kCordon:
        return Cordon(notice.node_id, notice.reason);
      case NoticeType::kUncordon:
        return Uncordon(notice.node_id);
      case NoticeType::kDrain:
        return Drain(notice.node_id, notice.reason);
    }
    return absl::InternalError("unknown notice");
  }
};

// No workload system: every call succeeds and a node is always drained.
class NoopNotifier final : public Notifier {
 public:
  absl::string_view name() const override { return "noop"; }
  absl::Status Cordon(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Uncordon(const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Drain(const std::string&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<bool> IsDrained(const std::string&) override { return true; }
};

}  // namespace navarch

#endif  // NAVARCH_NOTIFIER_NOTIFIER_H_
