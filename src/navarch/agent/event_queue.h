// The agent's outbox of health events. Order is kept (events reach the
// control plane in the order they were raised, also after a disconnection),
// the size is bounded (a flood while disconnected cannot exhaust memory; what
// does not fit is counted and the count reported), and an XID seen by both
// NVML and the kernel log is sent once.
#ifndef NAVARCH_AGENT_EVENT_QUEUE_H_
#define NAVARCH_AGENT_EVENT_QUEUE_H_

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

struct EventQueueOptions {
  size_t capacity = 1000;
  // The same XID (GPU and code) from another source within this window is
  // the same error. Wide enough for a lost GPU, which the kernel log reports
  // at once and the GPU poll only at its next round.
  absl::Duration xid_dedup_window = absl::Seconds(30);
};

// Not thread-safe: it lives on the agent's serial executor.
class EventQueue {
 public:
  EventQueue(EventQueueOptions options, Clock& clock);

  // Queues `event`. Returns false when it was dropped: a duplicate XID, or
  // the queue is full. When full the new event is dropped, not the oldest:
  // the first errors of an incident are the ones that explain it.
  bool Push(HealthEvent event);

  // The oldest `n` events (fewer if fewer are queued), left in the queue.
  std::vector<HealthEvent> Front(size_t n) const;
  // Removes the oldest `n` events (after the control plane took them).
  void Pop(size_t n);

  size_t size() const { return events_.size(); }
  bool empty() const { return events_.empty(); }
  // Events dropped because the queue was full, since start.
  uint64_t dropped() const { return dropped_; }
  // XIDs dropped as seen by the other source already, since start.
  uint64_t duplicates() const { return duplicates_; }

 private:
  // One XID as reported, and every source that reported it so far.
  struct RecentXid {
    int gpu_index;
    std::string pci;
    std::string code;
    std::set<std::string> sources;
    absl::Duration at;
  };
  // True if `e` is an XID the other source already reported.
  bool Duplicate(const HealthEvent& e);

  EventQueueOptions options_;
  Clock& clock_;
  std::deque<HealthEvent> events_;
  std::deque<RecentXid> recent_;
  uint64_t dropped_ = 0;
  uint64_t duplicates_ = 0;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_EVENT_QUEUE_H_
