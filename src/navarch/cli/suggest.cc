#include "navarch/cli/suggest.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace navarch::cli {
namespace {

// The names and aliases a command's subcommands answer to, in declaration
// order (hidden ones, with an empty group, left out).
std::vector<std::string> Names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_group().empty()) continue;
    names.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) names.push_back(alias);
  }
  return names;
}

// The subcommand of `app` named `word`, or nullptr.
const CLI::App* Find(const CLI::App& app, const std::string& word) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->check_name(word)) return sub;
  }
  return nullptr;
}

// Whether option `token` ("-s", "--server", "--server=x") takes the next
// argument as its value.
bool TakesValue(const CLI::App& app, const std::string& token) {
  if (token.find('=') != std::string::npos) return false;
  for (const CLI::Option* o : app.get_options()) {
    if (o->check_name(token))
      return o->get_expected_max() > 0;  // flags expect none
  }
  return false;
}

}  // namespace

int EditDistance(absl::string_view a, absl::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::optional<std::string> Nearest(absl::string_view word,
                                   const std::vector<std::string>& candidates) {
  if (word.size() >= 2) {
    std::vector<std::string> prefixed;
    for (const std::string& c : candidates) {
      if (absl::StartsWith(c, word)) prefixed.push_back(c);
    }
    if (prefixed.size() == 1) return prefixed[0];
  }
  const int allowed = std::clamp(static_cast<int>(word.size()) / 3, 1, 2);
  std::optional<std::string> best;
  int best_distance = allowed + 1;
  for (const std::string& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::optional<std::string> UnknownCommand(
    const CLI::App& app, const std::vector<std::string>& args) {
  const CLI::App* at = &app;
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (absl::StartsWith(a, "-")) {
      // Global options (fallthrough) may stand anywhere; their values are
      // not commands.
      if (TakesValue(*at, a) || TakesValue(app, a)) ++i;
      continue;
    }
    std::vector<std::string> names = Names(*at);
    if (names.empty()) return std::nullopt;  // a positional argument
    if (const CLI::App* sub = Find(*at, a); sub != nullptr) {
      at = sub;
      absl::StrAppend(&path, sub->get_name(), " ");
      continue;
    }
    std::string sentence = absl::StrCat("unknown command '", path, a, "'");
    if (auto near = Nearest(a, names); near.has_value()) {
      absl::StrAppend(&sentence, "; did you mean '", path, *near, "'?");
    } else {
      absl::StrAppend(&sentence, " (commands: ", absl::StrJoin(names, ", "),
                      ")");
    }
    return sentence;
  }
  return std::nullopt;
}

}  // namespace navarch::cli
