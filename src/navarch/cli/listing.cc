#include "navarch/cli/listing.h"

#include <algorithm>
#include <numeric>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch::cli {
namespace {

absl::StatusOr<Listing> FetchFrom(
    const absl::StatusOr<ConnectionOptions>& options, const Fetch& fetch) {
  if (!options.ok()) return options.status();
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(*options);
  if (!client.ok()) return client.status();
  return fetch(**client);
}

// One thread per context: a slow or unreachable region costs its own
// deadline, not the sum of them.
std::vector<absl::StatusOr<Listing>> FetchAll(
    const std::vector<Target>& targets, const Fetch& fetch) {
  std::vector<absl::StatusOr<Listing>> answers(targets.size(),
                                               absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  threads.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&targets, &fetch, &answers, i] {
      answers[i] = FetchFrom(targets[i].connection, fetch);
    });
  }
  for (std::thread& t : threads) t.join();
  return answers;
}

void Print(const Listing& listing, absl::string_view empty, Output& out) {
  if (out.json()) {
    out.Json(listing.items);
  } else if (listing.rows.empty()) {
    out.out() << empty << "\n";
  } else {
    Table table(listing.headers);
    for (const auto& row : listing.rows) table.AddRow(row);
    table.Print(out.out(), out.color());
  }
}

// Appends `from`, answered by `context`, to `merged`.
void Merge(const std::string& context, Listing from, Listing& merged) {
  if (merged.headers.empty()) {
    merged.headers.push_back("CONTEXT");
    for (auto& h : from.headers) merged.headers.push_back(std::move(h));
  }
  for (auto& row : from.rows) {
    row.insert(row.begin(), Cell(context));
    merged.rows.push_back(std::move(row));
  }
  for (auto& item : from.items) {
    if (item.is_object()) item["context"] = context;
    merged.items.push_back(std::move(item));
  }
  for (auto& key : from.sort_keys) merged.sort_keys.push_back(std::move(key));
  if (!from.note.empty()) {
    absl::StrAppend(&merged.note, "context ", context, ": ", from.note);
  }
}

// Orders the rows (and their JSON items) by sort key, when every row has one.
void Sort(Listing& l) {
  if (l.sort_keys.size() != l.rows.size() || l.items.size() != l.rows.size()) {
    return;
  }
  std::vector<size_t> order(l.rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&l](size_t a, size_t b) {
    return l.sort_keys[a] < l.sort_keys[b];
  });
  Listing sorted;
  for (size_t i : order) {
    sorted.rows.push_back(std::move(l.rows[i]));
    sorted.items.push_back(std::move(l.items[i]));
  }
  l.rows = std::move(sorted.rows);
  l.items = std::move(sorted.items);
}

// "context eu-west: unavailable: cannot reach the control plane at ..."
void ReportFailure(const std::string& context, const absl::Status& status,
                   Output& out) {
  out.err() << "context " << context << ": "
            << absl::AsciiStrToLower(absl::StatusCodeToString(status.code()))
            << ": " << status.message() << "\n";
}

absl::Status RunAll(Session& s, absl::string_view empty, const Fetch& fetch) {
  NAVARCH_ASSIGN_OR_RETURN(std::vector<Target> targets, s.targets());
  std::vector<absl::StatusOr<Listing>> answers = FetchAll(targets, fetch);
  Listing merged;
  size_t failed = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (answers[i].ok()) {
      Merge(targets[i].context, std::move(*answers[i]), merged);
    } else {
      ++failed;
      ReportFailure(targets[i].context, answers[i].status(), s.output());
    }
  }
  if (failed == targets.size()) {
    return absl::UnavailableError(
        absl::StrCat("no context answered (", failed, " failed)"));
  }
  Sort(merged);
  Print(merged, empty, s.output());
  s.output().err() << merged.note;
  return absl::OkStatus();
}

}  // namespace

void AddAllContextsFlag(CLI::App* command, bool* all_contexts) {
  command->add_flag("--all-contexts", *all_contexts,
                    "run against every context of the config file at once "
                    "and merge the answers (a CONTEXT column)");
}

absl::Status RunListing(Session& s, bool all_contexts, absl::string_view empty,
                        const Fetch& fetch) {
  if (all_contexts) return RunAll(s, empty, fetch);
  NAVARCH_ASSIGN_OR_RETURN(Client * client, s.client());
  NAVARCH_ASSIGN_OR_RETURN(Listing listing, fetch(*client));
  Print(listing, empty, s.output());
  s.output().err() << listing.note;
  return absl::OkStatus();
}

}  // namespace navarch::cli
