// Instance commands: the cloud VMs behind the nodes, as the control plane
// tracks them (provisioning, running, terminated, failed).
#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "navarch/api/json.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "navarch/cli/parse.h"

namespace navarch::cli {
namespace {

struct ListFlags {
  std::string pool, provider, region, state;
  int page_size = kListPageSize;
};

absl::Status List(const ListFlags& f, Session& s) {
  ListInstancesRequest req;
  req.set_pool_name(f.pool);
  req.set_provider(f.provider);
  req.set_region(f.region);
  if (!f.state.empty()) {
    auto st = ParseInstanceState(f.state);  // checked by CLI11 already
    if (!st.ok()) return UsageError(st.status().message());
    req.set_state(*st);
  }
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  NAVARCH_ASSIGN_OR_RETURN(std::vector<InstanceInfo> all,
                           client->ListAllInstances(req, f.page_size));
  std::vector<const InstanceInfo*> items;
  for (const auto& i : all) items.push_back(&i);
  std::sort(items.begin(), items.end(),
            [](const InstanceInfo* a, const InstanceInfo* b) {
              return a->instance_id() < b->instance_id();
            });
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto* i : items) array.push_back(ToJson(*i));
    out.Json(array);
    return absl::OkStatus();
  }
  if (items.empty()) {
    out.out() << "No instances found\n";
    return absl::OkStatus();
  }
  Table table({"INSTANCE ID", "POOL", "PROVIDER", "REGION", "ZONE",
               "INSTANCE TYPE", "STATE", "NODE ID", "CREATED"});
  absl::Time now = s.clock().Now();
  for (const auto* i : items) {
    table.AddRow({i->instance_id(), i->pool_name(), i->provider(), i->region(),
                  i->zone(), i->instance_type(),
                  Cell(Title(i->state()), ColorOf(i->state())), i->node_id(),
                  Ago(i->created_at(), now)});
  }
  table.Print(out.out(), out.color());
  return absl::OkStatus();
}

const char* BootstrapStateName(BootstrapState state) {
  switch (state) {
    case BOOTSTRAP_STATE_RUNNING:
      return "running";
    case BOOTSTRAP_STATE_SUCCEEDED:
      return "succeeded";
    case BOOTSTRAP_STATE_FAILED:
      return "failed";
    default:
      return "none";
  }
}

// Each line of `text` indented, and a newline at the end.
void PrintIndented(const std::string& label, const std::string& text,
                   std::ostream& os) {
  if (text.empty()) return;
  os << "     " << label << ":\n";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    os << "       " << line << "\n";
  }
}

// The SSH bootstrap: where it stands, then each step with its output.
void PrintBootstrap(const InstanceBootstrap& b, absl::Time now,
                    std::ostream& os) {
  os << "\nBootstrap: " << BootstrapStateName(b.state()) << " (SSH to "
     << b.host();
  if (!b.host_key_fingerprint().empty()) {
    os << ", host key " << b.host_key_fingerprint();
  }
  os << ", " << b.host_key_policy() << ")";
  if (b.has_started_at()) os << ", started " << Ago(b.started_at(), now);
  if (b.has_finished_at()) {
    os << ", took "
       << absl::FormatDuration(FromTimestamp(b.finished_at()) -
                               FromTimestamp(b.started_at()));
  }
  os << "\n";
  if (b.ssh_wait_ms() > 0) {
    os << "  waited "
       << absl::FormatDuration(absl::Milliseconds(b.ssh_wait_ms()))
       << " for sshd\n";
  }
  if (!b.error().empty()) os << "  error: " << b.error() << "\n";
  for (int n = 0; n < b.steps_size(); ++n) {
    const BootstrapStep& step = b.steps(n);
    os << "  " << n + 1 << ". " << step.command() << "\n     "
       << (step.timed_out() ? "timed out, killed"
                            : absl::StrCat("exit ", step.exit_code()))
       << " after "
       << absl::FormatDuration(absl::Milliseconds(step.duration_ms())) << "\n";
    PrintIndented("stdout",
                  std::string(absl::StripSuffix(step.stdout_text(), "\n")), os);
    PrintIndented("stderr",
                  std::string(absl::StripSuffix(step.stderr_text(), "\n")), os);
  }
}

absl::Status Get(const std::string& id, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  GetInstanceRequest req;
  req.set_instance_id(id);
  NAVARCH_ASSIGN_OR_RETURN(GetInstanceResponse resp, client->GetInstance(req));
  Output& out = s.output();
  if (out.json()) {
    out.Json(ToJson(resp.instance()));
    return absl::OkStatus();
  }
  const InstanceInfo& i = resp.instance();
  absl::Time now = s.clock().Now();
  Fields f;
  f.Add("Instance ID", i.instance_id())
      .Add("Pool", i.pool_name())
      .Add("Provider", i.provider())
      .Add("Region", i.region())
      .Add("Zone", i.zone())
      .Add("Instance Type", i.instance_type())
      .Add("State", Cell(Title(i.state()), ColorOf(i.state())))
      .Add("Status Message", i.status_message())
      .Add("Node ID", i.node_id())
      .Add("Created", When(i.created_at(), now, ""))
      .Add("Ready", When(i.ready_at(), now, ""))
      .Add("Terminated", When(i.terminated_at(), now, ""));
  f.Print(out.out(), out.color());
  if (i.has_bootstrap()) PrintBootstrap(i.bootstrap(), now, out.out());
  if (!i.labels().empty()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : i.labels()) labels.push_back(k + "=" + v);
    std::sort(labels.begin(), labels.end());
    out.out() << "\nLabels:\n";
    for (const auto& l : labels) out.out() << "  " << l << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddInstanceCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group = app.add_subcommand(
      "instances", "cloud instances the control plane provisioned or tracks");
  group->alias("instance");
  group->require_subcommand(1);

  auto list = std::make_shared<ListFlags>();
  CLI::App* l = commands.Add(group, "list", "list instances",
                             [list](Session& s) { return List(*list, s); });
  l->add_option("--pool", list->pool, "only this pool");
  l->add_option("--provider", list->provider, "only this provider");
  l->add_option("--region", list->region, "only this region");
  l->add_option("--state", list->state,
                "only this state: provisioning, pending_registration, "
                "running, terminating, terminated, failed")
      ->check(Checked("STATE", ParseInstanceState));
  l->add_option("--page-size", list->page_size,
                "instances asked for per call (the CLI follows the pages)")
      ->check(CLI::Range(1, 10000));

  auto id = std::make_shared<std::string>();
  CLI::App* g = commands.Add(group, "get", "show one instance",
                             [id](Session& s) { return Get(*id, s); });
  g->add_option("INSTANCE", *id, "instance ID")->required();
}

}  // namespace navarch::cli
