#include "navarch/agent/node_token_file.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "navarch/base/file.h"

namespace navarch::agent {

absl::StatusOr<std::string> LoadNodeToken(const std::string& path,
                                          absl::string_view node_id) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::string();
    return text.status();
  }
  const std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return token;
  if (!absl::StartsWith(token, absl::StrCat("navarch-node.", node_id, "."))) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " does not hold the node token of ", node_id,
        " (a copy from another machine?); using the configured token"));
  }
  return token;
}

absl::Status SaveNodeToken(const std::string& path, const std::string& token) {
  return WriteFileAtomically(path, token + "\n", 0600);
}

}  // namespace navarch::agent
