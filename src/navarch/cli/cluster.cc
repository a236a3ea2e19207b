// Cluster commands: status (the replicas sharing one database, who leads).
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/json.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"

namespace navarch::cli {
namespace {

std::string Seen(double seconds) {
  if (seconds < 1) return "now";
  return absl::StrCat(
      FormatGoDuration(absl::Seconds(static_cast<int64_t>(seconds))), " ago");
}

absl::Status Status(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  NAVARCH_ASSIGN_OR_RETURN(GetClusterResponse resp,
                           client->GetCluster(GetClusterRequest()));
  Output& out = s.output();
  if (out.json()) {
    out.Json(ToJson(resp));
    return absl::OkStatus();
  }
  if (!resp.replicated()) {
    out.out() << "One control plane (no replicas): " << resp.leader()
              << " leads\n\n";
  } else if (resp.leader().empty()) {
    out.out() << "No leader: the lease (epoch " << resp.epoch()
              << ") has run out; a replica takes it within a lease\n\n";
  } else {
    out.out() << absl::StrFormat("Leader: %s (epoch %d, lease %.1fs left)\n\n",
                                 resp.leader(), resp.epoch(),
                                 resp.lease_seconds_left());
  }
  Table table({"REPLICA", "ROLE", "GRPC", "HTTP", "VERSION", "LAST SEEN"});
  for (const ReplicaInfo& r : resp.replicas()) {
    table.AddRow({r.replica_id(), r.leader() ? "leader" : "follower",
                  r.grpc_address(), r.http_address(),
                  r.version().empty() ? "-" : r.version(),
                  resp.replicated() ? Seen(r.seconds_since_seen()) : "now"});
  }
  table.Print(out.out(), out.color());
  return absl::OkStatus();
}

}  // namespace

void AddClusterCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group = app.add_subcommand(
      "cluster", "the control planes sharing one database: who leads");
  group->require_subcommand(1);
  commands.Add(group, "status",
               "list the replicas, the leader, its epoch and when each was "
               "last heard of",
               [](Session& s) { return Status(s); });
}

}  // namespace navarch::cli
