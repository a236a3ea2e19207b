// The read commands that can run against every context at once (`list`,
// `pools list`, `events` with --all-contexts): each fetches a Listing from
// one control plane; RunListing prints it, or merges the listings of every
// context into one table with a leading CONTEXT column (a "context" field in
// JSON). A context that fails is reported on stderr and the others still
// print; the command fails only when every context failed.
#ifndef NAVARCH_CLI_LISTING_H_
#define NAVARCH_CLI_LISTING_H_

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "navarch/cli/client.h"
#include "navarch/cli/command.h"
#include "navarch/cli/format.h"
#include "nlohmann/json.hpp"

namespace navarch::cli {

// One control plane's answer, ready to print.
struct Listing {
  std::vector<std::string> headers;
  std::vector<std::vector<Cell>> rows;
  nlohmann::json items = nlohmann::json::array();  // -o json: one per row
  std::string note;  // for stderr after the output ("the first 100 ...")
  // One per row, or none. With them, the merged rows of every context are
  // ordered by key (events: by time), the rows of a context staying in its
  // order on ties; without them, context after context.
  std::vector<std::string> sort_keys;
};

// Builds the Listing from one client. Called from one thread per context at
// once, so it must not touch the Session (take "now" before).
using Fetch = std::function<absl::StatusOr<Listing>(Client& client)>;

// Adds --all-contexts to a read command.
void AddAllContextsFlag(CLI::App* command, bool* all_contexts);

// Runs `fetch` against the session's server, or with `all_contexts` against
// every context concurrently (each call with its own deadline), and prints.
// `empty` is what a table says when there are no rows ("No nodes found").
absl::Status RunListing(Session& s, bool all_contexts, absl::string_view empty,
                        const Fetch& fetch);

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_LISTING_H_
