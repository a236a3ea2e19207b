// "Did you mean" for the navarch CLI: the nearest command to a typo, so
// `navarch lsit` answers "unknown command 'lsit'; did you mean 'list'?"
// instead of CLI11's "argument was not expected".
#ifndef NAVARCH_CLI_SUGGEST_H_
#define NAVARCH_CLI_SUGGEST_H_

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/string_view.h"

namespace navarch::cli {

// Edit distance where swapping two neighbouring letters is one edit
// (optimal string alignment), so "lsit" is one edit from "list".
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate `word` most likely meant: the only one it is a prefix of
// (two letters or more), else the nearest within one edit per three letters
// (at most two). Ties go to the earlier candidate. nullopt if none is close.
std::optional<std::string> Nearest(absl::string_view word,
                                   const std::vector<std::string>& candidates);

// After a failed parse: if `args` name a command `app` does not have
// (`lsit`, or `lsit` after `pools`), the sentence to print instead of
// CLI11's ("unknown command 'lsit'; did you mean 'list'?"). Global options
// and their values are skipped (`-s host lsit`). nullopt when the command
// path is fine and the error is something else.
std::optional<std::string> UnknownCommand(const CLI::App& app,
                                          const std::vector<std::string>& args);

}  // namespace navarch::cli

#endif  // NAVARCH_CLI_SUGGEST_H_
