// Provider commands: list, types.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "navarch/api/json.h"
#include "navarch/base/duration.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"

namespace navarch::cli {
namespace {

std::string Backoffs(const ProviderInfo& p) {
  std::vector<std::string> parts;
  for (const ProviderBackoff& b : p.backoffs()) {
    std::string where = b.region() == "*" ? "all regions" : b.region();
    if (!b.zone().empty()) where = b.zone();
    parts.push_back(absl::StrCat(
        where, " ", FormatGoDuration(absl::Seconds(b.remaining_seconds())),
        " (", b.pool(), ")"));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

absl::Status List(Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  auto resp = client->ListProviders(ListProvidersRequest());
  if (!resp.ok()) return resp.status();
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json array = nlohmann::json::array();
    for (const ProviderInfo& p : resp->providers()) array.push_back(ToJson(p));
    out.Json(array);
    return absl::OkStatus();
  }
  if (resp->providers().empty()) {
    out.out() << "No providers configured\n";
    return absl::OkStatus();
  }
  Table table({"PROVIDER", "TYPE", "POOLS", "STATUS", "BACKED OFF"});
  std::vector<std::string> notes;
  for (const ProviderInfo& p : resp->providers()) {
    table.AddRow({p.name(), p.type(),
                  p.pools().empty() ? "-" : absl::StrJoin(p.pools(), ","),
                  p.available() ? "ready" : "unavailable", Backoffs(p)});
    if (!p.available()) {
      notes.push_back(absl::StrCat(p.name(), ": ", p.unavailable_reason()));
    }
  }
  table.Print(out.out(), out.color());
  if (!notes.empty()) out.out() << "\n" << absl::StrJoin(notes, "\n") << "\n";
  return absl::OkStatus();
}

// What the REGIONS column means, and where prices come from, per type.
std::string Footnote(const std::string& type) {
  if (type == "lambda") {
    return "Regions: those with capacity now; prices as Lambda publishes "
           "them.";
  }
  if (type == "gcp") {
    return "Regions: those offering the machine type (GCE does not say "
           "where there is capacity); GCE's machineTypes carry no prices.";
  }
  if (type == "aws") {
    return "Regions: the provider's region, where EC2 offers the type; "
           "DescribeInstanceTypes carries neither prices nor capacity.";
  }
  return "";
}

std::string Gpus(const ProviderInstanceType& t) {
  if (t.gpu_count() == 0) return t.gpu_model().empty() ? "-" : t.gpu_model();
  return absl::StrCat(t.gpu_count(), "x ",
                      t.gpu_model().empty() ? "GPU" : t.gpu_model());
}

std::string Number(int n, absl::string_view unit = "") {
  return n > 0 ? absl::StrCat(n, unit) : "-";
}

void PrintTypes(const ListInstanceTypesResponse& resp, Session& s) {
  Table table({"INSTANCE TYPE", "GPUS", "VCPUS", "MEMORY", "PRICE/HOUR",
               "AVAILABLE", "REGIONS", "ABSTRACT"});
  for (const ProviderInstanceType& t : resp.instance_types()) {
    table.AddRow(
        {t.name(), Gpus(t), Number(t.vcpus()), Number(t.memory_gb(), " GiB"),
         t.has_price_per_hour() ? absl::StrFormat("$%.2f", t.price_per_hour())
                                : "-",
         t.available() ? "yes" : "no",
         t.regions().empty() ? "-" : absl::StrJoin(t.regions(), ","),
         t.abstract_types().empty() ? "-"
                                    : absl::StrJoin(t.abstract_types(), ",")});
  }
  table.Print(s.output().out(), s.output().color());
  if (std::string note = Footnote(resp.type()); !note.empty()) {
    s.output().out() << "\n" << note << "\n";
  }
}

absl::Status Types(const std::string& name, Session& s) {
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  ListInstanceTypesRequest req;
  req.set_provider(name);
  auto resp = client->ListInstanceTypes(req);
  if (!resp.ok()) return resp.status();
  Output& out = s.output();
  if (out.json()) {
    nlohmann::json array = nlohmann::json::array();
    for (const ProviderInstanceType& t : resp->instance_types()) {
      array.push_back(ToJson(t));
    }
    out.Json(array);
  } else if (resp->instance_types().empty()) {
    out.out() << "No instance types found\n";
  } else {
    PrintTypes(*resp, s);
  }
  return absl::OkStatus();
}

}  // namespace

void AddProviderCommands(CLI::App& app, CommandSet& commands) {
  CLI::App* group = app.add_subcommand(
      "providers", "clouds machines come from: status and instance types");
  group->alias("provider");
  group->require_subcommand(1);

  commands.Add(group, "list",
               "list providers with their pools, status and back-offs",
               [](Session& s) { return List(s); });

  auto name = std::make_shared<std::string>();
  // The runner owns the flag storage, which CLI11 writes into.
  CLI::App* t = commands.Add(
      group, "types",
      "list what a provider offers: GPUs, price, regions (asks the cloud)",
      [name](Session& s) { return Types(*name, s); });
  t->alias("instance-types");
  t->add_option("PROVIDER", *name, "provider name (as under providers:)")
      ->required();
}

}  // namespace navarch::cli
