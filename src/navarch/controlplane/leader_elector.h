// Which replica runs the control plane: the one holding the leader lease
// (store/postgres/leader_lease.h). The others wait as standbys, trying for
// the lease every renew interval; the leader renews it as often and steps
// down when it cannot (another replica holds the lease, or the database
// stayed unreachable for a whole lease).
//
// The elector runs on a thread of its own, woken by the injected Clock, so a
// database that hangs never holds up the clock's other timers.
#ifndef NAVARCH_CONTROLPLANE_LEADER_ELECTOR_H_
#define NAVARCH_CONTROLPLANE_LEADER_ELECTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/store/postgres/leader_lease.h"

namespace navarch {

struct ElectorOptions {
  absl::Duration lease = absl::Seconds(10);
  // How often to renew (leader) or try (standby): a third of the lease when
  // zero, so two renewals can fail before the lease runs out.
  absl::Duration renew_interval;
  // Called on the elector's thread when this replica wins the lease (the
  // epoch it holds), and when it loses it after having won it (why).
  std::function<void(int64_t epoch)> on_elected;
  std::function<void(const std::string& why)> on_lost;
};

class LeaderElector {
 public:
  LeaderElector(Clock& clock, LeaderLease& lease, ElectorOptions options,
                Logger log);
  ~LeaderElector();  // Stop()s

  void Start();
  // Stops trying and renewing; the lease, if held, stays until it runs out
  // or Release. Idempotent.
  void Stop();
  // After Stop: gives the lease up when held, so a standby takes over at
  // once (a clean shutdown, once the last write is done); a standby tells
  // the lease it leaves.
  void Release();

  bool leader() const;
  int64_t epoch() const;           // the epoch held; 0 when not leader
  int64_t leader_changes() const;  // times this replica won the lease
  // The lease as last read: holder, epoch, time left.
  LeaseState last_seen() const;

  // One round at once, on the caller's thread; for tests.
  void RunOnce();

 private:
  void Loop();
  void Round();
  void Lost(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  LeaderLease& lease_;
  const ElectorOptions options_;
  const Logger log_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  // SteadyNow() when the last successful renewal was sent: the lease is
  // surely ours until then + lease.
  absl::Duration renewed_at_ ABSL_GUARDED_BY(mu_);
  LeaseState last_seen_ ABSL_GUARDED_BY(mu_);
  std::string last_holder_logged_ ABSL_GUARDED_BY(mu_);

  absl::Mutex round_mu_;  // one round at a time (the thread, RunOnce)
  std::thread thread_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_LEADER_ELECTOR_H_
