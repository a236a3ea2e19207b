#include "navarch/store/group_commit.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "navarch/base/status.h"
#include "navarch/store/record_util.h"

namespace navarch {

GroupCommitWriter::GroupCommitWriter(Options options, WriteTransaction* txn)
    : options_(std::move(options)), txn_(txn) {
  writer_ = std::thread([this] { WriterLoop(); });
}

GroupCommitWriter::~GroupCommitWriter() { Close(); }

absl::Status GroupCommitWriter::Closed() const {
  return absl::UnavailableError(
      absl::StrCat(options_.name, ": store is closed"));
}

void GroupCommitWriter::Submit(std::unique_ptr<StoreJob> job) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      refused = Closed();
    } else if (queue_.size() >= static_cast<size_t>(options_.max_queue)) {
      refused = absl::UnavailableError(
          absl::StrCat(options_.name, ": write queue full (",
                       options_.max_queue, " waiting)"));
    } else {
      queue_.push_back(std::move(job));
      return;
    }
  }
  job->done(std::move(refused));
}

void GroupCommitWriter::SubmitBatch(WriteBatch batch,
                                    std::function<void(absl::Status)> done) {
  if (!done) done = [](absl::Status) {};  // a caller that does not listen
  if (absl::Status s = ValidateBatch(batch); !s.ok()) {
    done(std::move(s));
    return;
  }
  auto job = std::make_unique<StoreJob>();
  job->kind = StoreJob::Kind::kBatch;
  job->batch = std::move(batch);
  job->done = std::move(done);
  Submit(std::move(job));
}

absl::Status GroupCommitWriter::SubmitHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  std::vector<const HeartbeatUpdate*> order;
  order.reserve(updates.size());
  for (const HeartbeatUpdate& u : updates) order.push_back(&u);
  std::stable_sort(order.begin(), order.end(),
                   [](const HeartbeatUpdate* a, const HeartbeatUpdate* b) {
                     return a->node_id < b->node_id;
                   });
  auto job = std::make_unique<StoreJob>();
  job->kind = StoreJob::Kind::kHeartbeats;
  job->heartbeats.reserve(order.size());
  for (const HeartbeatUpdate* u : order) job->heartbeats.push_back(*u);
  return SubmitAndWait(std::move(job));
}

absl::StatusOr<int64_t> GroupCommitWriter::SubmitPrune(
    const PruneRequest& request) {
  int64_t pruned = 0;
  auto job = std::make_unique<StoreJob>();
  job->kind = StoreJob::Kind::kPrune;
  job->prune = request;
  job->pruned = &pruned;
  NAVARCH_RETURN_IF_ERROR(SubmitAndWait(std::move(job)));
  return pruned;
}

absl::Status GroupCommitWriter::Apply(StoreJob& job) {
  switch (job.kind) {
    case StoreJob::Kind::kBatch:
      return txn_->ApplyBatch(job.batch);
    case StoreJob::Kind::kHeartbeats:
      return txn_->ApplyHeartbeats(job.heartbeats);
    case StoreJob::Kind::kPrune: {
      NAVARCH_ASSIGN_OR_RETURN(*job.pruned, txn_->ApplyPrune(job.prune));
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown job");
}

absl::Status GroupCommitWriter::SubmitAndWait(std::unique_ptr<StoreJob> job) {
  absl::Notification finished;
  absl::Status result;
  job->done = [&](absl::Status s) {
    result = std::move(s);
    finished.Notify();
  };
  Submit(std::move(job));
  finished.WaitForNotification();
  return result;
}

std::vector<std::unique_ptr<StoreJob>> GroupCommitWriter::NextGroup() {
  auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || closing_;
  };
  std::vector<std::unique_ptr<StoreJob>> group;
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&has_work));
  // Whatever queued up while the previous transaction was committing goes
  // into this one: that is the group commit, with no timer to wait on. Bulk
  // jobs get a transaction of their own; the jobs queued before one go
  // first, those after it wait for the next round. Empty: closing, and
  // everything is committed.
  auto alone = [](const StoreJob& job) {
    return job.kind != StoreJob::Kind::kBatch;
  };
  while (!queue_.empty() &&
         group.size() < static_cast<size_t>(options_.max_group)) {
    if (!group.empty() && alone(*queue_.front())) break;
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
    if (alone(*group.back())) break;
  }
  return group;
}

void GroupCommitWriter::WriterLoop() {
  for (;;) {
    std::vector<std::unique_ptr<StoreJob>> group = NextGroup();
    if (group.empty()) return;
    absl::Status txn = RunGroup(group);
    {
      absl::MutexLock lock(&mu_);
      health_ = txn;
      if (txn.ok()) stats_.transactions++;
      stats_.jobs += static_cast<int64_t>(group.size());
      stats_.largest_group =
          std::max<int64_t>(stats_.largest_group, group.size());
    }
    for (auto& job : group) job->done(std::move(job->status));
  }
}

absl::Status GroupCommitWriter::RunGroup(
    std::vector<std::unique_ptr<StoreJob>>& group) {
  absl::Status txn = txn_->BeginTransaction();
  if (txn.ok()) {
    txn =
        group.size() == 1 ? RunAlone(*group.front()) : RunWithSavepoints(group);
  }
  if (txn.ok()) return txn;
  if (txn_->InTransaction()) txn_->RollbackTransaction();
  absl::Status lost = Annotate(txn, "write transaction rolled back");
  for (auto& job : group) {
    // A job that failed on its own keeps its own error.
    if (job->status.ok()) job->status = lost;
    if (job->kind == StoreJob::Kind::kPrune && job->pruned != nullptr)
      *job->pruned = 0;
  }
  return txn;
}

absl::Status GroupCommitWriter::RunAlone(StoreJob& job) {
  job.status = Apply(job);
  if (job.status.ok()) return txn_->CommitTransaction();
  // The job failed: roll back. If the storage already ended the
  // transaction (I/O error, lost connection), the job's error is the
  // transaction's too.
  if (!txn_->InTransaction()) return job.status;
  txn_->RollbackTransaction();
  return absl::OkStatus();  // the storage is fine; the job was refused
}

absl::Status GroupCommitWriter::RunWithSavepoints(
    std::vector<std::unique_ptr<StoreJob>>& group) {
  for (auto& job : group) {
    NAVARCH_RETURN_IF_ERROR(txn_->Savepoint());
    job->status = Apply(*job);
    if (!txn_->InTransaction()) {
      // The storage ended the whole transaction: every job in it is lost,
      // not only this one.
      return job->status.ok()
                 ? absl::InternalError(absl::StrCat(
                       options_.name, ": transaction ended unexpectedly"))
                 : job->status;
    }
    // Only this job's changes go; the others in the group still commit.
    if (!job->status.ok()) NAVARCH_RETURN_IF_ERROR(txn_->RollbackToSavepoint());
    NAVARCH_RETURN_IF_ERROR(txn_->ReleaseSavepoint());
  }
  return txn_->CommitTransaction();
}

absl::Status GroupCommitWriter::Health() const {
  absl::MutexLock lock(&mu_);
  if (closing_) return Closed();
  return health_;
}

void GroupCommitWriter::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (closed_) return;
  closed_ = true;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  // The writer drains the queue before it exits.
  if (writer_.joinable()) writer_.join();
}

GroupCommitWriter::Stats GroupCommitWriter::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace navarch
