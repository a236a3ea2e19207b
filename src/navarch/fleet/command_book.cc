#include "navarch/fleet/command_book.h"

#include <algorithm>
#include <utility>

#include "navarch/api/time_util.h"

namespace navarch::fleet_internal {

void CommandBook::Add(CommandRecord c, bool open_for_node) {
  const std::string& id = c.command().command_id();
  if (open_for_node) open_[c.node_id()].push_back(id);
  commands_[id] = std::move(c);
}

CommandRecord* CommandBook::Find(const std::string& command_id) {
  auto it = commands_.find(command_id);
  return it == commands_.end() ? nullptr : &it->second;
}

const std::vector<std::string>& CommandBook::Open(
    const std::string& node_id) const {
  static const std::vector<std::string>* const kNone =
      new std::vector<std::string>();
  auto it = open_.find(node_id);
  return it == open_.end() ? *kNone : it->second;
}

void CommandBook::Finish(const std::string& command_id) {
  auto it = commands_.find(command_id);
  if (it == commands_.end()) return;
  if (auto o = open_.find(it->second.node_id()); o != open_.end()) {
    auto& ids = o->second;
    ids.erase(std::remove(ids.begin(), ids.end(), command_id), ids.end());
    if (ids.empty()) open_.erase(o);
  }
  commands_.erase(it);
}

std::vector<CommandRecord> CommandBook::CancelAll(const std::string& node_id,
                                                  absl::Time now,
                                                  const std::string& message) {
  std::vector<CommandRecord> cancelled;
  auto o = open_.find(node_id);
  if (o == open_.end()) return cancelled;
  for (const auto& id : o->second) {
    auto it = commands_.find(id);
    if (it == commands_.end()) continue;
    CommandRecord& c = cancelled.emplace_back(std::move(it->second));
    c.set_state(internal::COMMAND_STATE_CANCELLED);
    c.set_version(c.version() + 1);
    *c.mutable_updated_at() = ToTimestamp(now);
    c.set_result_message(message);
    commands_.erase(it);
  }
  open_.erase(o);
  return cancelled;
}

void CommandBook::MarkDelivered(CommandRecord& c, absl::Time now) {
  c.set_state(internal::COMMAND_STATE_DELIVERED);
  c.set_version(c.version() + 1);
  *c.mutable_updated_at() = ToTimestamp(now);
}

uint64_t CommandBook::Watch(const std::string& node_id,
                            std::function<void(const NodeCommand&)> deliver,
                            std::function<void()> closed, Watcher* replaced) {
  Watcher& w = watchers_[node_id];
  if (replaced != nullptr) *replaced = std::move(w);
  w = Watcher{next_watch_handle_++, std::move(deliver), std::move(closed)};
  return w.handle;
}

void CommandBook::Unwatch(const std::string& node_id, uint64_t handle) {
  auto it = watchers_.find(node_id);
  if (it != watchers_.end() && it->second.handle == handle) watchers_.erase(it);
}

const Watcher* CommandBook::FindWatcher(const std::string& node_id) const {
  auto it = watchers_.find(node_id);
  return it == watchers_.end() ? nullptr : &it->second;
}

Watcher CommandBook::TakeWatcher(const std::string& node_id) {
  auto it = watchers_.find(node_id);
  if (it == watchers_.end()) return Watcher();
  Watcher w = std::move(it->second);
  watchers_.erase(it);
  return w;
}

std::vector<Watcher> CommandBook::TakeAllWatchers() {
  std::vector<Watcher> all;
  for (auto& [id, w] : watchers_) all.push_back(std::move(w));
  watchers_.clear();
  return all;
}

}  // namespace navarch::fleet_internal
