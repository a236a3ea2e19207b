#include "navarch/agent/executor.h"

#include <pthread.h>

namespace navarch::agent {

ThreadExecutor::ThreadExecutor(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { Run(); });
  // Thread names show in top -H and gdb; the kernel allows 15 characters.
  pthread_setname_np(thread_.native_handle(), name_.substr(0, 15).c_str());
}

ThreadExecutor::~ThreadExecutor() { Shutdown(); }

void ThreadExecutor::Post(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stop_) return;
  tasks_.push_back(std::move(task));
}

void ThreadExecutor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    tasks_.clear();
  }
  if (thread_.joinable()) thread_.join();
}

void ThreadExecutor::Run() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void InlineExecutor::Post(std::function<void()> task) {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
    if (draining_) return;
    draining_ = true;
  }
  for (;;) {
    std::function<void()> next;
    {
      absl::MutexLock lock(&mu_);
      if (tasks_.empty() || stop_) {
        draining_ = false;
        tasks_.clear();
        return;
      }
      next = std::move(tasks_.front());
      tasks_.pop_front();
    }
    next();
  }
}

void InlineExecutor::Shutdown() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  tasks_.clear();
}

}  // namespace navarch::agent
