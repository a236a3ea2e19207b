#!/usr/bin/env bash
# The bash completion script: it parses, completes commands, subcommands,
# flags and flag values, and equals the copy shipped in contrib/completion/.
# Usage: completion_test.sh NAVARCH SOURCE_DIR
set -u
navarch="$1"
source_dir="$2"
failures=0
script="$(mktemp)"
trap 'rm -f "$script"' EXIT

"$navarch" completion bash >"$script" || { echo "completion bash failed"; exit 1; }
bash -n "$script" || { echo "bash -n rejects the script"; exit 1; }
# shellcheck disable=SC1090
source "$script"

# expect "WORDS..." -- "EXPECTED..." : completing the last word offers at
# least the expected words, and nothing else when exact=1.
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _navarch
  echo "${COMPREPLY[*]}"
}

expect() {
  local want="$1"
  shift
  local got
  got="$(complete_words "$@")"
  for w in $want; do
    if [[ " $got " != *" $w "* ]]; then
      echo "FAIL: completing [$*] gave [$got], missing $w"
      failures=$((failures + 1))
    fi
  done
}

expect_exactly() {
  local want="$1"
  shift
  local got
  got="$(complete_words "$@")"
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: completing [$*] gave [$got], want [$want]"
    failures=$((failures + 1))
  fi
}

expect "list get cordon events pools providers policy version completion" navarch ""
expect_exactly "list" navarch li
expect_exactly "events explain" navarch e
expect "list get scale reset-breaker" navarch pools ""
expect_exactly "list types" navarch providers ""
expect_exactly "status" navarch cluster ""
expect_exactly "types" navarch provider t              # an alias
expect_exactly "scale" navarch pool sc                  # an alias
expect_exactly "scale" navarch -s host:1 -o json pools sc  # values skipped
expect_exactly "table json" navarch list -o ""
expect "--tail --timeout --token" navarch events --t
expect_exactly "--limit" navarch events --li
expect_exactly "" navarch -s ""                          # a value: nothing
expect_exactly "bash" navarch completion b
expect "get-contexts current-context use-context set-context" navarch config ""
expect_exactly "--all-contexts" navarch list --all
expect_exactly "--all-contexts" navarch pools list --all
expect_exactly "--all-contexts" navarch events --all
expect_exactly "--context" navarch --conte
expect_exactly "--token-file" navarch config set-context eu --token-

if ! diff -u "$source_dir/contrib/completion/navarch.bash" "$script"; then
  echo "FAIL: contrib/completion/navarch.bash differs from" \
    "\`navarch completion bash\` (regenerate it)"
  failures=$((failures + 1))
fi
zsh_script="$(mktemp)"
"$navarch" completion zsh >"$zsh_script"
if ! diff -u "$source_dir/contrib/completion/_navarch" "$zsh_script"; then
  echo "FAIL: contrib/completion/_navarch differs from" \
    "\`navarch completion zsh\` (regenerate it)"
  failures=$((failures + 1))
fi
if command -v zsh >/dev/null; then
  zsh -n "$zsh_script" || { echo "FAIL: zsh -n"; failures=$((failures + 1)); }
fi
rm -f "$zsh_script"
((failures == 0)) && echo "bash completion: all cases pass"
exit $((failures > 0))
