// Delivers cordon / uncordon / drain notices to a Notifier off the request
// path, in order per node, with retries. The fleet core tells it what was
// committed (FleetOptions::on_events_committed); it never blocks the caller:
// a webhook that hangs delays the notice, never the RPC or the commit.
//
// Per node, notices are delivered one at a time in the order they were
// enqueued; a notice that fails with a retryable error (UNAVAILABLE,
// DEADLINE_EXCEEDED, ...) is retried with exponential backoff on the clock
// (with jitter) before the node's later notices go out, so a scheduler
// never sees
// "uncordon" overtaken by an earlier "cordon". A notice that fails for good
// (non-retryable, or out of attempts) is reported and dropped.
#ifndef NAVARCH_NOTIFIER_DISPATCHER_H_
#define NAVARCH_NOTIFIER_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/notifier/notifier.h"

namespace navarch {

struct NotifierDispatcherOptions {
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(1);
  // Queued notices across all nodes; more are dropped (and reported).
  size_t max_queued = 100000;
  // Each retry waits its backoff shortened by up to this fraction, drawn
  // from a generator seeded with `seed`, so notices that failed together
  // (a receiver restarting) are not all retried in the same instant.
  double jitter = 0.2;
  uint64_t seed = 1;
};

class NotifierDispatcher {
 public:
  // Called on the worker thread after a notice finally failed (`attempts`
  // made); never under the dispatcher's lock.
  using FailureFn =
      std::function<void(const Notice&, const absl::Status&, int attempts)>;

  NotifierDispatcher(Notifier& notifier, Clock& clock, FailureFn on_failure,
                     NotifierDispatcherOptions options = {});
  ~NotifierDispatcher();  // Stop().

  void Start();
  // Stops the worker once the notice in progress is done; queued notices are
  // dropped (a restart re-derives nothing: they are lost, and logged by the
  // caller through dropped()). Idempotent.
  void Stop();

  // Thread-safe, never blocks on the notifier.
  void Enqueue(Notice notice);

  // Outcome counters: "cordon|ok", "drain|failed", "uncordon|retried",
  // "cordon|dropped".
  std::map<std::string, int64_t> counters();
  // Notices queued or waiting for a retry.
  size_t backlog();
  // Test hook: waits until nothing is runnable now (retries waiting for the
  // clock do not count) or `timeout` passes. True when idle.
  bool WaitIdle(absl::Duration timeout);

 private:
  struct NodeQueue {
    std::deque<Notice> notices;
    int attempts = 0;     // Of the head notice.
    bool parked = false;  // Head waits for a retry timer.
    bool ready = false;   // In ready_.
  };
  void Run();
  void MakeReadyLocked(const std::string& node_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The wait before retry number `attempts` (1: the first retry).
  absl::Duration BackoffLocked(int attempts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Notifier& notifier_;
  Clock& clock_;
  FailureFn on_failure_;
  const NotifierDispatcherOptions options_;
  absl::Mutex mu_;
  std::map<std::string, NodeQueue> queues_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = true;
  std::map<std::string, int64_t> counters_ ABSL_GUARDED_BY(mu_);
  std::map<TimerId, bool> timers_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace navarch

#endif  // NAVARCH_NOTIFIER_DISPATCHER_H_
