#include "navarch/notifier/dispatcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch {

absl::string_view NoticeTypeName(NoticeType type) {
  switch (type) {
    case NoticeType::kCordon:
      return "cordon";
    case NoticeType::kUncordon:
      return "uncordon";
    case NoticeType::kDrain:
      return "drain";
  }
  return "unknown";
}

NotifierDispatcher::NotifierDispatcher(Notifier& notifier, Clock& clock,
                                       FailureFn on_failure,
                                       NotifierDispatcherOptions options)
    : notifier_(notifier),
      clock_(clock),
      on_failure_(std::move(on_failure)),
      options_(options),
      random_(options.seed) {}

NotifierDispatcher::~NotifierDispatcher() { Stop(); }

void NotifierDispatcher::Start() {
  absl::MutexLock lock(&mu_);
  if (!stopped_) return;
  stopped_ = false;
  worker_ = std::thread([this] { Run(); });
}

void NotifierDispatcher::Stop() {
  std::map<TimerId, bool> timers;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    timers.swap(timers_);
  }
  for (const auto& [id, unused] : timers) clock_.Cancel(id);
  if (worker_.joinable()) worker_.join();
}

void NotifierDispatcher::MakeReadyLocked(const std::string& node_id) {
  NodeQueue& q = queues_[node_id];
  if (q.ready || q.parked || q.notices.empty()) return;
  q.ready = true;
  ready_.push_back(node_id);
}

void NotifierDispatcher::Enqueue(Notice notice) {
  absl::MutexLock lock(&mu_);
  if (queued_ >= options_.max_queued) {
    ++counters_[absl::StrCat(NoticeTypeName(notice.type), "|dropped")];
    return;
  }
  ++queued_;
  const std::string id = notice.node_id;
  queues_[id].notices.push_back(std::move(notice));
  MakeReadyLocked(id);
}

absl::Duration NotifierDispatcher::BackoffLocked(int attempts) {
  absl::Duration backoff = options_.initial_backoff;
  for (int i = 1; i < attempts; ++i) {
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  const double jitter = std::clamp(options_.jitter, 0.0, 1.0);
  if (jitter == 0) return backoff;
  std::uniform_real_distribution<double> cut(0, jitter);
  return backoff * (1 - cut(random_));
}

void NotifierDispatcher::Run() {
  while (true) {
    std::string node_id;
    Notice notice;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](NotifierDispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
            return d->stopped_ || !d->ready_.empty();
          },
          this));
      if (stopped_) return;
      node_id = ready_.front();
      ready_.pop_front();
      NodeQueue& q = queues_[node_id];
      q.ready = false;
      notice = q.notices.front();
      ++q.attempts;
      busy_ = true;
    }
    absl::Status s = notifier_.Notify(notice);
    int attempts = 0;
    bool failed_for_good = false;
    {
      absl::MutexLock lock(&mu_);
      NodeQueue& q = queues_[node_id];
      attempts = q.attempts;
      const std::string type(NoticeTypeName(notice.type));
      if (!s.ok() && !IsPermanentError(s) &&
          q.attempts < options_.max_attempts && !stopped_) {
        ++counters_[absl::StrCat(type, "|retried")];
        q.parked = true;
        const absl::Duration backoff = BackoffLocked(q.attempts);
        // The timer id is known only after Schedule returns; the callback
        // may run first (a zero backoff on a fake clock), so it re-checks.
        auto id = std::make_shared<TimerId>(0);
        TimerId t = clock_.Schedule(backoff, [this, node_id, id] {
          absl::MutexLock lock(&mu_);
          timers_.erase(*id);
          if (stopped_) return;
          auto it = queues_.find(node_id);
          if (it == queues_.end()) return;
          it->second.parked = false;
          MakeReadyLocked(node_id);
        });
        *id = t;
        if (queues_[node_id].parked) timers_[t] = true;
        busy_ = false;
        continue;
      }
      ++counters_[absl::StrCat(type, s.ok() ? "|ok" : "|failed")];
      failed_for_good = !s.ok();
      q.notices.pop_front();
      q.attempts = 0;
      --queued_;
      if (q.notices.empty()) {
        queues_.erase(node_id);
      } else {
        MakeReadyLocked(node_id);
      }
    }
    // Still "busy" while the failure is reported, so WaitIdle covers it.
    if (failed_for_good && on_failure_) on_failure_(notice, s, attempts);
    absl::MutexLock lock(&mu_);
    busy_ = false;
  }
}

std::map<std::string, int64_t> NotifierDispatcher::counters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

size_t NotifierDispatcher::backlog() {
  absl::MutexLock lock(&mu_);
  return queued_;
}

bool NotifierDispatcher::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](NotifierDispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
            return d->ready_.empty() && !d->busy_;
          },
          this),
      timeout);
}

}  // namespace navarch
