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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Checks what the control plane knows about a node (for scripts)."};
  app.name("agent-probe");
  std::string server = "127.0.0.1:50051", node_id, type, timeout_text = "60s";
  int min_gpus = 0;
  bool gpu_metrics = false;
  std::string health, status;
  std::vector<std::string> event_conditions;
  app.add_option("--server", server, "control plane HOST:PORT")
      ->capture_default_str();
  app.require_subcommand(1);
  auto* node = app.add_subcommand("node", "print the node as JSON");
  node->add_option("node_id", node_id)->required();
  auto* summary =
      app.add_subcommand("summary", "print the node as key=value lines");
  summary->add_option("node_id", node_id)->required();
  auto* events =
      app.add_subcommand("events", "print the node's events as JSON");
  events->add_option("node_id", node_id)->required();
  auto* issue = app.add_subcommand("issue", "issue a command; prints its id");
  issue->add_option("node_id", node_id)->required();
  issue
      ->add_option("type", type,
                   "cordon, uncordon, drain, run_diagnostic, terminate")
      ->required();
  auto* wait = app.add_subcommand("wait", "wait until the node matches");
  wait->add_option("node_id", node_id)->required();
  wait->add_option("--min-gpus", min_gpus,
                   "at least this many GPUs registered");
  wait->add_flag("--gpu-metrics", gpu_metrics,
                 "a heartbeat with a temperature for every GPU");
  wait->add_option("--health", health, "health status, e.g. unhealthy");
  wait->add_option("--status", status, "node status, e.g. active");
  wait->add_option(
      "--event", event_conditions,
      "an event whose details have KEY=VALUE (e.g. metric.xid_code=79), "
      "optionally of given kinds: "
      "'command.succeeded|command.failed/command_id=ID'");
  wait->add_option("--timeout", timeout_text, "give up after this long")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (absl::StartsWith(server, "http://")) server = server.substr(7);
  auto stub = navarch::ControlPlaneService::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));

  if (*node || *events || *summary) {
    if (*node || *summary) {
      navarch::GetNodeRequest req;
      req.set_node_id(node_id);
      navarch::GetNodeResponse resp;
      grpc::Status s = stub->GetNode(Context().get(), req, &resp);
      if (!s.ok()) {
        std::cerr << "agent-probe: GetNode: " << s.error_message() << "\n";
        return 1;
      }
      if (*node) {
        std::cout << Json(resp.node());
      } else {
        PrintSummary(resp.node());
      }
    } else {
      navarch::ListEventsRequest req;
      req.set_node_id(node_id);
      req.set_page_size(1000);
      navarch::ListEventsResponse resp;
      grpc::Status s = stub->ListEvents(Context().get(), req, &resp);
      if (!s.ok()) {
        std::cerr << "agent-probe: ListEvents: " << s.error_message() << "\n";
        return 1;
      }
      std::cout << Json(resp);
    }
    return 0;
  }

  if (*issue) {
    auto t = navarch::ParseCommandType(type);
    if (!t.ok()) {
      std::cerr << "agent-probe: " << t.status().message() << "\n";
      return 2;
    }
    navarch::IssueCommandRequest req;
    req.set_node_id(node_id);
    req.set_command_type(*t);
    navarch::IssueCommandResponse resp;
    grpc::Status s = stub->IssueCommand(Context().get(), req, &resp);
    if (!s.ok()) {
      std::cerr << "agent-probe: IssueCommand: " << s.error_message() << "\n";
      return 1;
    }
    std::cout << resp.command_id() << "\n";
    return 0;
  }

  auto timeout = navarch::ParseGoDuration(timeout_text);
  if (!timeout.ok()) {
    std::cerr << "agent-probe: --timeout: " << timeout.status().message()
              << "\n";
    return 2;
  }
  navarch::RealClock& clock = navarch::RealClock::Default();
  absl::Duration deadline = clock.SteadyNow() + *timeout;
  std::vector<std::string> unmet, matched;
  for (;;) {
    unmet.clear();
    matched.clear();
    navarch::GetNodeRequest req;
    req.set_node_id(node_id);
    navarch::GetNodeResponse resp;
    grpc::Status s = stub->GetNode(Context().get(), req, &resp);
    if (!s.ok()) {
      unmet.push_back(absl::StrCat("node readable (", s.error_message(), ")"));
    } else {
      const navarch::NodeInfo& n = resp.node();
      if (n.gpus_size() < min_gpus) {
        unmet.push_back(absl::StrCat("at least ", min_gpus, " GPUs (has ",
                                     n.gpus_size(), ")"));
      }
      if (gpu_metrics) {
        const auto& m = n.last_metrics().gpu_metrics();
        bool all = m.size() >= n.gpus_size() && n.gpus_size() > 0;
        for (const auto& g : m) all = all && g.temperature() > 0;
        if (!all) unmet.push_back("a heartbeat with every GPU's temperature");
      }
      if (!health.empty() && navarch::ShortName(n.health_status()) != health) {
        unmet.push_back(absl::StrCat("health ", health, " (is ",
                                     navarch::ShortName(n.health_status()),
                                     ")"));
      }
      if (!status.empty() && navarch::ShortName(n.status()) != status) {
        unmet.push_back(absl::StrCat("status ", status, " (is ",
                                     navarch::ShortName(n.status()), ")"));
      }
      if (!event_conditions.empty()) {
        navarch::ListEventsRequest ereq;
        ereq.set_node_id(node_id);
        ereq.set_page_size(1000);
        navarch::ListEventsResponse eresp;
        grpc::Status es = stub->ListEvents(Context().get(), ereq, &eresp);
        for (const std::string& cond : event_conditions) {
          // [KIND|KIND/]KEY=VALUE
          std::string rest = cond;
          std::vector<std::string> kinds;
          if (size_t slash = rest.find('/'); slash != std::string::npos) {
            kinds = absl::StrSplit(rest.substr(0, slash), '|');
            rest = rest.substr(slash + 1);
          }
          size_t eq = rest.find('=');
          std::string key = rest.substr(0, eq);
          std::string value =
              eq == std::string::npos ? "" : rest.substr(eq + 1);
          bool found = false;
          for (const auto& e : eresp.events()) {
            if (!kinds.empty() && std::find(kinds.begin(), kinds.end(),
                                            e.kind()) == kinds.end()) {
              continue;
            }
            auto it = e.details().find(key);
            if (it != e.details().end() &&
                (eq == std::string::npos || it->second == value)) {
              found = true;
              matched.push_back(absl::StrCat(e.kind(), ": ", e.message()));
            }
          }
          if (!es.ok() || !found)
            unmet.push_back(absl::StrCat("an event with ", cond));
        }
      }
      if (unmet.empty()) {
        for (const std::string& m : matched)
          std::cerr << "agent-probe: matched " << m << "\n";
        std::cout << Json(n);
        return 0;
      }
    }
    if (clock.SteadyNow() >= deadline) break;
    Pause(clock, absl::Milliseconds(200));
  }
  std::cerr << "agent-probe: timed out after " << timeout_text
            << " waiting for: " << absl::StrJoin(unmet, "; ") << "\n";
  return 1;
}
