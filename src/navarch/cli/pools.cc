// Pool commands: list, get (alias status), scale, reset-breaker.
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "navarch/api/json.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "navarch/cli/listing.h"

namespace navarch::cli {
namespace {

// UNIMPLEMENTED from the server means a control plane without pools (an
// upstream one, or ours with none configured): say so plainly.
absl::Status Explained(absl::Status status, Client& client) {
  if (status.code() == absl::StatusCode::kUnimplemented) {
    return absl::UnimplementedError(absl::StrCat(
        "this control plane does not serve pools (", client.display(),
        " has no pool manager: no pools configured, or not a Navarch C++ "
        "control plane)"));
  }
  return status;
}

std::string Cooldown(const PoolInfo& p) {
  if (p.cooldown_remaining_seconds() <= 0) return "-";
  return FormatGoDuration(absl::Seconds(p.cooldown_remaining_seconds()));
}

std::vector<std::string> Headers() {
  return {"POOL",        "NODES",    "TARGET",    "HEALTHY",  "MIN",
          "MAX",         "PENDING",  "REPLACING", "STRATEGY", "AUTOSCALER",
          "LAST SCALED", "COOLDOWN", "BREAKER"};
}

std::vector<Cell> Row(const PoolInfo& p, absl::Time now) {
  return {p.name(),
          absl::StrCat(p.current_nodes()),
          absl::StrCat(p.target_nodes()),
          absl::StrCat(p.healthy_nodes()),
          absl::StrCat(p.min_nodes()),
          absl::StrCat(p.max_nodes()),
          absl::StrCat(p.pending_instances()),
          absl::StrCat(p.replacing_nodes()),
          p.strategy(),
          p.autoscaler().empty() ? "-" : p.autoscaler(),
          Ago(p.last_scale_time(), now),
          Cooldown(p),
          p.replacement_breaker_open() ? "OPEN" : "closed"};
}

void PrintTable(const std::vector<PoolInfo>& pools, Session& s) {
  absl::Time now = s.clock().Now();
  Table table(Headers());
  for (const auto& p : pools) table.AddRow(Row(p, now));
  table.Print(s.output().out(), s.output().color());
}

void PrintOne(const PoolInfo& p, Session& s) {
  Output& out = s.output();
  if (out.json()) return out.Json(ToJson(p));
  PrintTable({p}, s);
  if (!p.last_decision().empty())
    out.out() << "\nLast decision: " << p.last_decision() << "\n";
  if (p.has_utilization_percent()) {
    out.out() << "GPU utilization: " << p.utilization_percent() << "%\n";
  }
  if (!p.metrics_source().empty()) {
    out.out() << "Metrics source: " << p.metrics_source();
    if (!p.metrics_source_up()) {
      out.out() << " (FAILING: " << p.metrics_source_error() << ")";
    }
    if (p.has_queue_depth()) out.out() << ", queue depth " << p.queue_depth();
    if (p.has_pending_jobs())
      out.out() << ", pending jobs " << p.pending_jobs();
    out.out() << "\n";
  }
}

absl::Status List(bool all_contexts, Session& s) {
  absl::Time now = s.clock().Now();
  return RunListing(s, all_contexts, "No pools found",
                    [now](Client& client) -> absl::StatusOr<Listing> {
                      auto resp = client.ListPools(ListPoolsRequest());
                      if (!resp.ok()) return Explained(resp.status(), client);
                      Listing l;
                      l.headers = Headers();
                      for (const PoolInfo& p : resp->pools()) {
                        l.items.push_back(ToJson(p));
                        l.rows.push_back(Row(p, now));
                      }
                      return l;
                    });
}

absl::Status Get(const std::string& name, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  GetPoolRequest req;
  req.set_name(name);
  auto resp = client->GetPool(req);
  if (!resp.ok()) return Explained(resp.status(), *client);
  PrintOne(resp->pool(), s);
  return absl::OkStatus();
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
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  ScalePoolRequest req;
  req.set_name(f.pool);
  req.set_target_nodes(f.count ? *f.count : *f.nodes);
  auto resp = client->ScalePool(req);
  if (!resp.ok()) return Explained(resp.status(), *client);
  if (!s.output().json()) {
    s.output().out() << "Pool " << f.pool << " scaling to "
                     << req.target_nodes() << " nodes\n";
  }
  PrintOne(resp->pool(), s);
  return absl::OkStatus();
}

absl::Status ResetBreaker(const std::string& pool, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  ResetPoolBreakerRequest req;
  req.set_name(pool);
  auto resp = client->ResetPoolBreaker(req);
  if (!resp.ok()) return Explained(resp.status(), *client);
  if (s.output().json()) {
    nlohmann::json j = ToJson(resp->pool());
    j["was_open"] = resp->was_open();
    s.output().Json(j);
    return absl::OkStatus();
  }
  s.output().out() << (resp->was_open()
                           ? absl::StrCat(
                                 "Replacement breaker of pool ", pool,
                                 " reset: automatic replacement resumes\n")
                           : absl::StrCat("Replacement breaker of pool ", pool,
                                          " was not open; nothing to reset\n"));
  PrintOne(resp->pool(), s);
  return absl::OkStatus();
}

}  // namespace

void AddPoolCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group =
      app.add_subcommand("pools", "node pools: sizes, targets, scaling");
  group->alias("pool");
  group->require_subcommand(1);

  auto all = std::make_shared<bool>(false);
  CLI::App* l = commands.Add(group, "list", "list pools with their sizes",
                             [all](Session& s) { return List(*all, s); });
  AddAllContextsFlag(l, all.get());

  auto name = std::make_shared<std::string>();
  // The runner owns the flag storage, which CLI11 writes into.
  CLI::App* g = commands.Add(group, "get", "show one pool",
                             [name](Session& s) { return Get(*name, s); });
  g->alias("status");
  g->add_option("POOL", *name, "pool name")->required();

  auto scale = std::make_shared<ScaleFlags>();
  CLI::App* sc =
      commands.Add(group, "scale", "set a pool's target size (within min..max)",
                   [scale](Session& s) { return Scale(*scale, s); });
  sc->add_option("POOL", scale->pool, "pool name")->required();
  sc->add_option("N", scale->count, "target number of nodes")
      ->check(CLI::NonNegativeNumber);
  sc->add_option("--nodes", scale->nodes,
                 "target number of nodes (upstream's spelling)")
      ->check(CLI::NonNegativeNumber);

  auto reset = std::make_shared<std::string>();
  CLI::App* rb = commands.Add(
      group, "reset-breaker",
      "resume automatic replacement after the pool's breaker tripped",
      [reset](Session& s) { return ResetBreaker(*reset, s); });
  rb->add_option("POOL", *reset, "pool name")->required();
}

}  // namespace navarch::cli
