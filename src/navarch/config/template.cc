#include "navarch/config/template.h"

#include <algorithm>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace navarch {
namespace {

bool IsName(absl::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Calls `on_text` for each literal part and `on_var` for each variable.
absl::Status Walk(
    absl::string_view text,
    const std::function<void(absl::string_view)>& on_text,
    const std::function<absl::Status(const std::string&)>& on_var) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == absl::string_view::npos) {
      on_text(text.substr(pos));
      break;
    }
    on_text(text.substr(pos, open - pos));
    const size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unterminated \"{{\" at \"", text.substr(open, 20), "\""));
    }
    const absl::string_view action =
        absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2));
    if (action.size() < 2 || action[0] != '.' || !IsName(action.substr(1))) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text.substr(open, close + 2 - open),
                       "\" is not a variable: templates take only {{.Name}}"));
    }
    if (absl::Status s = on_var(std::string(action.substr(1))); !s.ok()) {
      return s;
    }
    pos = close + 2;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& BootstrapTemplateVariables() {
  static const auto* const kVars = new std::vector<std::string>{
      "ControlPlane", "Pool",           "NodeID",     "Provider", "Region",
      "InstanceType", "BootstrapToken", "PackageURL", "BinaryURL"};
  return *kVars;
}

absl::StatusOr<std::vector<std::string>> TemplateVariables(
    absl::string_view text, const std::vector<std::string>& known) {
  std::vector<std::string> used;
  absl::Status s = Walk(
      text, [](absl::string_view) {},
      [&](const std::string& name) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("unknown variable {{.", name, "}}; known: {{.",
                           absl::StrJoin(known, "}}, {{."), "}}"));
        }
        if (std::find(used.begin(), used.end(), name) == used.end()) {
          used.push_back(name);
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return used;
}

absl::StatusOr<std::string> RenderTemplate(
    absl::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  absl::Status s = Walk(
      text, [&](absl::string_view literal) { absl::StrAppend(&out, literal); },
      [&](const std::string& name) {
        auto it = values.find(name);
        if (it == values.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("no value for {{.", name, "}}"));
        }
        absl::StrAppend(&out, it->second);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

}  // namespace navarch
