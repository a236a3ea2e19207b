// `navarch completion bash|zsh`: shell completion scripts generated from the
// command tree itself, so every command, alias and flag is in them and they
// cannot fall behind. contrib/completion/ ships the same scripts (a test
// keeps them equal).
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "navarch/cli/command.h"

namespace navarch::cli {
namespace {

// One command of the tree: its path ("" for navarch itself, "pools scale"),
// the names it answers to, its subcommands and flags.
struct Node {
  std::string path;
  std::vector<std::string> names;        // name first, then aliases
  std::vector<std::string> flags;        // "--tail", "-o", ...
  std::vector<std::string> value_flags;  // those that take a value
  std::vector<const CLI::App*> subs;
};

Node Describe(const CLI::App& app, const std::string& path) {
  Node n;
  n.path = path;
  n.names.push_back(app.get_name());
  for (const std::string& a : app.get_aliases()) n.names.push_back(a);
  for (const CLI::Option* o : app.get_options()) {
    std::vector<std::string> names;
    for (const std::string& s : o->get_snames()) names.push_back("-" + s);
    for (const std::string& l : o->get_lnames()) names.push_back("--" + l);
    for (const std::string& name : names) {
      // Every command's --help is navarch's own, offered with the global
      // flags; listing it again would offer it twice.
      if (!path.empty() && (name == "-h" || name == "--help")) continue;
      n.flags.push_back(name);
      if (o->get_expected_max() > 0) n.value_flags.push_back(name);
    }
  }
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (!sub->get_group().empty()) n.subs.push_back(sub);  // not hidden
  }
  return n;
}

// Every command, parents before children.
void Walk(const CLI::App& app, const std::string& path,
          std::vector<Node>& out) {
  out.push_back(Describe(app, path));
  std::vector<const CLI::App*> subs = out.back().subs;
  for (const CLI::App* sub : subs) {
    Walk(*sub,
         path.empty() ? sub->get_name()
                      : absl::StrCat(path, " ", sub->get_name()),
         out);
  }
}

std::string Quote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// The data both shells read, as POSIX case statements: the child a word
// names under a path, the subcommands and flags of a path, and whether an
// option takes a value (so that value is not taken for a command).
std::string Tables(const std::vector<Node>& nodes) {
  std::string s = "_navarch_child() {\n  case \"$1/$2\" in\n";
  std::vector<std::string> value_flags;
  for (const Node& n : nodes) {
    for (const CLI::App* sub : n.subs) {
      std::vector<std::string> keys;
      for (const std::string& name : Describe(*sub, "").names) {
        keys.push_back(absl::StrCat("\"", n.path, "/", name, "\""));
      }
      absl::StrAppend(&s, "    ", absl::StrJoin(keys, "|"), ") echo ",
                      sub->get_name(), " ;;\n");
    }
    for (const std::string& f : n.value_flags) {
      if (std::find(value_flags.begin(), value_flags.end(), f) ==
          value_flags.end()) {
        value_flags.push_back(f);
      }
    }
  }
  s += "  esac\n}\n\n_navarch_subs() {\n  case \"$1\" in\n";
  for (const Node& n : nodes) {
    if (n.subs.empty()) continue;
    std::vector<std::string> names;
    for (const CLI::App* sub : n.subs) names.push_back(sub->get_name());
    absl::StrAppend(&s, "    \"", n.path, "\") echo ",
                    absl::StrJoin(names, " "), " ;;\n");
  }
  s += "  esac\n}\n\n_navarch_flags() {\n  case \"$1\" in\n";
  for (const Node& n : nodes) {
    absl::StrAppend(&s, "    \"", n.path, "\") echo ",
                    absl::StrJoin(n.flags, " "), " ;;\n");
  }
  absl::StrAppend(&s,
                  "  esac\n}\n\n_navarch_takes_value() {\n  case \"$1\" in\n",
                  "    ", absl::StrJoin(value_flags, "|"),
                  ") return 0 ;;\n  esac\n  return 1\n}\n");
  return s;
}

// clang-format off
constexpr char kBash[] = R"sh(
# The command path typed so far (options and their values skipped).
_navarch_path() {
  local path="" i w child
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in
      -*=*) continue ;;
      -*) _navarch_takes_value "$w" && ((i++)); continue ;;
    esac
    child="$(_navarch_child "$path" "$w")"
    [[ -n "$child" ]] && path="${path:+$path }$child"
  done
  echo "$path"
}

_navarch() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path flags
  ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD - 1]}"
  COMPREPLY=()
  case "$prev" in
    -o|--output)
      COMPREPLY=($(compgen -W "table json" -- "$cur"))
      return ;;
    --ca-file|--cert-file|--key-file|--events)
      COMPREPLY=($(compgen -f -- "$cur"))
      return ;;
  esac
  _navarch_takes_value "$prev" && return
  path="$(_navarch_path)"
  if [[ "$cur" == -* ]]; then
    flags="$(_navarch_flags "")"
    [[ -n "$path" ]] && flags="$flags $(_navarch_flags "$path")"
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$(_navarch_subs "$path")" -- "$cur"))
  fi
}

complete -o bashdefault -o default -F _navarch navarch
)sh";

constexpr char kZsh[] = R"sh(
_navarch() {
  local cmdpath="" w child i
  local -a candidates
  for ((i = 2; i < CURRENT; i++)); do
    w="${words[i]}"
    case "$w" in
      -*=*) continue ;;
      -*) _navarch_takes_value "$w" && ((i++)); continue ;;
    esac
    child="$(_navarch_child "$cmdpath" "$w")"
    [[ -n "$child" ]] && cmdpath="${cmdpath:+$cmdpath }$child"
  done
  case "${words[CURRENT - 1]}" in
    -o|--output) compadd -- table json; return ;;
    --ca-file|--cert-file|--key-file|--events) _files; return ;;
  esac
  _navarch_takes_value "${words[CURRENT - 1]}" && return
  if [[ "${words[CURRENT]}" == -* ]]; then
    candidates=(${=$(_navarch_flags "")})
    [[ -n "$cmdpath" ]] && candidates+=(${=$(_navarch_flags "$cmdpath")})
    compadd -- $candidates
  else
    _navarch_described "$cmdpath"
    if ((${#reply})); then
      _describe -t commands 'navarch command' reply
    else
      _files
    fi
  fi
}

_navarch "$@"
)sh";
// clang-format on

// zsh shows a description beside each subcommand.
std::string ZshDescriptions(const std::vector<Node>& nodes) {
  std::string s = "_navarch_described() {\n  reply=()\n  case \"$1\" in\n";
  for (const Node& n : nodes) {
    if (n.subs.empty()) continue;
    std::vector<std::string> entries;
    for (const CLI::App* sub : n.subs) {
      std::string desc =
          absl::StrReplaceAll(sub->get_description(), {{":", "\\:"}});
      entries.push_back(Quote(absl::StrCat(sub->get_name(), ":", desc)));
    }
    absl::StrAppend(&s, "    \"", n.path, "\") reply=(",
                    absl::StrJoin(entries, " "), ") ;;\n");
  }
  s += "  esac\n}\n";
  return s;
}

absl::Status Completion(const CLI::App& app, const std::string& shell,
                        Session& s) {
  std::vector<Node> nodes;
  Walk(app, "", nodes);
  std::ostream& out = s.output().out();
  if (shell == "bash") {
    out << "# bash completion for navarch. Generated by `navarch completion "
           "bash`;\n# load it with: source <(navarch completion bash)\n\n"
        << Tables(nodes) << kBash;
  } else {
    out << "#compdef navarch\n# zsh completion for navarch. Generated by "
           "`navarch completion zsh`;\n# put it on $fpath as _navarch.\n\n"
        << Tables(nodes) << "\n"
        << ZshDescriptions(nodes) << kZsh;
  }
  return absl::OkStatus();
}

}  // namespace

void AddCompletionCommand(CLI::App& app, CommandSet& commands) {
  const CLI::App* root = &app;
  // One subcommand per shell, so the script completes its own argument.
  CLI::App* group = app.add_subcommand(
      "completion",
      "print a shell completion script: source <(navarch completion bash)");
  group->require_subcommand(1);
  for (const char* shell : {"bash", "zsh"}) {
    commands.Add(
        group, shell, absl::StrCat("the ", shell, " script"),
        [root, shell](Session& s) { return Completion(*root, shell, s); });
  }
}

}  // namespace navarch::cli
