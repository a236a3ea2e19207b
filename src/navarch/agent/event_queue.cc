#include "navarch/agent/event_queue.h"

#include <algorithm>

namespace navarch::agent {
namespace {

std::string Metric(const HealthEvent& e, const std::string& key) {
  auto it = e.metrics().find(key);
  return it == e.metrics().end() ? "" : it->second;
}

}  // namespace

EventQueue::EventQueue(EventQueueOptions options, Clock& clock)
    : options_(options), clock_(clock) {}

bool EventQueue::Duplicate(const HealthEvent& e) {
  if (e.event_type() != HEALTH_EVENT_TYPE_XID) return false;
  // XIDs have three sources: NVML events, the kernel log, and the GPU poll
  // noticing a lost GPU (reported as XID 79).
  std::string source = Metric(e, "source");
  if (source != "nvml" && source != "kmsg" && source != "gpu_count")
    return false;
  absl::Duration now = clock_.SteadyNow();
  while (!recent_.empty() &&
         now - recent_.front().at > options_.xid_dedup_window) {
    recent_.pop_front();
  }
  RecentXid x{e.gpu_index(),
              Metric(e, "pci_bus_id"),
              Metric(e, "xid_code"),
              {source},
              now};
  // The same GPU: by index when both know it, else by PCI address.
  auto same_gpu = [&x](const RecentXid& r) {
    if (r.gpu_index >= 0 && x.gpu_index >= 0) return r.gpu_index == x.gpu_index;
    return !r.pci.empty() && r.pci == x.pci;
  };
  for (RecentXid& r : recent_) {
    // Each source confirms an XID once: two real XIDs reported by one source
    // stay two events.
    if (r.code == x.code && same_gpu(r) && !r.sources.count(source)) {
      r.sources.insert(source);
      return true;
    }
  }
  recent_.push_back(std::move(x));
  // Bounded even under an XID storm.
  if (recent_.size() > 4096) recent_.pop_front();
  return false;
}

bool EventQueue::Push(HealthEvent event) {
  if (Duplicate(event)) {
    ++duplicates_;
    return false;
  }
  if (events_.size() >= options_.capacity) {
    ++dropped_;
    return false;
  }
  events_.push_back(std::move(event));
  return true;
}

std::vector<HealthEvent> EventQueue::Front(size_t n) const {
  n = std::min(n, events_.size());
  return std::vector<HealthEvent>(events_.begin(),
                                  events_.begin() + static_cast<long>(n));
}

void EventQueue::Pop(size_t n) {
  n = std::min(n, events_.size());
  events_.erase(events_.begin(), events_.begin() + static_cast<long>(n));
}

}  // namespace navarch::agent
