#include "navarch/controlplane/leader_elector.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace navarch {

LeaderElector::LeaderElector(Clock& clock, LeaderLease& lease,
                             ElectorOptions options, Logger log)
    : clock_(clock),
      lease_(lease),
      options_(std::move(options)),
      log_(std::move(log)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void LeaderElector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    clock_.Cancel(timer_);
  }
  if (thread_.joinable()) thread_.join();
}

void LeaderElector::Release() {
  Stop();
  absl::MutexLock round(&round_mu_);
  absl::MutexLock lock(&mu_);
  // A standby too: it leaves the list of replicas.
  if (!leader_) {
    lease_.Release(0).IgnoreError();
    return;
  }
  if (absl::Status s = lease_.Release(epoch_); !s.ok()) {
    log_.Warn(
        "could not give the leader lease up; a standby takes over "
        "when it runs out",
        {{"error", s}});
  }
  leader_ = false;
}

void LeaderElector::Loop() {
  const absl::Duration interval = options_.renew_interval > absl::ZeroDuration()
                                      ? options_.renew_interval
                                      : options_.lease / 3;
  for (;;) {
    Round();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    wake_ = false;
    timer_ = clock_.Schedule(interval, [this] {
      absl::MutexLock lock(&mu_);
      wake_ = true;
    });
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return wake_ || stopping_;
    };
    mu_.Await(absl::Condition(&woken));
    if (stopping_) return;
  }
}

void LeaderElector::RunOnce() { Round(); }

void LeaderElector::Round() {
  absl::MutexLock round(&round_mu_);
  const absl::Duration sent = clock_.SteadyNow();
  int64_t held;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    held = leader_ ? epoch_ : 0;
  }
  absl::StatusOr<LeaseState> state = lease_.TryAcquireOrRenew(held);
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    if (state.ok()) last_seen_ = *state;
    if (leader_) {
      std::string why;
      if (state.ok() && state->held && state->epoch == epoch_) {
        renewed_at_ = sent;
      } else if (state.ok()) {
        why = absl::StrCat("replica ", state->holder,
                           " holds the lease at epoch ", state->epoch);
      } else if (clock_.SteadyNow() - renewed_at_ >= options_.lease) {
        why = absl::StrCat("the lease could not be renewed for ",
                           absl::FormatDuration(options_.lease), ": ",
                           state.status().message());
      }
      if (!why.empty()) {
        Lost(why);
        if (options_.on_lost) notify = [this, why] { options_.on_lost(why); };
      }
    } else if (state.ok() && state->held) {
      leader_ = true;
      epoch_ = state->epoch;
      renewed_at_ = sent;
      changes_++;
      log_.Info("this replica leads", {{"epoch", epoch_}});
      if (options_.on_elected) {
        int64_t e = epoch_;
        notify = [this, e] { options_.on_elected(e); };
      }
    } else if (state.ok() && state->holder != last_holder_logged_) {
      last_holder_logged_ = state->holder;
      log_.Info("standby: another replica leads",
                {{"leader", state->holder}, {"epoch", state->epoch}});
    } else if (!state.ok()) {
      log_.Warn("standby: cannot read the leader lease",
                {{"error", state.status()}});
    }
  }
  if (notify) notify();
}

void LeaderElector::Lost(const std::string& why) {
  leader_ = false;
  epoch_ = 0;
  last_holder_logged_.clear();
  log_.Error("this replica lost the leader lease and steps down",
             {{"why", why}});
}

bool LeaderElector::leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

int64_t LeaderElector::epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

int64_t LeaderElector::leader_changes() const {
  absl::MutexLock lock(&mu_);
  return changes_;
}

LeaseState LeaderElector::last_seen() const {
  absl::MutexLock lock(&mu_);
  return last_seen_;
}

}  // namespace navarch
