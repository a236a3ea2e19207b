// Pool commands: list, get (alias status), scale.
//
// The pool RPCs (ListPools, GetPool, ScalePool) come with the pools issue and
// are not in control_plane.proto yet, so this file cannot build their
// requests. Each command still asks the server, so the error says which side
// lacks them. When the messages exist, replace NotServedYet in each runner
// with a Client method (client.h: one line each, like ListInstances) and a
// table; flags and arguments are final.
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"

namespace navarch::cli {
namespace {

absl::Status NotServedYet(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  // ListPools is read-only, so an empty request is harmless whatever the
  // subcommand; a server that answers it has pools this client cannot read.
  absl::Status probe = client->Probe("ListPools");
  if (probe.ok()) {
    return absl::UnimplementedError(
        absl::StrCat("the control plane at ", client->display(),
                     " serves pools, but this navarch cannot read them yet; "
                     "use a newer navarch"));
  }
  if (probe.code() == absl::StatusCode::kUnimplemented) {
    return absl::UnimplementedError(
        absl::StrCat("this control plane does not serve pools yet (",
                     client->display(), " has no ListPools method)"));
  }
  return probe;  // unreachable, rejected token, ...: already explained
}

struct ScaleFlags {
  std::string pool;
  std::optional<int> count;
  std::optional<int> nodes;
};

absl::Status Scale(const ScaleFlags& f, Session& s) {
  if (f.count.has_value() == f.nodes.has_value()) {
    return UsageError(
        "give the node count once: `pools scale POOL N` or `--nodes N`");
  }
  return NotServedYet(s);
}

}  // namespace

void AddPoolCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group =
      app.add_subcommand("pools", "node pools: sizes, targets, scaling");
  group->alias("pool");
  group->require_subcommand(1);

  commands.Add(group, "list", "list pools with their sizes",
               [](Session& s) { return NotServedYet(s); });

  auto name = std::make_shared<std::string>();
  // The runner owns the flag storage, which CLI11 writes into.
  CLI::App* g = commands.Add(group, "get", "show one pool",
                             [name](Session& s) { return NotServedYet(s); });
  g->alias("status");
  g->add_option("POOL", *name, "pool name")->required();

  auto scale = std::make_shared<ScaleFlags>();
  CLI::App* sc = commands.Add(group, "scale", "set a pool's target size",
                              [scale](Session& s) { return Scale(*scale, s); });
  sc->add_option("POOL", scale->pool, "pool name")->required();
  sc->add_option("N", scale->count, "target number of nodes")
      ->check(CLI::NonNegativeNumber);
  sc->add_option("--nodes", scale->nodes,
                 "target number of nodes (upstream's spelling)")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace navarch::cli
