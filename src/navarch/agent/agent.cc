#include "navarch/agent/agent.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"

namespace navarch::agent {
namespace {

// Events per ReportHealth: well under the server's limit (1024), so a
// backlog goes out in a few calls of moderate size.
constexpr size_t kEventsPerReport = 256;
constexpr size_t kMaxAckMessage = 4000;
constexpr size_t kRememberedCommands = 1024;
// A command stream that lived this long was healthy: its end is not a reason
// to wait long before reopening.
constexpr absl::Duration kHealthyStream = absl::Seconds(30);
constexpr absl::Duration kXidWait = absl::Seconds(1);
constexpr absl::Duration kXidRetry = absl::Seconds(5);

Executor* OrOwn(Executor* given, const char* name,
                std::vector<std::unique_ptr<ThreadExecutor>>& owned) {
  if (given != nullptr) return given;
  owned.push_back(std::make_unique<ThreadExecutor>(name));
  return owned.back().get();
}

}  // namespace

Agent::Agent(AgentOptions options, Clock& clock, ControlPlaneClient& client,
             GpuBackend& backend, ProcessRunner& processes, Logger log,
             AgentExecutors executors)
    : options_(std::move(options)),
      clock_(clock),
      client_(client),
      backend_(backend),
      processes_(processes),
      log_(std::move(log)),
      control_(OrOwn(executors.control, "agent-control", owned_executors_)),
      gpu_(OrOwn(executors.gpu, "agent-gpu", owned_executors_)),
      commands_(OrOwn(executors.commands, "agent-commands", owned_executors_)),
      xid_(OrOwn(executors.xid, "agent-xid", owned_executors_)),
      monitor_(backend, clock),
      handler_(options_.identity.node_id(), options_.config,
               options_.diagnostic_command, processes, monitor_, clock, log_),
      timers_(clock),
      rng_(options_.seed),
      register_backoff_(options_.register_backoff, rng_),
      retry_backoff_(options_.retry_backoff, rng_),
      stream_backoff_(options_.retry_backoff, rng_),
      host_(options_.proc_stat, options_.proc_meminfo),
      queue_(EventQueueOptions{options_.config.event_queue_size,
                               options_.config.xid_dedup_window},
             clock),
      heartbeat_interval_(options_.default_heartbeat_interval),
      health_interval_(options_.default_health_interval) {
  if (!options_.kmsg_path.empty()) {
    KmsgOptions k;
    k.path = options_.kmsg_path;
    k.poll_interval = options_.config.kmsg_poll_interval;
    kmsg_ = std::make_unique<KmsgFollower>(
        k, clock_, [this](const KmsgRecord& r) { OnKmsgRecord(r); });
  }
}

Agent::~Agent() { Stop(); }

void Agent::Post(std::function<void()> fn) {
  if (stopping_) return;
  control_->Post([this, fn = std::move(fn)] {
    if (stopping_) return;
    fn();
    UpdateStats();
  });
}

void Agent::After(absl::Duration delay, std::function<void()> fn) {
  timers_.Schedule(delay, [this, fn = std::move(fn)] { Post(fn); });
}

void Agent::Start() {
  if (started_.exchange(true)) return;
  log_.Info("node agent starting",
            {{"node_id", node_id()}, {"gpu_backend", backend_.Name()}});
  gpu_->Post([this] {
    absl::Status s = monitor_.Start();
    std::vector<HealthEvent> events;
    if (s.ok()) events = monitor_.Poll();
    Post([this, s, events = std::move(events)] {
      if (s.ok()) {
        GpuSystemInfo sys = monitor_.SystemInfo();
        log_.Info("GPUs found", {{"count", monitor_.Inventory().size()},
                                 {"driver_version", sys.driver_version},
                                 {"cuda_version", sys.cuda_version}});
        LogInventory();
      } else {
        log_.Error(
            "GPU discovery failed; registering without GPUs and reporting it",
            {{"backend", backend_.Name()}, {"error", s}});
      }
      if (kmsg_) {
        if (absl::Status k = kmsg_->Start(); !k.ok()) {
          log_.Warn(
              "cannot read the kernel log; XIDs come only from the GPU driver "
              "(retrying)",
              {{"error", k}});
        }
      }
      for (const HealthEvent& e : events) OnEvent(e);
      Register();
      timers_.Schedule(options_.config.gpu_poll_interval,
                       [this] { GpuPollTick(); });
      if (options_.xid_thread) xid_->Post([this] { XidWait(); });
    });
  });
}

void Agent::LogInventory() {
  // One line per GPU with what could be read: on a new driver or GPU model
  // this is where a missing reading shows first.
  std::vector<GpuDevice> inventory = monitor_.Inventory();
  std::vector<std::optional<GpuReading>> readings = monitor_.LastReadings();
  auto opt = [](const auto& v) {
    return v ? absl::StrCat(*v) : std::string("n/a");
  };
  for (size_t i = 0; i < inventory.size(); ++i) {
    const GpuDevice& d = inventory[i];
    if (i >= readings.size() || !readings[i]) {
      log_.Warn("GPU", {{"index", d.index},
                        {"name", d.name},
                        {"uuid", d.uuid},
                        {"reading", "failed"}});
      continue;
    }
    const GpuReading& r = *readings[i];
    log_.Info("GPU", {{"index", d.index},
                      {"name", d.name},
                      {"uuid", d.uuid},
                      {"pci_bus_id", d.pci_bus_id},
                      {"memory_mib", d.memory_total_bytes / (1024 * 1024)},
                      {"temperature_c", opt(r.temperature_c)},
                      {"slowdown_c", opt(r.slowdown_temperature_c)},
                      {"shutdown_c", opt(r.shutdown_temperature_c)},
                      {"power_w", opt(r.power_watts)},
                      {"ecc_corrected", opt(r.ecc_corrected)},
                      {"ecc_uncorrected", opt(r.ecc_uncorrected)},
                      {"remap_pending", opt(r.remap_pending)},
                      {"clock_event_reasons",
                       r.clock_event_reasons
                           ? absl::StrFormat("0x%x", *r.clock_event_reasons)
                           : std::string("n/a")},
                      {"pcie", absl::StrCat("gen ", opt(r.pcie_gen_current),
                                            "/", opt(r.pcie_gen_max), " x",
                                            opt(r.pcie_width_current), "/x",
                                            opt(r.pcie_width_max))},
                      {"nvlinks", r.nvlinks.size()}});
  }
}

void Agent::Stop() {
  if (stopping_.exchange(true)) return;
  timers_.Close();
  if (kmsg_) kmsg_->Stop();
  processes_.KillAll();
  xid_->Shutdown();
  commands_->Shutdown();
  gpu_->Shutdown();
  control_->Shutdown();
  // Nothing runs on the control executor any more: its state is ours.
  stream_.reset();
  if (started_) log_.Info("node agent stopped", {{"node_id", node_id()}});
}

void Agent::RaiseEvent(HealthEvent event) {
  Post([this, event = std::move(event)]() mutable {
    OnEvent(std::move(event));
  });
}

AgentStats Agent::stats() const {
  absl::MutexLock lock(&stats_mu_);
  return stats_;
}

void Agent::UpdateStats() {
  AgentStats s = counters_;
  s.registered = registered_;
  s.connected = connected_;
  s.polling_commands = polling_;
  s.acks_supported = ack_supported_;
  s.events_dropped = counters_.events_dropped + queue_.dropped();
  s.duplicate_xids = queue_.duplicates();
  s.events_queued = queue_.size();
  s.kmsg_records = kmsg_ ? kmsg_->records() : 0;
  s.heartbeat_interval = heartbeat_interval_;
  s.health_interval = health_interval_;
  absl::MutexLock lock(&stats_mu_);
  stats_ = s;
}

// ---------------------------------------------------------------------------
// Registration

void Agent::Register() {
  registering_ = false;
  if (registered_) return;
  RegisterNodeRequest req = options_.identity;
  req.clear_gpus();
  GpuSystemInfo sys = monitor_.SystemInfo();
  for (const GpuDevice& d : monitor_.Inventory()) {
    GPUInfo* g = req.add_gpus();
    g->set_index(d.index);
    g->set_uuid(d.uuid);
    g->set_name(d.name);
    g->set_pci_bus_id(d.pci_bus_id);
    g->set_memory_total(d.memory_total_bytes);
    g->set_driver_version(sys.driver_version);
    g->set_cuda_version(sys.cuda_version);
  }
  absl::StatusOr<RegisterNodeResponse> resp = client_.RegisterNode(req);
  if (resp.ok() && !resp->success()) {
    resp = absl::FailedPreconditionError(absl::StrCat(
        "the control plane refused the registration: ", resp->message()));
  }
  if (resp.ok()) {
    registered_gpus_ = static_cast<size_t>(req.gpus_size());
    OnRegistered(*resp);
    return;
  }
  ++counters_.register_failures;
  absl::Duration wait = register_backoff_.Next();
  log_.Warn("registration failed; retrying",
            {{"error", resp.status()},
             {"attempt", register_backoff_.attempts()},
             {"retry_in", wait}});
  registering_ = true;
  After(wait, [this] { Register(); });
}

void Agent::OnRegistered(const RegisterNodeResponse& resp) {
  registered_ = true;
  ++counters_.registrations;
  register_backoff_.Reset();
  const NodeConfig& c = resp.config();
  heartbeat_interval_ = c.heartbeat_interval_seconds() > 0
                            ? absl::Seconds(c.heartbeat_interval_seconds())
                            : options_.default_heartbeat_interval;
  health_interval_ = c.health_check_interval_seconds() > 0
                         ? absl::Seconds(c.health_check_interval_seconds())
                         : options_.default_health_interval;
  ack_supported_ = c.commands_ack_supported();
  polling_ = !ack_supported_;
  log_.Info("registered with the control plane",
            {{"node_id", node_id()},
             {"gpus", registered_gpus_},
             {"heartbeat_interval", heartbeat_interval_},
             {"health_interval", health_interval_},
             {"commands", polling_ ? "poll" : "stream"}});
  ++epoch_;
  connected_ = false;  // so OnConnected flushes what waited
  OnConnected();
  HeartbeatTick(epoch_);
  HealthTick(epoch_);
  StartCommands();
}

void Agent::Reregister(const absl::Status& why) {
  log_.Warn("the control plane does not know this node; registering again",
            {{"why", why}});
  registered_ = false;
  ++epoch_;
  ++stream_generation_;
  stream_.reset();
  if (!registering_) Register();
}

// ---------------------------------------------------------------------------
// Heartbeats, reports, connectivity

void Agent::HeartbeatTick(uint64_t epoch) {
  if (epoch != epoch_ || !registered_) return;
  SendHeartbeat();
  After(heartbeat_interval_, [this, epoch] { HeartbeatTick(epoch); });
}

bool Agent::SendHeartbeat() {
  HeartbeatRequest req;
  req.set_node_id(node_id());
  *req.mutable_timestamp() = ToTimestamp(clock_.Now());
  NodeMetrics* m = req.mutable_metrics();
  m->set_cpu_usage_percent(host_.CpuPercent());
  m->set_memory_usage_percent(host_.MemoryPercent());
  for (GPUMetrics& g : monitor_.Metrics()) *m->add_gpu_metrics() = std::move(g);
  absl::StatusOr<HeartbeatResponse> resp = client_.SendHeartbeat(req);
  if (!resp.ok()) {
    OnCallFailed("heartbeat", resp.status());
    return false;
  }
  ++counters_.heartbeats_sent;
  OnConnected();
  return true;
}

void Agent::HealthTick(uint64_t epoch) {
  if (epoch != epoch_ || !registered_) return;
  Report(/*force=*/true);
  After(health_interval_, [this, epoch] { HealthTick(epoch); });
}

std::vector<HealthCheckResult> Agent::Checks(int events_in_report) const {
  std::vector<HealthCheckResult> out = {monitor_.BootCheck(),
                                        monitor_.GpuCheck()};
  HealthCheckResult h;
  h.set_check_name("health_events");
  h.set_status(HEALTH_STATUS_HEALTHY);
  std::string msg =
      events_in_report == 0
          ? "no health events detected"
          : absl::StrCat("collected ", events_in_report,
                         " health event(s) for policy evaluation");
  if (queue_.dropped() > 0) {
    absl::StrAppend(
        &msg, "; ", queue_.dropped(),
        " event(s) dropped since start because the event queue was full");
  }
  h.set_message(msg);
  *h.mutable_timestamp() = ToTimestamp(clock_.Now());
  auto& d = *h.mutable_details();
  d["events"] = absl::StrCat(events_in_report);
  d["dropped_events"] = absl::StrCat(queue_.dropped());
  d["duplicate_xids"] = absl::StrCat(queue_.duplicates());
  out.push_back(std::move(h));
  return out;
}

void Agent::ScheduleReport() {
  if (!registered_ || !connected_ || report_posted_) return;
  report_posted_ = true;
  Post([this] {
    report_posted_ = false;
    Report(/*force=*/false);
  });
}

void Agent::Report(bool force) {
  if (!registered_) return;
  for (;;) {
    std::vector<HealthEvent> batch = queue_.Front(kEventsPerReport);
    if (batch.empty() && !force) return;
    ReportHealthRequest req;
    req.set_node_id(node_id());
    for (HealthCheckResult& c : Checks(static_cast<int>(batch.size()))) {
      *req.add_results() = std::move(c);
    }
    for (const HealthCheckResult& c : one_shot_checks_) *req.add_results() = c;
    for (HealthEvent& e : batch) *req.add_events() = std::move(e);
    absl::StatusOr<ReportHealthResponse> resp = client_.ReportHealth(req);
    if (!resp.ok()) {
      if (absl::IsInvalidArgument(resp.status()) && !batch.empty()) {
        // Retrying would fail forever and hold back every later event.
        log_.Error(
            "the control plane rejected a health report; dropping its events",
            {{"error", resp.status()}, {"events", batch.size()}});
        queue_.Pop(batch.size());
        counters_.events_dropped += batch.size();
        continue;
      }
      OnCallFailed("health report", resp.status());
      return;
    }
    queue_.Pop(batch.size());
    one_shot_checks_.clear();
    ++counters_.reports_sent;
    counters_.events_reported += batch.size();
    if (!batch.empty()) {
      log_.Info("health events reported",
                {{"events", batch.size()},
                 {"health_status", ShortName(resp->health_status())},
                 {"node_status", ShortName(resp->node_status())}});
    }
    OnConnected();
    force = false;
    if (queue_.empty()) return;
  }
}

void Agent::OnCallFailed(const char* what, const absl::Status& status) {
  if (absl::IsNotFound(status)) {
    Reregister(status);
    return;
  }
  if (!IsRetryableError(status)) {
    log_.Error("the control plane refused a call",
               {{"call", what}, {"error", status}});
    return;
  }
  if (connected_) {
    log_.Warn("control plane unreachable; retrying with backoff",
              {{"call", what}, {"error", status}});
    connected_ = false;
  }
  if (!probe_scheduled_) {
    probe_scheduled_ = true;
    After(retry_backoff_.Next(), [this] { Probe(); });
  }
}

void Agent::Probe() {
  probe_scheduled_ = false;
  if (connected_ || !registered_) return;
  SendHeartbeat();  // on failure it schedules the next probe
}

void Agent::OnConnected() {
  if (connected_) return;
  connected_ = true;
  retry_backoff_.Reset();
  if (counters_.registrations > 0 &&
      (counters_.heartbeats_sent > 0 || counters_.reports_sent > 0)) {
    log_.Info("control plane reachable", {{"queued_events", queue_.size()}});
  }
  if (!queue_.empty()) ScheduleReport();
  if (!pending_acks_.empty()) Post([this] { FlushAcks(); });
  if (!polling_ && ack_supported_ && !stream_) StartCommands();
}

// ---------------------------------------------------------------------------
// Events

void Agent::OnEvent(HealthEvent event) {
  std::string type = PolicyName(event.event_type());
  int gpu = event.gpu_index();
  std::string message = event.message();
  size_t dropped_before = queue_.dropped();
  if (!queue_.Push(std::move(event))) {
    if (queue_.dropped() > dropped_before) {
      log_.Warn("health event dropped: the event queue is full",
                {{"event_type", type},
                 {"gpu", gpu},
                 {"dropped_total", queue_.dropped()}});
    } else {
      log_.Debug("duplicate XID dropped", {{"gpu", gpu}, {"message", message}});
    }
    return;
  }
  log_.Info("health event",
            {{"event_type", type}, {"gpu", gpu}, {"message", message}});
  ScheduleReport();
}

void Agent::GpuPollTick() {
  // A driver that hangs must not pile up polls behind it.
  if (!gpu_poll_busy_.exchange(true)) {
    gpu_->Post([this] {
      std::vector<HealthEvent> events = monitor_.Poll();
      if (!options_.xid_thread) {
        auto xids = backend_.WaitXid(absl::ZeroDuration());
        if (xids.ok()) {
          for (const XidEvent& x : *xids)
            events.push_back(monitor_.XidEvent(x));
        }
      }
      gpu_poll_busy_ = false;
      Post([this, events = std::move(events)] { OnGpuPoll(events); });
    });
  }
  timers_.Schedule(options_.config.gpu_poll_interval,
                   [this] { GpuPollTick(); });
}

void Agent::OnGpuPoll(std::vector<HealthEvent> events) {
  for (HealthEvent& e : events) OnEvent(std::move(e));
  // GPUs that were not there at start (driver loaded late): the control plane
  // must learn the real inventory.
  if (registered_ && registered_gpus_ == 0 && !monitor_.Inventory().empty()) {
    Reregister(absl::OkStatus());
  }
}

void Agent::XidWait() {
  if (stopping_) return;
  absl::StatusOr<std::vector<XidEvent>> xids = backend_.WaitXid(kXidWait);
  if (xids.ok()) {
    for (const XidEvent& x : *xids) RaiseEvent(monitor_.XidEvent(x));
    xid_->Post([this] { XidWait(); });
    return;
  }
  if (absl::IsUnimplemented(xids.status())) {
    log_.Info(
        "the GPU driver delivers no XID events; the kernel log is the XID "
        "source",
        {{"reason", xids.status()}});
    return;
  }
  log_.Debug("waiting for XID events failed; retrying",
             {{"error", xids.status()}});
  timers_.Schedule(kXidRetry, [this] { xid_->Post([this] { XidWait(); }); });
}

void Agent::OnKmsgRecord(const KmsgRecord& r) {
  std::optional<XidLine> xid = ParseXidLine(r.message);
  if (!xid) return;
  HealthEvent e = monitor_.XidEvent(*xid);
  if (r.has_header) {
    (*e.mutable_metrics())["kernel_time"] = absl::StrFormat(
        "%d.%06d", r.timestamp_us / 1000000, r.timestamp_us % 1000000);
  }
  RaiseEvent(std::move(e));
}

// ---------------------------------------------------------------------------
// Commands

void Agent::StartCommands() {
  if (!registered_ || stopping_) return;
  if (polling_) {
    // One polling chain per registration.
    if (poll_epoch_ == epoch_) return;
    poll_epoch_ = epoch_;
    PollCommandsTick(epoch_);
    return;
  }
  if (stream_) return;
  uint64_t generation = ++stream_generation_;
  stream_started_ = clock_.SteadyNow();
  WatchCommandsRequest req;
  req.set_node_id(node_id());
  stream_ = client_.WatchCommands(
      req,
      [this, generation](const NodeCommand& c) {
        Post([this, generation, c] {
          if (generation == stream_generation_) OnCommand(c);
        });
      },
      [this, generation](absl::Status s) {
        Post([this, generation, s] { OnStreamEnd(generation, s); });
      });
}

void Agent::OnStreamEnd(uint64_t generation, const absl::Status& status) {
  if (generation != stream_generation_) return;
  stream_.reset();
  if (!registered_) return;
  if (absl::IsUnimplemented(status)) {
    log_.Info("the control plane has no WatchCommands; polling for commands",
              {{"interval", options_.config.command_poll_interval}});
    polling_ = true;
    StartCommands();
    return;
  }
  if (absl::IsNotFound(status)) {
    Reregister(status);
    return;
  }
  if (clock_.SteadyNow() - stream_started_ >= kHealthyStream)
    stream_backoff_.Reset();
  absl::Duration wait = stream_backoff_.Next();
  log_.Info("command stream ended; reopening",
            {{"status", status}, {"retry_in", wait}});
  uint64_t epoch = epoch_;
  After(wait, [this, epoch] {
    if (epoch == epoch_) StartCommands();
  });
}

void Agent::PollCommandsTick(uint64_t epoch) {
  if (epoch != epoch_ || !registered_) return;
  GetNodeCommandsRequest req;
  req.set_node_id(node_id());
  absl::StatusOr<GetNodeCommandsResponse> resp = client_.GetNodeCommands(req);
  if (resp.ok()) {
    OnConnected();
    for (const NodeCommand& c : resp->commands()) OnCommand(c);
  } else {
    OnCallFailed("command poll", resp.status());
  }
  After(options_.config.command_poll_interval,
        [this, epoch] { PollCommandsTick(epoch); });
}

void Agent::OnCommand(const NodeCommand& command) {
  if (terminating_) return;
  // The stream resends unacknowledged commands after a reconnection.
  if (!seen_commands_.insert(command.command_id()).second) return;
  seen_order_.push_back(command.command_id());
  if (seen_order_.size() > kRememberedCommands) {
    seen_commands_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  log_.Info("command received", {{"command_id", command.command_id()},
                                 {"type", ShortName(command.type())}});
  commands_->Post([this, command] {
    CommandResult result = handler_.Execute(command);
    Post([this, command, result = std::move(result)]() mutable {
      OnCommandDone(command, std::move(result));
    });
  });
}

void Agent::OnCommandDone(const NodeCommand& command, CommandResult result) {
  ++counters_.commands_executed;
  log_.Log(result.succeeded ? LogLevel::kInfo : LogLevel::kWarn,
           "command finished",
           {{"command_id", command.command_id()},
            {"type", ShortName(command.type())},
            {"succeeded", result.succeeded},
            {"message", result.message}});
  if (result.check) {
    one_shot_checks_.push_back(*result.check);
    if (connected_) Report(/*force=*/true);
  }
  if (ack_supported_) {
    AckCommandRequest ack;
    ack.set_node_id(node_id());
    ack.set_command_id(command.command_id());
    ack.set_outcome(result.succeeded ? COMMAND_OUTCOME_SUCCEEDED
                                     : COMMAND_OUTCOME_FAILED);
    std::string message = result.message;
    if (message.size() > kMaxAckMessage) message.resize(kMaxAckMessage);
    ack.set_message(message);
    pending_acks_.push_back(std::move(ack));
    FlushAcks();
  }
  if (command.type() == NODE_COMMAND_TYPE_TERMINATE && result.succeeded) {
    terminating_ = result.stop_agent;
    // After the acknowledgement: the shutdown command may take the host down.
    commands_->Post(
        [this, run = result.run_shutdown_command, stop = result.stop_agent] {
          if (run) handler_.RunShutdownCommand();
          if (stop) {
            Post([this] {
              log_.Warn("terminate: the agent stops", {{"node_id", node_id()}});
              if (options_.on_terminate) options_.on_terminate();
            });
          }
        });
  }
}

void Agent::FlushAcks() {
  while (!pending_acks_.empty() && ack_supported_) {
    const AckCommandRequest& ack = pending_acks_.front();
    absl::StatusOr<AckCommandResponse> resp = client_.AckCommand(ack);
    if (resp.ok()) {
      ++counters_.commands_acked;
      pending_acks_.pop_front();
      continue;
    }
    if (absl::IsUnimplemented(resp.status())) {
      log_.Info("the control plane does not take acknowledgements");
      ack_supported_ = false;
      pending_acks_.clear();
      return;
    }
    if (IsRetryableError(resp.status())) {
      OnCallFailed("command acknowledgement", resp.status());
      return;  // OnConnected flushes again
    }
    // The command (or node) is unknown or the ack invalid: retrying cannot
    // help.
    log_.Warn("command acknowledgement refused; dropping it",
              {{"command_id", ack.command_id()}, {"error", resp.status()}});
    pending_acks_.pop_front();
  }
}

}  // namespace navarch::agent
