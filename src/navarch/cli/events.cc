// `navarch events`: the control plane's event log (registrations, status
// changes, commands, health verdicts), oldest first, with their reasons;
// the first --limit of them or the newest --tail.
#include <algorithm>
#include <deque>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/api/json.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "navarch/cli/listing.h"
#include "navarch/cli/parse.h"

namespace navarch::cli {
namespace {

// The server's largest page (ListEventsRequest.page_size).
constexpr int kMaxPage = 1000;

struct EventFlags {
  std::string node, pool, since, until;
  std::vector<std::string> kinds;
  int limit = 100;
  int tail = 0;  // > 0: only the newest `tail` matching events
  bool all_contexts = false;
};

absl::StatusOr<ListEventsRequest> Request(const EventFlags& f, absl::Time now) {
  ListEventsRequest req;
  req.set_node_id(f.node);
  req.set_pool(f.pool);
  for (const auto& k : f.kinds) req.add_kinds(k);
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
  return req;
}

// What a listing fetched: the events to print, oldest first, and how many
// matched in all (known only when every page was read).
struct Fetched {
  std::vector<Event> events;
  bool more = false;  // --limit stopped before the last page
  int64_t matched = 0;
};

// The first --limit events, page by page, stopping once there are enough.
absl::Status FetchHead(const EventFlags& f, ListEventsRequest req,
                       Client& client, Fetched& out) {
  while (true) {
    int want = kMaxPage;
    if (f.limit > 0) {
      want = std::min<int>(kMaxPage,
                           f.limit - static_cast<int>(out.events.size()));
    }
    req.set_page_size(want);
    NAVARCH_ASSIGN_OR_RETURN(ListEventsResponse page, client.ListEvents(req));
    for (auto& e : *page.mutable_events()) out.events.push_back(std::move(e));
    out.more = !page.next_page_token().empty();
    if (!out.more || page.events_size() == 0) break;
    if (f.limit > 0 && static_cast<int>(out.events.size()) >= f.limit) break;
    req.set_page_token(page.next_page_token());
  }
  out.matched = static_cast<int64_t>(out.events.size());
  return absl::OkStatus();
}

// The newest --tail events. The log pages oldest first and has no reverse
// order, so every matching page is read and only the last `tail` events are
// kept: memory stays at `tail` events however long the log is.
absl::Status FetchTail(const EventFlags& f, ListEventsRequest req,
                       Client& client, Fetched& out) {
  std::deque<Event> kept;
  req.set_page_size(kMaxPage);
  while (true) {
    NAVARCH_ASSIGN_OR_RETURN(ListEventsResponse page, client.ListEvents(req));
    for (auto& e : *page.mutable_events()) {
      ++out.matched;
      kept.push_back(std::move(e));
      if (static_cast<int>(kept.size()) > f.tail) kept.pop_front();
    }
    if (page.next_page_token().empty() || page.events_size() == 0) break;
    // A server that hands back the token it was given would loop forever.
    if (page.next_page_token() == req.page_token()) {
      return absl::InternalError(
          "the server returned the same page token twice; stopping");
    }
    req.set_page_token(page.next_page_token());
  }
  out.events.assign(std::make_move_iterator(kept.begin()),
                    std::make_move_iterator(kept.end()));
  return absl::OkStatus();
}

Listing EventListing(const Fetched& fetched, const EventFlags& f,
                     absl::Time now) {
  Listing l;
  l.headers = {"TIME", "AGE", "KIND", "NODE", "POOL", "ACTOR", "MESSAGE"};
  for (const auto& e : fetched.events) {
    l.items.push_back(ToJson(e));
    l.rows.push_back({Absolute(e.time()), Ago(e.time(), now), e.kind(),
                      e.node_id(), e.pool(), e.actor(), e.message()});
    // Zero-padded seconds and nanoseconds sort as text (no event is older
    // than 1970): --all-contexts merges the regions' logs by time.
    l.sort_keys.push_back(
        absl::StrFormat("%020d.%09d", e.time().seconds(), e.time().nanos()));
  }
  if (fetched.more) {
    l.note = absl::StrCat("(the first ", fetched.events.size(),
                          " matching events; more match: raise --limit, "
                          "narrow with --since, or see the newest with "
                          "--tail)\n");
  } else if (f.tail > 0 && fetched.matched > f.tail) {
    l.note = absl::StrCat("(the newest ", fetched.events.size(), " of ",
                          fetched.matched, " matching events)\n");
  }
  return l;
}

absl::Status List(const EventFlags& f, Session& s) {
  absl::Time now = s.clock().Now();
  NAVARCH_ASSIGN_OR_RETURN(ListEventsRequest req, Request(f, now));
  return RunListing(
      s, f.all_contexts, "No events found",
      [&](Client& client) -> absl::StatusOr<Listing> {
        Fetched fetched;
        if (f.tail > 0) {
          NAVARCH_RETURN_IF_ERROR(FetchTail(f, req, client, fetched));
        } else {
          NAVARCH_RETURN_IF_ERROR(FetchHead(f, req, client, fetched));
        }
        return EventListing(fetched, f, now);
      });
}

}  // namespace

void AddEventCommands(CLI::App& app, CommandSet& commands) {
  auto f = std::make_shared<EventFlags>();
  CLI::App* e = commands.Add(&app, "events",
                             "the event log, oldest first: what happened to "
                             "which node, and why (--tail N: the newest N)",
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
  CLI::Option* limit =
      e->add_option("--limit", f->limit, "at most this many events (0: all)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber);
  e->add_option("--tail", f->tail,
                "only the newest N matching events (still printed oldest "
                "first); reads the whole matching log")
      ->check(CLI::PositiveNumber)
      ->excludes(limit);
  AddAllContextsFlag(e, &f->all_contexts);
}

}  // namespace navarch::cli
