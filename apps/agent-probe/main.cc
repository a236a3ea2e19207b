// agent-probe: a small client for scripts that check a node agent end to end
// (scripts/gpu-smoke): prints what the control plane knows about a node as
// JSON, waits until conditions hold, issues commands. Not the operator CLI.
//
//   agent-probe --server ADDR node NODE_ID
//   agent-probe --server ADDR summary NODE_ID   (key=value lines, for shell
//   scripts) agent-probe --server ADDR events NODE_ID agent-probe --server ADDR
//   issue NODE_ID TYPE          (prints the command id) agent-probe --server
//   ADDR wait NODE_ID [--min-gpus N] [--gpu-metrics]
//       [--health H] [--status S] [--event [KIND|KIND/]KEY=VALUE]... [--timeout
//       60s]
// `wait` exits 0 and prints the node once every condition holds, 1 on timeout
// (saying which did not).
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "navarch/api/names.h"
#include "navarch/base/clock.h"
#include "navarch/base/duration.h"
#include "navarch/control_plane.grpc.pb.h"

namespace {

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// Waits on the injected clock, as everything in Navarch does.
void Pause(navarch::Clock& clock, absl::Duration d) {
  absl::Notification n;
  clock.Schedule(d, [&n] { n.Notify(); });
  n.WaitForNotification();
}

// One fact a line, so shell scripts need neither jq nor python.
void PrintSummary(const navarch::NodeInfo& n) {
  std::cout << "node_id=" << n.node_id() << "\n"
            << "status=" << navarch::ShortName(n.status()) << "\n"
            << "health=" << navarch::ShortName(n.health_status()) << "\n"
            << "gpus=" << n.gpus_size() << "\n"
            << "heartbeat=" << (n.has_last_heartbeat() ? "yes" : "no") << "\n"
            << "cpu_percent=" << n.last_metrics().cpu_usage_percent() << "\n"
            << "memory_percent=" << n.last_metrics().memory_usage_percent()
            << "\n";
  for (const auto& g : n.gpus()) {
    std::string p = absl::StrCat("gpu.", g.index(), ".");
    std::cout << p << "name=" << g.name() << "\n"
              << p << "uuid=" << g.uuid() << "\n"
              << p << "pci_bus_id=" << g.pci_bus_id() << "\n"
              << p << "memory_total=" << g.memory_total() << "\n"
              << p << "driver_version=" << g.driver_version() << "\n"
              << p << "cuda_version=" << g.cuda_version() << "\n";
  }
  for (const auto& m : n.last_metrics().gpu_metrics()) {
    std::string p = absl::StrCat("gpu.", m.gpu_index(), ".");
    std::cout << p << "temperature=" << m.temperature() << "\n"
              << p << "power_watts=" << m.power_usage() << "\n"
              << p << "utilization=" << m.utilization_percent() << "\n"
              << p << "memory_used=" << m.memory_used() << "\n";
  }
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(gpr_time_from_millis(5000, GPR_TIMESPAN));
  return ctx;
}

using Stub = navarch::ControlPlaneService::Stub;

struct Options {
  std::string server = "127.0.0.1:50051", node_id, type, timeout_text = "60s";
  int min_gpus = 0;
  bool gpu_metrics = false;
  std::string health, status;
  std::vector<std::string> event_conditions;
};

void AddWait(CLI::App& app, Options& o) {
  auto* wait = app.add_subcommand("wait", "wait until the node matches");
  wait->add_option("node_id", o.node_id)->required();
  wait->add_option("--min-gpus", o.min_gpus,
                   "at least this many GPUs registered");
  wait->add_flag("--gpu-metrics", o.gpu_metrics,
                 "a heartbeat with a temperature for every GPU");
  wait->add_option("--health", o.health, "health status, e.g. unhealthy");
  wait->add_option("--status", o.status, "node status, e.g. active");
  wait->add_option(
      "--event", o.event_conditions,
      "an event whose details have KEY=VALUE (e.g. metric.xid_code=79), "
      "optionally of given kinds: "
      "'command.succeeded|command.failed/command_id=ID'");
  wait->add_option("--timeout", o.timeout_text, "give up after this long")
      ->capture_default_str();
}

void AddSubcommands(CLI::App& app, Options& o) {
  app.add_option("--server", o.server, "control plane HOST:PORT")
      ->capture_default_str();
  app.require_subcommand(1);
  app.add_subcommand("node", "print the node as JSON")
      ->add_option("node_id", o.node_id)
      ->required();
  app.add_subcommand("summary", "print the node as key=value lines")
      ->add_option("node_id", o.node_id)
      ->required();
  app.add_subcommand("events", "print the node's events as JSON")
      ->add_option("node_id", o.node_id)
      ->required();
  auto* issue = app.add_subcommand("issue", "issue a command; prints its id");
  issue->add_option("node_id", o.node_id)->required();
  issue
      ->add_option("type", o.type,
                   "cordon, uncordon, drain, run_diagnostic, terminate")
      ->required();
  AddWait(app, o);
}

int PrintNode(Stub& stub, const Options& o, bool summary) {
  navarch::GetNodeRequest req;
  req.set_node_id(o.node_id);
  navarch::GetNodeResponse resp;
  grpc::Status s = stub.GetNode(Context().get(), req, &resp);
  if (!s.ok()) {
    std::cerr << "agent-probe: GetNode: " << s.error_message() << "\n";
    return 1;
  }
  if (summary) {
    PrintSummary(resp.node());
  } else {
    std::cout << Json(resp.node());
  }
  return 0;
}

grpc::Status ListEvents(Stub& stub, const std::string& node_id,
                        navarch::ListEventsResponse* resp) {
  navarch::ListEventsRequest req;
  req.set_node_id(node_id);
  req.set_page_size(1000);
  return stub.ListEvents(Context().get(), req, resp);
}

int PrintEvents(Stub& stub, const Options& o) {
  navarch::ListEventsResponse resp;
  grpc::Status s = ListEvents(stub, o.node_id, &resp);
  if (!s.ok()) {
    std::cerr << "agent-probe: ListEvents: " << s.error_message() << "\n";
    return 1;
  }
  std::cout << Json(resp);
  return 0;
}

int Issue(Stub& stub, const Options& o) {
  auto t = navarch::ParseCommandType(o.type);
  if (!t.ok()) {
    std::cerr << "agent-probe: " << t.status().message() << "\n";
    return 2;
  }
  navarch::IssueCommandRequest req;
  req.set_node_id(o.node_id);
  req.set_command_type(*t);
  navarch::IssueCommandResponse resp;
  grpc::Status s = stub.IssueCommand(Context().get(), req, &resp);
  if (!s.ok()) {
    std::cerr << "agent-probe: IssueCommand: " << s.error_message() << "\n";
    return 1;
  }
  std::cout << resp.command_id() << "\n";
  return 0;
}

// Whether an event of `events` matches `cond`, [KIND|KIND/]KEY=VALUE; each
// match is added to `matched`.
bool EventMatches(const navarch::ListEventsResponse& events,
                  const std::string& cond, std::vector<std::string>& matched) {
  std::string rest = cond;
  std::vector<std::string> kinds;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    kinds = absl::StrSplit(rest.substr(0, slash), '|');
    rest = rest.substr(slash + 1);
  }
  size_t eq = rest.find('=');
  std::string key = rest.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : rest.substr(eq + 1);
  bool found = false;
  for (const auto& e : events.events()) {
    if (!kinds.empty() &&
        std::find(kinds.begin(), kinds.end(), e.kind()) == kinds.end()) {
      continue;
    }
    auto it = e.details().find(key);
    if (it != e.details().end() &&
        (eq == std::string::npos || it->second == value)) {
      found = true;
      matched.push_back(absl::StrCat(e.kind(), ": ", e.message()));
    }
  }
  return found;
}

// The conditions of `wait` that node `n` does not meet yet.
void NodeConditions(const Options& o, const navarch::NodeInfo& n,
                    std::vector<std::string>& unmet) {
  if (n.gpus_size() < o.min_gpus) {
    unmet.push_back(absl::StrCat("at least ", o.min_gpus, " GPUs (has ",
                                 n.gpus_size(), ")"));
  }
  if (o.gpu_metrics) {
    const auto& m = n.last_metrics().gpu_metrics();
    bool all = m.size() >= n.gpus_size() && n.gpus_size() > 0;
    for (const auto& g : m) all = all && g.temperature() > 0;
    if (!all) unmet.push_back("a heartbeat with every GPU's temperature");
  }
  if (!o.health.empty() && navarch::ShortName(n.health_status()) != o.health) {
    unmet.push_back(absl::StrCat("health ", o.health, " (is ",
                                 navarch::ShortName(n.health_status()), ")"));
  }
  if (!o.status.empty() && navarch::ShortName(n.status()) != o.status) {
    unmet.push_back(absl::StrCat("status ", o.status, " (is ",
                                 navarch::ShortName(n.status()), ")"));
  }
}

// One look: true (and the node printed) once every condition holds.
bool CheckOnce(Stub& stub, const Options& o, std::vector<std::string>& unmet) {
  std::vector<std::string> matched;
  navarch::GetNodeRequest req;
  req.set_node_id(o.node_id);
  navarch::GetNodeResponse resp;
  grpc::Status s = stub.GetNode(Context().get(), req, &resp);
  if (!s.ok()) {
    unmet.push_back(absl::StrCat("node readable (", s.error_message(), ")"));
    return false;
  }
  NodeConditions(o, resp.node(), unmet);
  if (!o.event_conditions.empty()) {
    navarch::ListEventsResponse events;
    grpc::Status es = ListEvents(stub, o.node_id, &events);
    for (const std::string& cond : o.event_conditions) {
      if (!EventMatches(events, cond, matched) || !es.ok())
        unmet.push_back(absl::StrCat("an event with ", cond));
    }
  }
  if (!unmet.empty()) return false;
  for (const std::string& m : matched)
    std::cerr << "agent-probe: matched " << m << "\n";
  std::cout << Json(resp.node());
  return true;
}

int Wait(Stub& stub, const Options& o) {
  auto timeout = navarch::ParseGoDuration(o.timeout_text);
  if (!timeout.ok()) {
    std::cerr << "agent-probe: --timeout: " << timeout.status().message()
              << "\n";
    return 2;
  }
  navarch::RealClock& clock = navarch::RealClock::Default();
  absl::Duration deadline = clock.SteadyNow() + *timeout;
  std::vector<std::string> unmet;
  for (;;) {
    unmet.clear();
    if (CheckOnce(stub, o, unmet)) return 0;
    if (clock.SteadyNow() >= deadline) break;
    Pause(clock, absl::Milliseconds(200));
  }
  std::cerr << "agent-probe: timed out after " << o.timeout_text
            << " waiting for: " << absl::StrJoin(unmet, "; ") << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Checks what the control plane knows about a node (for scripts)."};
  app.name("agent-probe");
  Options o;
  AddSubcommands(app, o);
  CLI11_PARSE(app, argc, argv);

  std::string server = o.server;
  if (absl::StartsWith(server, "http://")) server = server.substr(7);
  auto stub = navarch::ControlPlaneService::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  if (app.got_subcommand("node")) return PrintNode(*stub, o, false);
  if (app.got_subcommand("summary")) return PrintNode(*stub, o, true);
  if (app.got_subcommand("events")) return PrintEvents(*stub, o);
  if (app.got_subcommand("issue")) return Issue(*stub, o);
  return Wait(*stub, o);
}
