// Node commands: list, get, cordon, uncordon, drain, terminate.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "navarch/api/json.h"
#include "navarch/api/names.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "navarch/cli/listing.h"
#include "navarch/cli/parse.h"

namespace navarch::cli {
namespace {

// A heartbeat older than this earns a warning before an operator acts on
// the node: the command may never reach it. Upstream's threshold.
constexpr absl::Duration kStaleHeartbeat = absl::Minutes(2);

struct ListFlags {
  std::string provider, region, zone, pool, status, health;
  std::vector<std::string> labels;
  int page_size = kListPageSize;
  bool all_contexts = false;
};

// Filters the server cannot apply (ListNodesRequest has provider, region
// and status only) are applied here, after the call.
struct ClientFilter {
  std::string zone, pool;
  std::optional<HealthStatus> health;
  std::vector<LabelSelector> labels;

  bool Keep(const NodeInfo& n) const {
    if (!zone.empty() && n.zone() != zone) return false;
    if (!pool.empty() && n.pool() != pool) return false;
    if (health && n.health_status() != *health) return false;
    for (const auto& sel : labels) {
      if (!Matches(sel, n.metadata().labels())) return false;
    }
    return true;
  }
};

// One control plane's nodes that `filter` keeps, sorted by id: the
// server's order is arbitrary (upstream's is random); sorted output can be
// diffed and read.
Listing NodeListing(const std::vector<NodeInfo>& all,
                    const ClientFilter& filter, absl::Time now) {
  std::vector<const NodeInfo*> nodes;
  for (const auto& n : all) {
    if (filter.Keep(n)) nodes.push_back(&n);
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const NodeInfo* a, const NodeInfo* b) {
              return a->node_id() < b->node_id();
            });
  Listing l;
  l.headers = {"NODE ID", "PROVIDER", "REGION",         "ZONE", "INSTANCE TYPE",
               "STATUS",  "HEALTH",   "LAST HEARTBEAT", "GPUs"};
  for (const auto* n : nodes) {
    l.items.push_back(ToJson(*n));
    l.rows.push_back(
        {n->node_id(), n->provider(), n->region(), n->zone(),
         n->instance_type(), Cell(Title(n->status()), ColorOf(n->status())),
         Cell(Title(n->health_status()), ColorOf(n->health_status())),
         Ago(n->last_heartbeat(), now), absl::StrCat(n->gpus_size())});
  }
  return l;
}

absl::Status List(const ListFlags& f, Session& s) {
  ListNodesRequest req;
  req.set_provider(f.provider);
  req.set_region(f.region);
  ClientFilter filter{f.zone, f.pool, std::nullopt, {}};
  if (!f.status.empty()) {
    auto st = ParseStatusFilter(f.status);  // checked by CLI11 already
    if (!st.ok()) return UsageError(st.status().message());
    if (*st) req.set_status(**st);
  }
  if (!f.health.empty()) {
    auto h = ParseHealthStatus(f.health);
    if (!h.ok()) return UsageError(h.status().message());
    filter.health = *h;
  }
  for (const auto& l : f.labels) {
    auto sel = ParseLabelSelector(l);
    if (!sel.ok()) return UsageError(sel.status().message());
    filter.labels.push_back(*sel);
  }
  absl::Time now = s.clock().Now();
  return RunListing(s, f.all_contexts, "No nodes found",
                    [&](Client& client) -> absl::StatusOr<Listing> {
                      NAVARCH_ASSIGN_OR_RETURN(
                          std::vector<NodeInfo> all,
                          client.ListAllNodes(req, f.page_size));
                      return NodeListing(all, filter, now);
                    });
}

void PrintNode(const NodeInfo& n, absl::Time now, Output& out) {
  std::ostream& o = out.out();
  bool color = out.color();
  Fields head;
  head.Add("Node ID", n.node_id())
      .Add("Pool", n.pool())
      .Add("Provider", n.provider())
      .Add("Region", n.region())
      .Add("Zone", n.zone())
      .Add("Instance Type", n.instance_type())
      .Add("Status", Cell(Title(n.status()), ColorOf(n.status())));
  if (!n.status_reason().empty()) head.Add("Status Reason", n.status_reason());
  head.Add("Health", Cell(Title(n.health_status()), ColorOf(n.health_status())))
      .Add("Last Heartbeat", When(n.last_heartbeat(), now))
      .Add("Last Health Check", When(n.last_health_check(), now))
      .Add("Registered", When(n.registered_at(), now));
  head.Print(o, color);

  o << "\nGPUs:";
  if (n.gpus_size() == 0) o << " none";
  o << "\n";
  for (const auto& g : n.gpus()) {
    o << "  GPU " << g.index() << ":\n";
    Fields gpu(4);
    gpu.Add("UUID", g.uuid())
        .Add("Name", g.name())
        .Add("PCI Bus ID", g.pci_bus_id());
    if (g.memory_total() > 0) gpu.Add("Memory", Bytes(g.memory_total()));
    if (!g.driver_version().empty()) gpu.Add("Driver", g.driver_version());
    if (!g.cuda_version().empty()) gpu.Add("CUDA", g.cuda_version());
    gpu.Print(o, color);
  }

  const NodeMetadata& m = n.metadata();
  Fields meta(2);
  if (!m.hostname().empty()) meta.Add("Hostname", m.hostname());
  if (!m.internal_ip().empty()) meta.Add("Internal IP", m.internal_ip());
  if (!m.external_ip().empty()) meta.Add("External IP", m.external_ip());
  if (!m.kernel_version().empty()) meta.Add("Kernel", m.kernel_version());
  o << "\nMetadata:\n";
  meta.Print(o, color);

  if (!m.labels().empty()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : m.labels()) labels.push_back(k + "=" + v);
    std::sort(labels.begin(), labels.end());
    o << "\nLabels:\n";
    for (const auto& l : labels) o << "  " << l << "\n";
  }

  if (n.has_last_metrics()) {
    const NodeMetrics& mt = n.last_metrics();
    o << "\nLast Metrics:\n";
    Fields f(2);
    f.Add("CPU", Percent(mt.cpu_usage_percent()))
        .Add("Memory", Percent(mt.memory_usage_percent()));
    for (const auto& g : mt.gpu_metrics()) {
      f.Add(absl::StrCat("GPU ", g.gpu_index()),
            absl::StrCat(g.temperature(), "°C, ", g.power_usage(), " W, ",
                         Percent(g.utilization_percent()), " busy, ",
                         Bytes(g.memory_used()), " used"));
    }
    f.Print(o, color);
  }
}

absl::Status Get(const std::string& id, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  GetNodeRequest req;
  req.set_node_id(id);
  NAVARCH_ASSIGN_OR_RETURN(GetNodeResponse resp, client->GetNode(req));
  if (s.output().json()) {
    s.output().Json(ToJson(resp.node()));
  } else {
    PrintNode(resp.node(), s.clock().Now(), s.output());
  }
  return absl::OkStatus();
}

struct Action {
  NodeCommandType type;
  const char* name;
  const char* description;
  const char* done;  // "Node X <done>"
};

constexpr Action kActions[] = {
    {NODE_COMMAND_TYPE_CORDON, "cordon",
     "mark a node unschedulable; running work stays", "cordoned"},
    {NODE_COMMAND_TYPE_UNCORDON, "uncordon",
     "make a cordoned node schedulable again", "uncordoned"},
    {NODE_COMMAND_TYPE_DRAIN, "drain",
     "cordon a node and ask the scheduler to move its work away", "draining"},
    {NODE_COMMAND_TYPE_TERMINATE, "terminate",
     "ask the node's agent to shut the node down (command queued)",
     "terminate command queued"},
};

absl::Status Act(const Action& action, const std::string& id,
                 const std::string& reason, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  // Upstream looks first too: acting on a node that stopped talking is
  // allowed but worth a word.
  GetNodeRequest get;
  get.set_node_id(id);
  NAVARCH_ASSIGN_OR_RETURN(GetNodeResponse node, client->GetNode(get));
  const NodeInfo& n = node.node();
  if (n.status() != NODE_STATUS_TERMINATED) {
    if (!IsSet(n.last_heartbeat())) {
      s.output().Warn(absl::StrCat("node ", id,
                                   " has never sent a heartbeat (may be "
                                   "offline)"));
    } else if (s.clock().Now() - FromTimestamp(n.last_heartbeat()) >
               kStaleHeartbeat) {
      s.output().Warn(absl::StrCat("node ", id, " last heartbeat was ",
                                   Ago(n.last_heartbeat(), s.clock().Now()),
                                   " (may be offline)"));
    }
  }
  IssueCommandRequest req;
  req.set_node_id(id);
  req.set_command_type(action.type);
  if (!reason.empty()) (*req.mutable_parameters())["reason"] = reason;
  NAVARCH_ASSIGN_OR_RETURN(IssueCommandResponse resp,
                           client->IssueCommand(req));
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json j = ToJson(resp);
    j["node_id"] = id;
    j["command_type"] = NodeCommandType_Name(action.type);
    j["parameters"] = ToJson(req)["parameters"];
    out.Json(j);
  } else {
    out.out() << "Node " << id << " " << action.done << "\n"
              << "Command ID: " << resp.command_id() << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddNodeCommands(CLI::App& app, CommandSet& commands) {
  auto list = std::make_shared<ListFlags>();
  CLI::App* l = commands.Add(&app, "list", "list nodes",
                             [list](Session& s) { return List(*list, s); });
  l->add_option("--provider", list->provider, "only this provider");
  l->add_option("--region", list->region, "only this region");
  l->add_option("--zone", list->zone, "only this zone");
  l->add_option("--pool", list->pool, "only this pool");
  l->add_option("--status", list->status,
                "only this status: active, cordoned, draining, unhealthy, "
                "terminated")
      ->check(Checked("STATUS", ParseStatusFilter));
  l->add_option("--health", list->health,
                "only this health: healthy, degraded, unhealthy, unknown")
      ->check(Checked("HEALTH", ParseHealthStatus));
  l->add_option("--label", list->labels,
                "only nodes with this label (key=value or key); repeatable, "
                "all must match")
      ->check(Checked("LABEL", ParseLabelSelector));
  l->add_option("--page-size", list->page_size,
                "nodes asked for per call (the CLI follows the pages)")
      ->check(CLI::Range(1, 10000));
  AddAllContextsFlag(l, &list->all_contexts);

  auto id = std::make_shared<std::string>();
  CLI::App* g = commands.Add(&app, "get", "show one node in detail",
                             [id](Session& s) { return Get(*id, s); });
  g->add_option("NODE", *id, "node ID")->required();

  for (const Action& a : kActions) {
    struct ActFlags {
      std::string id, reason;
    };
    auto f = std::make_shared<ActFlags>();
    CLI::App* c = commands.Add(
        &app, a.name, a.description,
        [f, &a](Session& s) { return Act(a, f->id, f->reason, s); });
    c->add_option("NODE", f->id, "node ID")->required();
    c->add_option("--reason", f->reason,
                  "why, for the event log and the notifier");
  }
}

}  // namespace navarch::cli
