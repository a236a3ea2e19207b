// `navarch explain NODE`: why a node is in its status — the chain of
// decisions from the event log (registration, health verdicts with their
// rules and evidence, status changes with their reasons, operator commands),
// newest last. For an instance that never registered a node (its bootstrap
// failed, say) it explains the instance instead.
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/api/json.h"
#include "navarch/api/names.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"

namespace navarch::cli {
namespace {

constexpr int kPage = 1000;
constexpr int kMaxEvents = 20000;

// Events that changed, or explain, the node's status; deliveries and healthy
// verdicts are noise here.
bool IsDecision(const Event& e) {
  if (e.kind() == "health.event") {
    auto r = e.details().find("result");
    return r != e.details().end() && r->second != "healthy";
  }
  return e.kind() == "node.registered" || e.kind() == "node.reregistered" ||
         e.kind() == "node.status_changed" ||
         e.kind() == "node.health_changed" || e.kind() == "command.issued" ||
         e.kind() == "command.succeeded" || e.kind() == "command.failed" ||
         e.kind() == "policy.rule_error" ||
         absl::StartsWith(e.kind(), "instance.");
}

// The node's decisions, oldest first; `seen` counts every event read.
absl::StatusOr<std::vector<Event>> ReadDecisions(Client& client,
                                                 const std::string& node_id,
                                                 int& seen) {
  std::vector<Event> decisions;
  ListEventsRequest req;
  req.set_node_id(node_id);
  req.set_page_size(kPage);
  while (seen < kMaxEvents) {
    NAVARCH_ASSIGN_OR_RETURN(ListEventsResponse page, client.ListEvents(req));
    seen += page.events_size();
    for (auto& e : *page.mutable_events()) {
      if (IsDecision(e)) decisions.push_back(std::move(e));
    }
    if (page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  return decisions;
}

// The subject: the node, or the instance when no node registered under the
// id (a machine whose bootstrap failed never becomes a node).
struct Subject {
  std::optional<NodeInfo> node;
  std::optional<InstanceInfo> instance;
};

absl::StatusOr<Subject> ReadSubject(Client& client, const std::string& id) {
  GetNodeRequest get;
  get.set_node_id(id);
  absl::StatusOr<GetNodeResponse> node = client.GetNode(get);
  Subject subject;
  if (node.ok()) {
    subject.node = node->node();
    return subject;
  }
  if (node.status().code() != absl::StatusCode::kNotFound) return node.status();
  GetInstanceRequest gi;
  gi.set_instance_id(id);
  absl::StatusOr<GetInstanceResponse> inst = client.GetInstance(gi);
  if (!inst.ok()) return node.status();
  subject.instance = inst->instance();
  return subject;
}

void PrintSubject(const Subject& subject, std::ostream& os) {
  if (subject.node) {
    const NodeInfo& n = *subject.node;
    os << "Node " << n.node_id() << " is " << ShortName(n.status())
       << " (health " << ShortName(n.health_status()) << ")";
    if (!n.status_reason().empty()) os << ": " << n.status_reason();
  } else {
    const InstanceInfo& i = *subject.instance;
    os << "Instance " << i.instance_id() << " is " << ShortName(i.state())
       << " (no node registered)";
    if (!i.status_message().empty()) os << ": " << i.status_message();
  }
  os << "\n\n";
}

absl::Status Explain(const std::string& node_id, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  NAVARCH_ASSIGN_OR_RETURN(Subject subject, ReadSubject(*client, node_id));
  int seen = 0;
  NAVARCH_ASSIGN_OR_RETURN(std::vector<Event> decisions,
                           ReadDecisions(*client, node_id, seen));
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json j = nlohmann::json::object();
    if (subject.node) j["node"] = ToJson(*subject.node);
    if (subject.instance) j["instance"] = ToJson(*subject.instance);
    j["decisions"] = nlohmann::json::array();
    for (const auto& e : decisions) j["decisions"].push_back(ToJson(e));
    out.Json(j);
    return absl::OkStatus();
  }
  absl::Time now = s.clock().Now();
  PrintSubject(subject, out.out());
  if (decisions.empty()) {
    out.out() << "No decisions recorded for this "
              << (subject.node ? "node" : "instance") << ".\n";
    return absl::OkStatus();
  }
  Table table({"TIME", "AGE", "KIND", "ACTOR", "DECISION"});
  for (const auto& e : decisions) {
    std::string what = e.message();
    if (auto r = e.details().find("rule"); r != e.details().end() &&
                                           !r->second.empty() &&
                                           e.kind() == "health.event") {
      what = absl::StrCat(e.details().at("result"), " by rule ", r->second,
                          ": ", e.message());
    }
    table.AddRow(
        {Absolute(e.time()), Ago(e.time(), now), e.kind(), e.actor(), what});
  }
  table.Print(out.out(), out.color());
  if (seen >= kMaxEvents) {
    out.err() << "(only the first " << kMaxEvents
              << " events of this node were read)\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddExplainCommand(CLI::App& app, CommandSet& commands) {
  auto node = std::make_shared<std::string>();
  CLI::App* e =
      commands.Add(&app, "explain",
                   "why a node is in its status: the decisions that brought it "
                   "there, newest last",
                   [node](Session& s) { return Explain(*node, s); });
  e->add_option("node", *node, "node id")->required();
}

}  // namespace navarch::cli
