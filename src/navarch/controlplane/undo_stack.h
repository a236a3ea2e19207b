// The undo steps of a start-up that builds things in order: each step that
// needs undoing if a later one fails pushes its undo; a failure (leaving
// scope without Release) runs them newest first. ControlPlaneServer::Start
// uses it instead of a hand-copied rollback at every exit.
#ifndef NAVARCH_CONTROLPLANE_UNDO_STACK_H_
#define NAVARCH_CONTROLPLANE_UNDO_STACK_H_

#include <functional>
#include <utility>
#include <vector>

namespace navarch {

class UndoStack {
 public:
  UndoStack() = default;
  UndoStack(const UndoStack&) = delete;
  UndoStack& operator=(const UndoStack&) = delete;
  ~UndoStack() { Run(); }

  void Push(std::function<void()> undo) { steps_.push_back(std::move(undo)); }
  // Everything succeeded: nothing is undone.
  void Release() { steps_.clear(); }
  // Undoes now, newest first (also what leaving scope unreleased does).
  void Run() {
    while (!steps_.empty()) {
      std::function<void()> undo = std::move(steps_.back());
      steps_.pop_back();
      undo();
    }
  }

 private:
  std::vector<std::function<void()>> steps_;
};

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_UNDO_STACK_H_
