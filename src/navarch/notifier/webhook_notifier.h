// The webhook notifier: tells a workload system (a scheduler's adapter, a
// chat-ops bot) about cordon, uncordon and drain by HTTP, and asks it whether
// a node's work has moved off. Wire format as upstream (inventory §6):
//   POST <cordon_url|uncordon_url|drain_url>, Content-Type: application/json
//     {"event":"cordon","node_id":"gpu-7","reason":"...","id":"event-42",
//      "timestamp":"<RFC 3339>"}
//     ("reason" is left out when empty); any 2xx is success. "id" (ours) is
//     the same on every retry of a notice; "timestamp" is when the event
//     happened, not when this attempt was sent.
//   GET <drain_status_url>?node_id=<id> -> 200 {"drained":true,"message":"..."}
// An empty URL skips that call and reports success (IsDrained: true).
// Configured headers are sent on every call and override ours.
#ifndef NAVARCH_NOTIFIER_WEBHOOK_NOTIFIER_H_
#define NAVARCH_NOTIFIER_WEBHOOK_NOTIFIER_H_

#include <string>

#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/notifier/notifier.h"

namespace navarch {

class WebhookNotifier final : public Notifier {
 public:
  // `clock` stamps notices that carry no time; it must outlive the
  // notifier.
  WebhookNotifier(WebhookConfig config, Clock& clock);

  // INVALID_ARGUMENT naming the key when a URL is set but unusable.
  static absl::Status Validate(const WebhookConfig& config);

  absl::string_view name() const override { return "webhook"; }
  absl::Status Cordon(const std::string& node_id,
                      const std::string& reason) override;
  absl::Status Uncordon(const std::string& node_id) override;
  absl::Status Drain(const std::string& node_id,
                     const std::string& reason) override;
  absl::StatusOr<bool> IsDrained(const std::string& node_id) override;
  absl::Status Notify(const Notice& notice) override;

 private:
  absl::Status Post(const std::string& url, const Notice& notice);

  const WebhookConfig config_;
  Clock& clock_;
};

}  // namespace navarch

#endif  // NAVARCH_NOTIFIER_WEBHOOK_NOTIFIER_H_
