#include "navarch/agent/testing/fake_control_plane.h"

#include "absl/strings/str_cat.h"

namespace navarch::agent::testing {

class FakeControlPlane::Handle final : public CommandStream {
 public:
  Handle(FakeControlPlane* cp, int id) : cp_(cp), id_(id) {}
  ~Handle() override {
    cp_->End(id_, absl::CancelledError("stream cancelled by the client"));
  }

 private:
  FakeControlPlane* cp_;
  int id_;
};

FakeControlPlane::FakeControlPlane() = default;
FakeControlPlane::~FakeControlPlane() = default;

void FakeControlPlane::SetDown(bool down) {
  {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  if (down) EndStreams(absl::UnavailableError("connection reset"));
}

void FakeControlPlane::ForgetNodes() {
  absl::MutexLock lock(&mu_);
  nodes_.clear();
}

void FakeControlPlane::SetUpstream(bool upstream) {
  absl::MutexLock lock(&mu_);
  upstream_ = upstream;
}

void FakeControlPlane::SetStreamUnimplemented(bool unimplemented) {
  absl::MutexLock lock(&mu_);
  stream_unimplemented_ = unimplemented;
}

void FakeControlPlane::FailReports(absl::Status status, int count) {
  absl::MutexLock lock(&mu_);
  report_failure_ = status;
  report_failures_left_ = count;
}

void FakeControlPlane::SetIntervals(int heartbeat_seconds, int health_seconds) {
  absl::MutexLock lock(&mu_);
  heartbeat_seconds_ = heartbeat_seconds;
  health_seconds_ = health_seconds;
}

void FakeControlPlane::Issue(const NodeCommand& command) {
  std::vector<std::shared_ptr<Stream>> live;
  {
    absl::MutexLock lock(&mu_);
    unacked_[command.command_id()] = command;
    for (auto& [id, s] : streams_) {
      if (!s->ended) live.push_back(s);
    }
    if (live.empty()) pending_.push_back(command);
  }
  for (auto& s : live) s->on_command(command);
}

void FakeControlPlane::End(int id, absl::Status status) {
  std::shared_ptr<Stream> s;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    s = it->second;
    streams_.erase(it);
    if (s->ended) return;
    s->ended = true;
  }
  s->done(status);
}

void FakeControlPlane::EndStreams(absl::Status status) {
  std::vector<int> ids;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, s] : streams_) ids.push_back(id);
  }
  for (int id : ids) End(id, status);
}

absl::Status FakeControlPlane::Gate(const std::string& node_id) {
  ++calls_;
  if (down_)
    return absl::UnavailableError("failed to connect to all addresses");
  if (!node_id.empty() && !nodes_.count(node_id)) {
    return absl::NotFoundError(absl::StrCat("node ", node_id, " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RegisterNodeResponse> FakeControlPlane::RegisterNode(
    const RegisterNodeRequest& req) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Gate(""); !s.ok()) return s;
  nodes_.insert(req.node_id());
  registrations_.push_back(req);
  RegisterNodeResponse resp;
  resp.set_success(true);
  resp.set_message("registration successful");
  resp.mutable_config()->set_heartbeat_interval_seconds(heartbeat_seconds_);
  resp.mutable_config()->set_health_check_interval_seconds(health_seconds_);
  resp.mutable_config()->set_commands_ack_supported(!upstream_);
  return resp;
}

absl::StatusOr<HeartbeatResponse> FakeControlPlane::SendHeartbeat(
    const HeartbeatRequest& req) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Gate(req.node_id()); !s.ok()) return s;
  heartbeats_.push_back(req);
  HeartbeatResponse resp;
  resp.set_acknowledged(true);
  return resp;
}

absl::StatusOr<ReportHealthResponse> FakeControlPlane::ReportHealth(
    const ReportHealthRequest& req) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Gate(req.node_id()); !s.ok()) return s;
  if (report_failures_left_ > 0) {
    --report_failures_left_;
    return report_failure_;
  }
  reports_.push_back(req);
  ReportHealthResponse resp;
  resp.set_acknowledged(true);
  resp.set_node_status(NODE_STATUS_ACTIVE);
  resp.set_health_status(HEALTH_STATUS_HEALTHY);
  return resp;
}

absl::StatusOr<GetNodeCommandsResponse> FakeControlPlane::GetNodeCommands(
    const GetNodeCommandsRequest& req) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Gate(""); !s.ok()) return s;
  ++polls_;
  GetNodeCommandsResponse resp;
  for (auto& c : pending_) *resp.add_commands() = c;
  pending_.clear();
  return resp;
}

absl::StatusOr<AckCommandResponse> FakeControlPlane::AckCommand(
    const AckCommandRequest& req) {
  absl::MutexLock lock(&mu_);
  if (upstream_) return absl::UnimplementedError("unknown method AckCommand");
  if (absl::Status s = Gate(req.node_id()); !s.ok()) return s;
  acks_.push_back(req);
  unacked_.erase(req.command_id());
  AckCommandResponse resp;
  resp.set_acknowledged(true);
  return resp;
}

std::unique_ptr<CommandStream> FakeControlPlane::WatchCommands(
    const WatchCommandsRequest& req,
    std::function<void(const NodeCommand&)> on_command,
    std::function<void(absl::Status)> done) {
  absl::Status refused;
  std::vector<NodeCommand> resend;
  int id;
  {
    absl::MutexLock lock(&mu_);
    ++streams_opened_;
    if (upstream_ || stream_unimplemented_) {
      refused = absl::UnimplementedError("unknown method WatchCommands");
    } else {
      refused = Gate(req.node_id());
    }
    id = next_stream_++;
    if (refused.ok()) {
      auto s = std::make_shared<Stream>();
      s->on_command = on_command;
      s->done = done;
      streams_[id] = s;
      // Like the real one: first every command not yet acknowledged.
      for (auto& [cid, c] : unacked_) resend.push_back(c);
      pending_.clear();
    }
  }
  if (!refused.ok()) {
    done(refused);
    return std::make_unique<Handle>(this, id);
  }
  for (const NodeCommand& c : resend) on_command(c);
  return std::make_unique<Handle>(this, id);
}

int FakeControlPlane::registrations() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(registrations_.size());
}
std::vector<RegisterNodeRequest> FakeControlPlane::register_requests() const {
  absl::MutexLock lock(&mu_);
  return registrations_;
}
std::vector<HeartbeatRequest> FakeControlPlane::heartbeats() const {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}
std::vector<ReportHealthRequest> FakeControlPlane::reports() const {
  absl::MutexLock lock(&mu_);
  return reports_;
}
std::vector<HealthEvent> FakeControlPlane::events() const {
  absl::MutexLock lock(&mu_);
  std::vector<HealthEvent> out;
  for (const auto& r : reports_) {
    for (const auto& e : r.events()) out.push_back(e);
  }
  return out;
}
std::vector<AckCommandRequest> FakeControlPlane::acks() const {
  absl::MutexLock lock(&mu_);
  return acks_;
}
int FakeControlPlane::polls() const {
  absl::MutexLock lock(&mu_);
  return polls_;
}
int FakeControlPlane::streams_opened() const {
  absl::MutexLock lock(&mu_);
  return streams_opened_;
}
int FakeControlPlane::open_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}
int FakeControlPlane::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

}  // namespace navarch::agent::testing
