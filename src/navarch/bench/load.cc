#include "navarch/bench/load.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace navarch::bench {

Target::Target(TargetOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  int n = std::max(options_.channels, 1);
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // Distinct arguments keep the channels from sharing one connection.
    args.SetInt("navarch.bench.channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(
        options_.address, grpc::InsecureChannelCredentials(), args);
    stubs_.push_back(ControlPlaneService::NewStub(channel));
    channels_.push_back(std::move(channel));
  }
}

void Target::Prepare(grpc::ClientContext* ctx) const {
  ctx->set_deadline(absl::ToChronoTime(clock_.Now() + options_.rpc_timeout));
  if (!options_.token.empty())
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
}

absl::Status Target::WaitConnected(absl::Duration timeout) {
  auto deadline = absl::ToChronoTime(clock_.Now() + timeout);
  for (auto& c : channels_) {
    if (!c->WaitForConnected(deadline)) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", options_.address));
    }
  }
  return absl::OkStatus();
}

LatencySummary Summarize(const LatencyHistogram& h) {
  LatencySummary s;
  s.count = h.count();
  s.mean = h.mean();
  s.p50 = h.Percentile(0.50);
  s.p90 = h.Percentile(0.90);
  s.p99 = h.Percentile(0.99);
  s.p999 = h.Percentile(0.999);
  s.max = h.max();
  return s;
}

namespace {

using Stub = ControlPlaneService::Stub;
using Callback = std::function<void(grpc::Status)>;

// One kind of unary call, closed or open loop. Owned by shared_ptr: the
// callbacks hold it, so it outlives the last completion even when Run has
// returned.
template <typename Req, typename Resp>
class Engine : public std::enable_shared_from_this<Engine<Req, Resp>> {
 public:
  using Fill = std::function<void(int64_t seq, Req* req)>;
  using Send = std::function<void(Stub& stub, grpc::ClientContext* ctx,
                                  const Req* req, Resp* resp, Callback done)>;

  struct Config {
    int concurrency = 64;
    double rate = 0;  // > 0: open loop
    // Stop starting calls after `duration`, or after `max_calls` (>= 0)
    // calls, whichever comes first (open loop: `max_calls` wins).
    absl::Duration duration = absl::InfiniteDuration();
    absl::Duration warmup = absl::ZeroDuration();
    int64_t max_calls = -1;
  };

  Engine(Target& target, Clock& clock, Config config, Fill fill, Send send)
      : target_(target),
        clock_(clock),
        config_(config),
        fill_(std::move(fill)),
        send_(std::move(send)) {}

  RunResult Run() {
    start_ = clock_.SteadyNow();
    measure_from_ = start_ + config_.warmup;
    end_ = start_ + config_.duration;
    if (config_.rate > 0) {
      RunOpen();
    } else {
      RunClosed();
    }
    RunResult r;
    {
      absl::MutexLock lock(&mu_);
      // Open loop: wait for the stragglers, up to their deadline.
      auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return in_flight_ == 0;
      };
      mu_.AwaitWithTimeout(absl::Condition(&idle),
                           target_.options().rpc_timeout + absl::Seconds(2));
      r.unfinished = in_flight_;
      r.max_in_flight = max_in_flight_;
      r.error_codes = error_codes_;
      r.first_error = first_error_;
      r.requests = requests_;
      r.errors = errors_;
      r.latency->Merge(*latency_);
      absl::Duration last = bounded() ? last_done_ : end_;
      r.window = std::max(last - measure_from_, absl::Nanoseconds(1));
    }
    r.target_rps = config_.rate;
    r.throughput_rps = static_cast<double>(r.requests - r.errors) /
                       absl::ToDoubleSeconds(r.window);
    return r;
  }

 private:
  struct Call {
    Req req;
    Resp resp;
    std::optional<grpc::ClientContext> ctx;
    absl::Duration due;
    int channel = 0;
  };

  bool bounded() const { return config_.max_calls >= 0 && config_.rate <= 0; }

  void RunClosed() {
    int n = config_.concurrency;
    if (config_.max_calls >= 0)
      n = static_cast<int>(std::min<int64_t>(n, config_.max_calls));
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = n;
      max_in_flight_ = n;
    }
    calls_.resize(n);
    for (int i = 0; i < n; ++i) {
      calls_[i] = std::make_unique<Call>();
      calls_[i]->channel = i;
    }
    for (auto& c : calls_) Next(c.get());
    absl::MutexLock lock(&mu_);
    auto idle = [this]()
                    ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }

  // Closed loop: starts the call's next request, or retires it.
  void Next(Call* call) {
    int64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
    absl::Duration now = clock_.SteadyNow();
    if ((config_.max_calls >= 0 && seq >= config_.max_calls) || now >= end_) {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      return;
    }
    Start(call, seq, now,
          [self = this->shared_from_this(), call](grpc::Status s) {
            self->OnClosedDone(call, s);
          });
  }

  void OnClosedDone(Call* call, const grpc::Status& s) {
    absl::Duration now = clock_.SteadyNow();
    if (bounded() || (now >= measure_from_ && now <= end_)) {
      Record(call, now, s);
    }
    Next(call);
  }

  void RunOpen() {
    const double rate = config_.rate;
    const int64_t total =
        config_.max_calls >= 0
            ? config_.max_calls
            : static_cast<int64_t>(absl::ToDoubleSeconds(config_.duration) *
                                   rate);
    for (int64_t seq = 0; seq < total; ++seq) {
      absl::Duration due =
          start_ + absl::Seconds(static_cast<double>(seq) / rate);
      for (;;) {
        absl::Duration wait = due - clock_.SteadyNow();
        if (wait <= absl::ZeroDuration()) break;
        absl::SleepFor(std::min(wait, absl::Milliseconds(1)));
      }
      Call* call = Acquire();
      if (call == nullptr) break;  // every slot stuck until its deadline
      call->channel = static_cast<int>(seq % target_.channels());
      Start(call, seq, due,
            [self = this->shared_from_this(), call](grpc::Status s) {
              self->OnOpenDone(call, s);
            });
    }
  }

  // A free call slot, waiting while `concurrency` calls are in flight (the
  // wait is charged to the calls' latency: they are measured from `due`).
  Call* Acquire() {
    absl::MutexLock lock(&mu_);
    auto has_room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return in_flight_ < config_.concurrency;
    };
    if (!mu_.AwaitWithTimeout(
            absl::Condition(&has_room),
            target_.options().rpc_timeout + absl::Seconds(2))) {
      return nullptr;
    }
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    if (free_.empty()) {
      calls_.push_back(std::make_unique<Call>());
      return calls_.back().get();
    }
    Call* c = free_.back();
    free_.pop_back();
    return c;
  }

  void OnOpenDone(Call* call, const grpc::Status& s) {
    absl::Duration now = clock_.SteadyNow();
    if (call->due >= measure_from_) Record(call, now, s);
    absl::MutexLock lock(&mu_);
    free_.push_back(call);
    --in_flight_;
  }

  void Start(Call* call, int64_t seq, absl::Duration due, Callback done) {
    fill_(seq, &call->req);
    call->ctx.emplace();
    target_.Prepare(&*call->ctx);
    call->due = due;
    send_(target_.stub(call->channel), &*call->ctx, &call->req, &call->resp,
          std::move(done));
  }

  void Record(Call* call, absl::Duration now, const grpc::Status& s) {
    latency_->Record(now - call->due);
    absl::MutexLock lock(&mu_);
    ++requests_;
    last_done_ = std::max(last_done_, now);
    if (!s.ok()) {
      ++errors_;
      ++error_codes_[StatusCodeName(s.error_code())];
      if (first_error_.empty()) {
        first_error_ = absl::StrCat(StatusCodeName(s.error_code()), ": ",
                                    s.error_message());
      }
    }
  }

  static std::string StatusCodeName(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::CANCELLED:
        return "CANCELLED";
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::StatusCode::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
      case grpc::StatusCode::UNIMPLEMENTED:
        return "UNIMPLEMENTED";
      case grpc::StatusCode::INTERNAL:
        return "INTERNAL";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::UNAUTHENTICATED:
        return "UNAUTHENTICATED";
      default:
        return absl::StrCat("CODE_", static_cast<int>(code));
    }
  }

  Target& target_;
  Clock& clock_;
  const Config config_;
  const Fill fill_;
  const Send send_;
  absl::Duration start_, measure_from_, end_;
  std::atomic<int64_t> next_seq_{0};
  std::vector<std::unique_ptr<Call>> calls_;  // closed loop: fixed; open: grows
  std::unique_ptr<LatencyHistogram> latency_ =
      std::make_unique<LatencyHistogram>();

  absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Call*> free_ ABSL_GUARDED_BY(mu_);
  int64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration last_done_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> error_codes_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

void SendHeartbeat(Stub& stub, grpc::ClientContext* ctx,
                   const HeartbeatRequest* req, HeartbeatResponse* resp,
                   Callback done) {
  stub.async()->SendHeartbeat(ctx, req, resp, std::move(done));
}

void SendReport(Stub& stub, grpc::ClientContext* ctx,
                const ReportHealthRequest* req, ReportHealthResponse* resp,
                Callback done) {
  stub.async()->ReportHealth(ctx, req, resp, std::move(done));
}

void SendRegister(Stub& stub, grpc::ClientContext* ctx,
                  const RegisterNodeRequest* req, RegisterNodeResponse* resp,
                  Callback done) {
  stub.async()->RegisterNode(ctx, req, resp, std::move(done));
}

}  // namespace

RunResult RunHeartbeats(Target& target, Clock& clock,
                        const HeartbeatLoad& load) {
  using E = Engine<HeartbeatRequest, HeartbeatResponse>;
  E::Config config;
  config.concurrency = std::max(load.concurrency, 1);
  config.rate = load.rate;
  config.duration = load.duration;
  config.warmup = std::min(load.warmup, load.duration / 2);
  const int64_t nodes = std::max<int64_t>(load.nodes, 1);
  auto engine = std::make_shared<E>(
      target, clock, config,
      [&load, &clock, nodes](int64_t seq, HeartbeatRequest* req) {
        FillHeartbeat(load.shape, (load.first_node + seq) % nodes, seq,
                      clock.Now(), req);
      },
      SendHeartbeat);
  return engine->Run();
}

RunResult RunRegistrations(Target& target, Clock& clock,
                           const FleetShape& shape, int64_t first,
                           int64_t count, int concurrency) {
  using E = Engine<RegisterNodeRequest, RegisterNodeResponse>;
  E::Config config;
  config.concurrency = std::max(concurrency, 1);
  config.max_calls = std::max<int64_t>(count, 0);
  auto engine = std::make_shared<E>(
      target, clock, config,
      [&shape, first](int64_t seq, RegisterNodeRequest* req) {
        FillRegister(shape, first + seq, req);
      },
      SendRegister);
  return engine->Run();
}

RunResult RunHeartbeatRound(Target& target, Clock& clock,
                            const FleetShape& shape, int64_t count,
                            int concurrency) {
  using E = Engine<HeartbeatRequest, HeartbeatResponse>;
  E::Config config;
  config.concurrency = std::max(concurrency, 1);
  config.max_calls = std::max<int64_t>(count, 0);
  auto engine = std::make_shared<E>(
      target, clock, config,
      [&shape, &clock](int64_t seq, HeartbeatRequest* req) {
        FillHeartbeat(shape, seq, seq, clock.Now(), req);
      },
      SendHeartbeat);
  return engine->Run();
}

RunResult RunXidReports(Target& target, Clock& clock, const FleetShape& shape,
                        int64_t count, int xid, double rate, int concurrency) {
  using E = Engine<ReportHealthRequest, ReportHealthResponse>;
  E::Config config;
  config.concurrency = std::max(concurrency, 1);
  config.rate = rate;
  config.max_calls = std::max<int64_t>(count, 0);
  if (rate > 0) {
    config.duration = absl::Seconds(static_cast<double>(count) / rate);
  }
  const int gpus = std::max(shape.gpus_per_node, 1);
  auto engine = std::make_shared<E>(
      target, clock, config,
      [&shape, &clock, xid, gpus](int64_t seq, ReportHealthRequest* req) {
        FillXidReport(shape, seq, static_cast<int>(seq % gpus), xid,
                      clock.Now(), req);
      },
      SendReport);
  return engine->Run();
}

}  // namespace navarch::bench
