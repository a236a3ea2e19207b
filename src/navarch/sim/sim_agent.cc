#include "navarch/sim/sim_agent.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "navarch/api/time_util.h"
#include "navarch/base/ids.h"

namespace navarch::sim {
namespace {

// FNV-1a: stable across builds and machines (std::hash is not).
uint64_t Fnv(absl::string_view s, uint64_t salt) {
  uint64_t h = 1469598103934665603ULL ^ salt;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

// The node's own (version 4) UUID for GPU `index`, stable across runs and
// machines.
std::string GpuUuid(absl::string_view node_id, int index) {
  return absl::StrCat(
      "GPU-", UuidFromBits(Fnv(node_id, index), Fnv(node_id, index + 1024)));
}

// What every simulated node says of its host: constant, so that a healthy
// node's heartbeat stays its type's.
void SetHostUsage(NodeMetrics* m) {
  m->set_cpu_usage_percent(35);
  m->set_memory_usage_percent(40);
}

// The agent's third check: the health events it collected for the policy.
void SetHealthEventsResult(size_t events, HealthCheckResult* h) {
  h->set_check_name("health_events");
  h->set_status(HEALTH_STATUS_HEALTHY);
  h->set_message(events == 0
                     ? "no health events detected"
                     : absl::StrCat("collected ", events,
                                    " health event(s) for policy evaluation"));
  (*h->mutable_details())["events"] = absl::StrCat(events);
}

}  // namespace

std::shared_ptr<const AgentTemplate> MakeAgentTemplate(
    Clock& clock, int gpu_count, const std::string& model) {
  agent::FakeGpuOptions o;
  o.gpu_count = gpu_count;
  o.model = model;
  o.seed = 1;
  auto t = std::make_shared<AgentTemplate>();
  t->backend = std::make_unique<agent::FakeGpuBackend>(o);
  t->monitor = std::make_unique<agent::GpuMonitor>(*t->backend, clock);
  agent::GpuMonitor& monitor = *t->monitor;
  (void)monitor.Start();
  (void)monitor.Poll();  // the baseline every copy starts from
  t->devices = monitor.Inventory();
  t->system = monitor.SystemInfo();
  NodeMetrics* m = t->heartbeat.mutable_metrics();
  SetHostUsage(m);
  for (GPUMetrics& g : monitor.Metrics()) *m->add_gpu_metrics() = std::move(g);
  t->boot = monitor.BootCheck();
  t->gpu = monitor.GpuCheck();
  for (const agent::GpuDevice& d : t->devices) {
    GPUInfo* g = t->registration.add_gpus();
    g->set_index(d.index);
    g->set_name(d.name);
    g->set_pci_bus_id(d.pci_bus_id);
    g->set_memory_total(d.memory_total_bytes);
    g->set_driver_version(t->system.driver_version);
    g->set_cuda_version(t->system.cuda_version);
  }
  *t->report.add_results() = t->boot;
  *t->report.add_results() = t->gpu;
  SetHealthEventsResult(0, t->report.add_results());
  return t;
}

SimAgent::SimAgent(NodeSpec spec, FleetService& fleet, Clock& clock,
                   AgentCalendar& calendar, uint32_t ordinal,
                   std::shared_ptr<const AgentTemplate> tmpl,
                   AgentTiming timing, uint64_t gpu_seed, Hooks hooks)
    : spec_(std::move(spec)),
      fleet_(fleet),
      clock_(clock),
      calendar_(calendar),
      ordinal_(ordinal),
      tmpl_(std::move(tmpl)),
      timing_(timing),
      gpu_seed_(gpu_seed),
      hooks_(std::move(hooks)) {}

SimAgent::~SimAgent() {
  *alive_ = false;
  CloseStream();
}

void SimAgent::Start(absl::Duration boot_delay) {
  if (running_) return;
  running_ = true;
  registered_ = false;
  const uint64_t epoch = ++epoch_;
  if (boot_failure_) {
    if (hooks_.start_failed) hooks_.start_failed(*this);
    return;
  }
  After(boot_delay, [this, epoch] { Register(epoch); });
}

void SimAgent::Stop() {
  if (!running_) return;
  StopSkipping(/*queue=*/false);
  running_ = false;
  registered_ = false;
  polling_ = false;
  beat_queued_ = report_queued_ = false;
  ++epoch_;
  CloseStream();
}

void SimAgent::OpenStream() {
  if (watch_handle_ != 0 || network_down_ || !registered_) return;
  std::shared_ptr<bool> alive = alive_;
  absl::StatusOr<uint64_t> h = fleet_.Watch(
      spec_.id,
      [this, alive](const NodeCommand& c) {
        // Delivered from inside the fleet's commit; handled on the clock.
        clock_.Schedule(absl::ZeroDuration(), [this, alive, c] {
          if (*alive) OnCommand(c);
        });
      },
      [] {});
  if (h.ok()) watch_handle_ = *h;
}

void SimAgent::CloseStream() {
  if (watch_handle_ == 0) return;
  fleet_.Unwatch(spec_.id, watch_handle_);
  watch_handle_ = 0;
}

void SimAgent::Register(uint64_t epoch) {
  if (epoch != epoch_ || !running_) return;
  if (network_down_) {
    // Retried until the network is back.
    After(absl::Seconds(5), [this, epoch] { Register(epoch); });
    return;
  }
  // The type's request, with this node's id, place, GPU UUIDs and labels.
  RegisterNodeRequest& req = tmpl_->registration;
  req.set_node_id(spec_.id);
  req.set_provider(spec_.provider);
  req.set_region(spec_.region);
  req.set_zone(spec_.zone);
  req.set_instance_type(spec_.instance_type);
  for (GPUInfo& g : *req.mutable_gpus())
    g.set_uuid(GpuUuid(spec_.id, g.index()));
  NodeMetadata* md = req.mutable_metadata();
  md->set_hostname(spec_.id);
  md->mutable_labels()->clear();
  for (const auto& [k, v] : spec_.labels) (*md->mutable_labels())[k] = v;
  absl::StatusOr<RegisterNodeResponse> resp = Await<RegisterNodeResponse>(
      [&](auto done) { fleet_.RegisterNode(req, done); });
  if (!resp.ok()) {
    if (absl::IsFailedPrecondition(resp.status())) return;  // terminated
    After(absl::Seconds(5), [this, epoch] { Register(epoch); });
    return;
  }
  // A fresh schedule from now: what the old one skipped is counted first,
  // on its own intervals.
  StopSkipping(/*queue=*/false);
  const NodeConfig& c = resp->config();
  if (c.heartbeat_interval_seconds() > 0)
    timing_.heartbeat_interval = absl::Seconds(c.heartbeat_interval_seconds());
  if (c.health_check_interval_seconds() > 0)
    timing_.health_interval = absl::Seconds(c.health_check_interval_seconds());
  registered_ = true;
  last_beat_ = skipped_beat_ = absl::InfinitePast();
  template_metrics_sent_ = false;
  beat_queued_ = report_queued_ = false;
  const uint64_t e = ++epoch_;
  OpenStream();
  next_beat_ = next_report_ = clock_.Now();
  HeartbeatTick();
  if (e != epoch_) return;
  HealthTick();
  if (e != epoch_) return;
  if (monitor_ != nullptr) {
    polling_ = true;
    After(timing_.gpu_poll_interval, [this, e] { GpuPollTick(e); });
  }
}

bool SimAgent::SendHeartbeat() {
  // The readings of a healthy node never change: one request per type,
  // reused; once the fleet holds them, they are left out (the fleet keeps a
  // node's last metrics when a heartbeat carries none: same state, no copy).
  HeartbeatRequest faulted;
  HeartbeatRequest* req = &tmpl_->heartbeat;
  if (monitor_ != nullptr) {
    faulted.set_node_id(spec_.id);
    NodeMetrics* m = faulted.mutable_metrics();
    SetHostUsage(m);
    for (GPUMetrics& g : monitor_->Metrics())
      *m->add_gpu_metrics() = std::move(g);
    req = &faulted;
    template_metrics_sent_ = false;
  } else if (template_metrics_sent_) {
    req = &tmpl_->bare;
  }
  if (req != &faulted) req->set_node_id(spec_.id);
  *req->mutable_timestamp() = ToTimestamp(clock_.Now());
  bool sent = false;
  fleet_.SendHeartbeat(
      *req, [&sent](absl::StatusOr<HeartbeatResponse> r) { sent = r.ok(); });
  if (sent && req == &tmpl_->heartbeat) template_metrics_sent_ = true;
  return sent;
}

void SimAgent::Tick(AgentCalendar::Kind kind, uint64_t epoch) {
  if (epoch != epoch_ || !registered_) return;  // a chain that ended
  Count(1);
  if (kind == AgentCalendar::kHeartbeat) {
    beat_queued_ = false;
    HeartbeatTick();
  } else {
    report_queued_ = false;
    HealthTick();
  }
}

void SimAgent::Queue(AgentCalendar::Kind kind) {
  if (kind == AgentCalendar::kHeartbeat) {
    if (beat_queued_) return;
    beat_queued_ = true;
    calendar_.Add(next_beat_, ordinal_, kind, epoch_);
  } else {
    if (report_queued_) return;
    report_queued_ = true;
    calendar_.Add(next_report_, ordinal_, kind, epoch_);
  }
}

void SimAgent::HeartbeatTick() {
  const absl::Time now = clock_.Now();
  next_beat_ = now + timing_.heartbeat_interval;
  // (A node that skips beats has no tick queued: it starts skipping at the
  // end of a tick that then queues none, and is queued again only after
  // ResumeBeats.)
  if (!network_down_) {
    ++calls_.heartbeats;
    const bool sent = SendHeartbeat();
    last_beat_ = now;
    if (sent) MaybeSkipBeats();
  }
  if (!skip_beats_) Queue(AgentCalendar::kHeartbeat);
}

void SimAgent::HealthTick() {
  next_report_ = clock_.Now() + timing_.health_interval;
  if (skip_reports_) {
    ++calls_.health_reports;
    ++calls_.health_reports_skipped;
    return;
  }
  const uint64_t epoch = epoch_;
  Report(/*force=*/true);
  // A report may re-register the node (a new schedule, queued there).
  if (epoch != epoch_ || skip_reports_) return;
  Queue(AgentCalendar::kHealth);
}

void SimAgent::MaybeSkipBeats() {
  if (!hooks_.as_of || timing_.heartbeat_interval <= absl::ZeroDuration() ||
      timing_.heartbeat_interval > timing_.heartbeat_timeout || !registered_ ||
      !running_ || network_down_ || monitor_ != nullptr ||
      !template_metrics_sent_) {
    return;
  }
  skip_beats_ = fleet_.VouchLiveness(spec_.id, true);
}

void SimAgent::MaybeSkipReports(bool fleet_quiet) {
  if (!hooks_.as_of || !fleet_quiet || !registered_ || !running_ ||
      network_down_ || monitor_ != nullptr || !queue_.empty()) {
    return;
  }
  skip_reports_ = true;
}

int64_t SimAgent::CatchUp(AgentCalendar::Kind kind, absl::Duration interval,
                          absl::Time& next, absl::Time* last) {
  const absl::Time now = clock_.Now();
  int64_t n = 0;
  if (next < now && interval > absl::ZeroDuration()) {
    // Whole intervals strictly before now, then the one due now, if it ran.
    absl::Duration rem;
    n = absl::IDivDuration(now - next, interval, &rem);
    if (rem == absl::ZeroDuration()) --n;
    next += interval * n;
    *last = next;
    next += interval;
    ++n;
  }
  while (calendar_.Fired(next, ordinal_, kind, now)) {
    *last = next;
    next += interval;
    ++n;
  }
  return n;
}

void SimAgent::ResumeBeats(bool queue) {
  if (!skip_beats_) return;
  skip_beats_ = false;
  absl::Time last = absl::InfinitePast();
  const int64_t n = CatchUp(AgentCalendar::kHeartbeat,
                            timing_.heartbeat_interval, next_beat_, &last);
  calls_.heartbeats += n;
  calls_.heartbeats_skipped += n;
  Count(n);
  skipped_beat_ = std::max(skipped_beat_, last);
  ReplaySkippedBeat();
  fleet_.VouchLiveness(spec_.id, false);
  if (queue && registered_ && running_) Queue(AgentCalendar::kHeartbeat);
}

void SimAgent::ResumeReports(bool queue) {
  if (!skip_reports_) return;
  skip_reports_ = false;
  absl::Time last = absl::InfinitePast();
  const int64_t n = CatchUp(AgentCalendar::kHealth, timing_.health_interval,
                            next_report_, &last);
  calls_.health_reports += n;
  calls_.health_reports_skipped += n;
  Count(n);
  if (queue && registered_ && running_) Queue(AgentCalendar::kHealth);
}

void SimAgent::ReplaySkippedBeat() {
  if (skipped_beat_ <= last_beat_ || !registered_) return;
  const absl::Time at = skipped_beat_;
  hooks_.as_of(at, [this] { SendHeartbeat(); });
  last_beat_ = at;
  --calls_.heartbeats_skipped;  // made after all
}

void SimAgent::FleetChanged() {
  // The next report must really happen (no fleet call from here).
  fleet_changed_ = true;
  ResumeReports(/*queue=*/true);
}

void SimAgent::StopSkipping(bool queue) {
  ResumeBeats(queue);
  ResumeReports(queue);
}

void SimAgent::Settle() { StopSkipping(/*queue=*/false); }

void SimAgent::GpuPollTick(uint64_t epoch) {
  if (epoch != epoch_ || !registered_ || monitor_ == nullptr) return;
  for (HealthEvent& e : monitor_->Poll()) queue_.push_back(std::move(e));
  CollectXids();
  if (!queue_.empty()) Report(/*force=*/false);
  // XIDs, ECC and NVLink errors are edges the poll has now reported; with no
  // standing fault left the node reads like every healthy node of its type
  // again, so it goes back to the shared readings (what keeps fleets of
  // thousands cheap). The next fault gets a fresh baseline.
  if (!HasStandingFault() && queue_.empty() && epoch == epoch_) {
    monitor_.reset();
    backend_.reset();
    polling_ = false;
    return;
  }
  After(timing_.gpu_poll_interval, [this, epoch] { GpuPollTick(epoch); });
}

bool SimAgent::HasStandingFault() const {
  for (const char* t :
       {"temperature", "backend_error", "nvml_failure", "device_error"}) {
    if (active_.contains(t)) return true;
  }
  return false;
}

void SimAgent::CollectXids() {
  if (backend_ == nullptr) return;
  absl::StatusOr<std::vector<agent::XidEvent>> xids =
      backend_->WaitXid(absl::ZeroDuration());
  if (!xids.ok()) return;
  for (const agent::XidEvent& x : *xids)
    queue_.push_back(monitor_->XidEvent(x));
}

void SimAgent::Report(bool force) {
  if (!registered_ || network_down_) return;
  if (queue_.empty() && !force) return;
  const absl::Time now = clock_.Now();
  fleet_changed_ = false;
  ResumeReports(/*queue=*/true);
  ++calls_.health_reports;
  // A healthy node's report is the type's, with this node's id and time.
  ReportHealthRequest faulted;
  ReportHealthRequest* req = &tmpl_->report;
  if (monitor_ != nullptr || !queue_.empty()) {
    req = &faulted;
    HealthCheckResult* boot = req->add_results();
    HealthCheckResult* gpu = req->add_results();
    if (monitor_ != nullptr) {
      *boot = monitor_->BootCheck();
      *gpu = monitor_->GpuCheck();
    } else {
      *boot = tmpl_->boot;
      *gpu = tmpl_->gpu;
    }
    SetHealthEventsResult(queue_.size(), req->add_results());
    for (HealthEvent& e : queue_) *req->add_events() = std::move(e);
    queue_.clear();
  }
  req->set_node_id(spec_.id);
  const google::protobuf::Timestamp ts = ToTimestamp(now);
  for (HealthCheckResult& r : *req->mutable_results())
    *r.mutable_timestamp() = ts;
  absl::StatusOr<ReportHealthResponse> resp = Await<ReportHealthResponse>(
      [&](auto done) { fleet_.ReportHealth(*req, done); });
  if (resp.ok()) MaybeSkipReports(/*fleet_quiet=*/!fleet_changed_);
  if (!resp.ok() && absl::IsNotFound(resp.status())) {
    // The fleet forgot the node: what its schedule skipped is counted (and
    // the last beat replayed) while it is still registered here.
    StopSkipping(/*queue=*/false);
    registered_ = false;
    const uint64_t e = ++epoch_;
    CloseStream();
    Register(e);
  }
}

void SimAgent::EnsureGpu() {
  if (monitor_ != nullptr) return;
  // A copy of the type's prototype, started and polled once (the baseline:
  // faults are edges from here), with this node's generator and the GPU
  // UUIDs it registered: building and polling a backend per fault cost more
  // than the rest of the fault.
  std::vector<std::string> uuids;
  uuids.reserve(tmpl_->devices.size());
  for (const agent::GpuDevice& d : tmpl_->devices)
    uuids.push_back(GpuUuid(spec_.id, d.index));
  backend_ = std::make_unique<agent::FakeGpuBackend>(*tmpl_->backend, gpu_seed_,
                                                     uuids);
  monitor_ = std::make_unique<agent::GpuMonitor>(*tmpl_->monitor, *backend_,
                                                 clock_, uuids);
  if (registered_ && !polling_) {
    polling_ = true;
    const uint64_t e = epoch_;
    After(timing_.gpu_poll_interval, [this, e] { GpuPollTick(e); });
  }
}

bool SimAgent::Inject(const Failure& f) {
  StopSkipping(/*queue=*/true);
  if (f.type == "boot_failure") {
    // Bites when the node next starts (upstream: only Initialize checks it).
    boot_failure_ = true;
    active_.insert(f.type);
    return true;
  }
  if (!running_) return false;
  active_.insert(f.type);
  const int gpus = std::max(spec_.gpu_count, 1);
  const int g = std::clamp(f.gpu, 0, gpus - 1);
  if (f.type == "network") {
    network_down_ = true;
    CloseStream();
    return true;
  }
  EnsureGpu();
  if (f.type == "xid_error") {
    backend_->InjectXid(g, f.xid);
    // The driver's XID thread reports at once.
    CollectXids();
    Report(/*force=*/false);
  } else if (f.type == "temperature") {
    if (f.gpu < 0) {
      for (int i = 0; i < gpus; ++i) backend_->SetTemperature(i, 95);
    } else {
      backend_->SetTemperature(g, 95);
    }
  } else if (f.type == "memory_error") {
    backend_->AddEccErrors(g, 0, 1);
  } else if (f.type == "nvlink_error") {
    backend_->AddNvLinkErrors(g, 0, 1, 1, 1);
  } else if (f.type == "backend_error" || f.type == "nvml_failure") {
    backend_->SetNvmlFailure(true);
  } else if (f.type == "device_error") {
    backend_->SetGpuError(g, true);
  }
  return true;
}

void SimAgent::Recover(const std::string& type) {
  StopSkipping(/*queue=*/true);
  auto clear = [&](const std::string& t) {
    if (t == "network" && network_down_) {
      network_down_ = false;
      if (registered_) {
        OpenStream();
        // The agent reconnects and reports at once.
        Report(/*force=*/true);
      }
    }
    if (t == "boot_failure") boot_failure_ = false;
    if (backend_ == nullptr) return;
    const int gpus = std::max(spec_.gpu_count, 1);
    if (t == "temperature") {
      for (int i = 0; i < gpus; ++i) backend_->ClearTemperature(i);
    } else if (t == "backend_error" || t == "nvml_failure") {
      backend_->SetNvmlFailure(false);
    } else if (t == "device_error") {
      for (int i = 0; i < gpus; ++i) backend_->SetGpuError(i, false);
    }
  };
  if (type.empty()) {
    std::set<std::string> all = active_;
    for (const std::string& t : all) clear(t);
    if (backend_ != nullptr) backend_->ClearFaults();
    active_.clear();
    return;
  }
  clear(type);
  active_.erase(type);
}

void SimAgent::Ack(const NodeCommand& c, bool ok, const std::string& message) {
  AckCommandRequest req;
  req.set_node_id(spec_.id);
  req.set_command_id(c.command_id());
  req.set_outcome(ok ? COMMAND_OUTCOME_SUCCEEDED : COMMAND_OUTCOME_FAILED);
  req.set_message(message);
  fleet_.AckCommand(req, [](absl::StatusOr<AckCommandResponse>) {});
}

void SimAgent::OnCommand(const NodeCommand& c) {
  if (!registered_ || network_down_) return;
  Count(1);
  switch (c.type()) {
    case NODE_COMMAND_TYPE_RUN_DIAGNOSTIC: {
      if (monitor_ == nullptr) {
        Ack(c, true,
            absl::StrCat("diagnostic passed: ", spec_.gpu_count,
                         " GPUs checked"));
        return;
      }
      agent::SweepResult r = monitor_->Sweep();
      Ack(c, r.passed,
          r.passed ? absl::StrCat("diagnostic passed: ", r.gpus_checked,
                                  " GPUs checked")
                   : absl::StrCat("diagnostic failed: ",
                                  r.problems.empty() ? "" : r.problems[0]));
      return;
    }
    case NODE_COMMAND_TYPE_TERMINATE:
      Ack(c, true, "terminating");
      if (hooks_.terminate) hooks_.terminate(*this);
      return;
    default:
      // cordon, uncordon, drain: the control plane's bookkeeping; a hook-less
      // agent has nothing to do.
      Ack(c, true, "ok");
      return;
  }
}

}  // namespace navarch::sim
