// `navarch events`: the control plane's event log (registrations, status
// changes, commands, health verdicts), oldest first, with their reasons.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "navarch/api/json.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "navarch/cli/parse.h"

namespace navarch::cli {
namespace {

// The server's largest page (ListEventsRequest.page_size).
constexpr int kMaxPage = 1000;

struct EventFlags {
  std::string node, pool, since, until;
  std::vector<std::string> kinds;
  int limit = 100;
};

absl::Status List(const EventFlags& f, Session& s) {
  ListEventsRequest req;
  req.set_node_id(f.node);
  req.set_pool(f.pool);
  for (const auto& k : f.kinds) req.add_kinds(k);
  absl::Time now = s.clock().Now();
  if (!f.since.empty()) {
    auto t = ParseSince(f.since, now);
    if (!t.ok()) return UsageError(t.status().message());
    *req.mutable_since() = ToTimestamp(*t);
  }
  if (!f.until.empty()) {
    auto t = ParseSince(f.until, now);
    if (!t.ok()) return UsageError(t.status().message());
    *req.mutable_until() = ToTimestamp(*t);
  }
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());

  std::vector<Event> events;
  bool more = false;
  while (true) {
    int want = kMaxPage;
    if (f.limit > 0) {
      want = std::min<int>(kMaxPage, f.limit - static_cast<int>(events.size()));
    }
    req.set_page_size(want);
    NAVARCH_ASSIGN_OR_RETURN(ListEventsResponse page, client->ListEvents(req));
    for (auto& e : *page.mutable_events()) events.push_back(std::move(e));
    more = !page.next_page_token().empty();
    if (!more || page.events_size() == 0) break;
    if (f.limit > 0 && static_cast<int>(events.size()) >= f.limit) break;
    req.set_page_token(page.next_page_token());
  }

  Output& out = s.output();
  if (out.json()) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& e : events) array.push_back(ToJson(e));
    out.Json(array);
  } else if (events.empty()) {
    out.out() << "No events found\n";
  } else {
    Table table({"TIME", "AGE", "KIND", "NODE", "POOL", "ACTOR", "MESSAGE"});
    for (const auto& e : events) {
      table.AddRow({Absolute(e.time()), Ago(e.time(), now), e.kind(),
                    e.node_id(), e.pool(), e.actor(), e.message()});
    }
    table.Print(out.out(), out.color());
  }
  if (more) {
    out.err() << "(the first " << events.size()
              << " matching events; more match: raise --limit or narrow "
                 "with --since)\n";
  }
  return absl::OkStatus();
}

}  // namespace

void AddEventCommands(CLI::App& app, CommandSet& commands) {
  auto f = std::make_shared<EventFlags>();
  CLI::App* e = commands.Add(&app, "events",
                             "the event log, oldest first: what happened to "
                             "which node, and why",
                             [f](Session& s) { return List(*f, s); });
  e->add_option("--node", f->node, "only events of this node");
  e->add_option("--pool", f->pool, "only events of this pool");
  e->add_option("--kind", f->kinds,
                "only this kind, e.g. node.status_changed; a trailing * "
                "matches a prefix (node.*); repeatable");
  auto since = [](const std::string& v) {
    return ParseSince(v, absl::UnixEpoch());
  };
  e->add_option("--since", f->since,
                "from this time on: a duration back from now (1h, 30m) or "
                "RFC 3339")
      ->check(Checked("TIME", since));
  e->add_option("--until", f->until,
                "before this time: a duration back from now or RFC 3339")
      ->check(Checked("TIME", since));
  e->add_option("--limit", f->limit, "at most this many events (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

}  // namespace navarch::cli
