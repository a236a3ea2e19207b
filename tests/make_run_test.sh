#!/usr/bin/env bash
# `make run` builds only the binaries it runs, never every test (issue 15: that
# took 11 minutes on two cores before anything started), and says so; `make
# test` still builds everything. Reads the Makefile's recipes with `make -n`
# (nothing is built or installed) and checks that the targets it names exist.
#   make_run_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
bin=$2
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# A `make test` or `make check` above us must not leak its jobserver in.
dry() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -n -C "$src" "$@" BUILD_DIR=/nonexistent-build JOBS=1; }

run=$(dry run)
builds=$(grep -F 'cmake --build' <<<"$run" || true)
want='cmake --build /nonexistent-build -j 1 --target control-plane node-agent navarch'
[ "$builds" = "$want" ] || fail "make run builds: '$builds'; want: '$want'"
grep -qF 'building the control plane' <<<"$run" || fail "make run prints no progress line: $run"
grep -qF '/nonexistent-build/bin/control-plane --config examples/quickstart.yaml' <<<"$run" ||
  fail "make run does not start the quick start: $run"

# Each target it names is one the build defines (a rename must not go unseen).
targets=$(cmake --build "$bin" --target help)
for t in control-plane node-agent navarch; do
  grep -qE "^$t: " <<<"$targets" || fail "no build target $t"
done

tests=$(dry test | grep -F 'cmake --build' || true)
[ "$tests" = 'cmake --build /nonexistent-build -j 1' ] || fail "make test builds: '$tests'; want everything"
echo "ok: make run builds control-plane node-agent navarch only; make test builds everything"
