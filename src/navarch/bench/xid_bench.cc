#include "navarch/bench/xid_bench.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "navarch/api/time_util.h"

namespace navarch::bench {
namespace {

struct NodeTimes {
  absl::Time reported = absl::InfiniteFuture();
  absl::Time decided = absl::InfiniteFuture();
  absl::Time started = absl::InfiniteFuture();
  absl::Time provisioned = absl::InfiniteFuture();
};

// Reads every event since `since` into `times` (only the nodes it holds).
absl::Status ReadEvents(Target& target, absl::Time since, int xid,
                        std::map<std::string, NodeTimes>& times,
                        std::string& provision_kind, int64_t& events_read) {
  const std::string xid_code = absl::StrCat(xid);
  std::string token;
  for (;;) {
    ListEventsRequest req;
    *req.mutable_since() = ToTimestamp(since);
    req.set_page_size(1000);
    req.set_page_token(token);
    ListEventsResponse resp;
    grpc::ClientContext ctx;
    target.Prepare(&ctx);
    grpc::Status s = target.stub(0).ListEvents(&ctx, req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("ListEvents: ", s.error_message()));
    }
    for (const Event& e : resp.events()) {
      ++events_read;
      const auto& d = e.details();
      // The replacement names the node it replaces; its own node_id is the
      // new instance's.
      if (auto r = d.find("replaces"); r != d.end()) {
        auto it = times.find(r->second);
        if (it != times.end()) {
          absl::Time t = FromTimestamp(e.time());
          if (t < it->second.provisioned) {
            it->second.provisioned = t;
            if (provision_kind.empty()) provision_kind = e.kind();
          }
        }
        continue;
      }
      auto it = times.find(e.node_id());
      if (it == times.end()) continue;
      NodeTimes& nt = it->second;
      const absl::Time t = FromTimestamp(e.time());
      if (e.kind() == "pool.replacement_started") {
        nt.started = std::min(nt.started, t);
      } else if (e.kind() == "pool.replacement_provisioned") {
        if (t < nt.provisioned) {
          nt.provisioned = t;
          if (provision_kind.empty()) provision_kind = e.kind();
        }
      } else if (e.kind() == "health.event") {
        auto code = d.find("metric.xid_code");
        if (code == d.end() || code->second != xid_code) continue;
        nt.reported = std::min(nt.reported, FromTimestamp(e.time()));
      } else if (e.kind() == "node.status_changed") {
        auto to = d.find("to");
        if (to != d.end() && to->second == "NODE_STATUS_UNHEALTHY") {
          nt.decided = std::min(nt.decided, FromTimestamp(e.time()));
        }
      }
    }
    token = resp.next_page_token();
    if (token.empty()) return absl::OkStatus();
  }
}

}  // namespace

absl::StatusOr<XidResult> RunXidBench(Target& target, Clock& clock,
                                      const XidOptions& options) {
  XidResult result;
  result.nodes = options.nodes;
  if (options.register_nodes) {
    result.registration = RunRegistrations(
        target, clock, options.shape, 0, std::max(options.fleet, options.nodes),
        options.concurrency);
    if (result.registration.errors > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "registration failed: ", result.registration.first_error));
    }
  }
  // A second of slack: the log's times come from the server's clock.
  const absl::Time since = clock.Now() - absl::Seconds(1);
  result.reports =
      RunXidReports(target, clock, options.shape, options.nodes, options.xid,
                    options.rate, options.concurrency);

  std::map<std::string, NodeTimes> times;
  for (int64_t i = 0; i < options.nodes; ++i)
    times[NodeId(options.shape, i)] = NodeTimes{};
  const absl::Duration start = clock.SteadyNow();
  for (;;) {
    for (auto& [id, t] : times) t = NodeTimes{};
    result.provision_kind.clear();
    result.events_read = 0;
    if (absl::Status s = ReadEvents(target, since, options.xid, times,
                                    result.provision_kind, result.events_read);
        !s.ok()) {
      return s;
    }
    int64_t decided = 0, started = 0, provisioned = 0;
    for (const auto& [id, t] : times) {
      if (t.decided != absl::InfiniteFuture()) ++decided;
      if (t.started != absl::InfiniteFuture()) ++started;
      if (t.provisioned != absl::InfiniteFuture()) ++provisioned;
    }
    result.decided = decided;
    result.started = started;
    result.provisioned = provisioned;
    absl::Duration waited = clock.SteadyNow() - start;
    bool decisions_done =
        decided == options.nodes || waited >= options.decision_timeout;
    bool provisions_done =
        provisioned == options.nodes || waited >= options.provision_timeout;
    if (decisions_done && provisions_done) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  for (const auto& [id, t] : times) {
    if (t.reported == absl::InfiniteFuture()) continue;
    if (t.decided != absl::InfiniteFuture()) {
      result.decision->Record(t.decided - t.reported);
    }
    if (t.started != absl::InfiniteFuture())
      result.replacement_started->Record(t.started - t.reported);
    if (t.provisioned != absl::InfiniteFuture())
      result.provision->Record(t.provisioned - t.reported);
  }
  return result;
}

}  // namespace navarch::bench
