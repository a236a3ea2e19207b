#!/usr/bin/env bash
# Both Debian packages installed, upgraded, removed and purged by dpkg, with
# their maintainer scripts, in a chroot on a throw-away overlay of this
# machine's root (a private mount namespace; the overlay's writable layer is
# a tmpfs that vanishes with it). Nothing reaches the real system: /run is
# empty in the chroot (no systemd to talk to) and a policy-rc.d refuses every
# service start anyway. Checks: the navarch user and /var/lib/navarch, the
# environment files' mode, the enabled units, the agent not started without
# NAVARCH_SERVER, edited conffiles kept by an upgrade without a question,
# conffiles kept by remove and deleted by purge, the data kept by purge; and
# the two units' command lines, run as systemd would, start a control plane
# and an agent that registers with it.
# Needs root (mounts, chroot) and the packages' Depends installed on this
# machine (scripts/install-deps): otherwise it is skipped (exit 77).
#   package_install_test.sh BUILD_DIR VERSION
set -euo pipefail
build=$1
version=$2

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (mount, chroot); tests/package_test.sh checks the package without"
for dep in adduser init-system-helpers; do
  dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'install ok installed' ||
    skip "$dep is not installed here"
done
unshare --mount --propagation private true 2>/dev/null || skip "cannot make a mount namespace here"
grep -qw overlay /proc/filesystems || skip "no overlay file system"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Both packages, and the same files as a newer version (an upgrade whose
# defaults did not change), repacked with dpkg-deb.
if ! cpack --config "$build/CPackConfig.cmake" -B "$tmp/debs" >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  fail "cpack failed"
fi
rm -rf "$tmp/debs/_CPack_Packages"
arch=$(dpkg --print-architecture)
for p in navarch-node-agent navarch; do
  dpkg-deb -R "$tmp/debs/${p}_${version}_$arch.deb" "$tmp/repack"
  sed -i "s/^Version: .*/Version: $version+test2/" "$tmp/repack/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$tmp/repack" "$tmp/debs/${p}_$version+test2_$arch.deb" >/dev/null
  rm -rf "$tmp/repack"
done

cat >"$tmp/scenario.sh" <<'SCENARIO'
set -euo pipefail
v1=$1 v2=$2 arch=$3 grpc_port=$4 http_port=$5
fail() { echo "FAIL (in the chroot): $*" >&2; exit 1; }
cd /tmp/debs
out=$(dpkg -i "navarch-node-agent_${v1}_$arch.deb" "navarch_${v1}_$arch.deb" </dev/null 2>&1) ||
  fail "install: $out"
grep -q 'not started: set NAVARCH_SERVER' <<<"$out" || fail "no hint about NAVARCH_SERVER: $out"
getent passwd navarch | grep -q ':/var/lib/navarch:/usr/sbin/nologin$' ||
  fail "navarch user: $(getent passwd navarch)"
[ "$(stat -c '%U:%G %a' /var/lib/navarch)" = "navarch:navarch 750" ] ||
  fail "/var/lib/navarch: $(stat -c '%U:%G %a' /var/lib/navarch)"
for f in /etc/default/navarch-node-agent /etc/default/navarch-control-plane; do
  [ "$(stat -c '%U %a' $f)" = "root 600" ] || fail "$f: $(stat -c '%U %a' $f)"
done
for u in navarch-node-agent navarch-control-plane; do
  [ -L /etc/systemd/system/multi-user.target.wants/$u.service ] || fail "$u.service not enabled"
done
echo "ok: installed: user navarch, /var/lib/navarch 0750, environment files 0600, units enabled"

echo "# edited" >>/etc/navarch/agent.yaml
echo "# edited" >>/etc/navarch/control-plane.yaml
echo "NAVARCH_SERVER=cp.example:50051" >>/etc/default/navarch-node-agent
out=$(dpkg -i "navarch-node-agent_${v2}_$arch.deb" "navarch_${v2}_$arch.deb" </dev/null 2>&1) ||
  fail "upgrade (a conffile question, with no terminal?): $out"
[ "$(tail -1 /etc/navarch/agent.yaml)" = "# edited" ] || fail "the upgrade replaced the edited agent.yaml"
[ "$(tail -1 /etc/navarch/control-plane.yaml)" = "# edited" ] || fail "the upgrade replaced the edited control-plane.yaml"
grep -qx 'NAVARCH_SERVER=cp.example:50051' /etc/default/navarch-node-agent || fail "the upgrade replaced the environment file"
[ "$(stat -c %a /etc/default/navarch-node-agent)" = 600 ] || fail "environment file not 0600 after the upgrade"
! grep -q 'not started' <<<"$out" || fail "configured, yet the upgrade says the agent is not started: $out"
echo "ok: upgraded to $v2: the edited agent.yaml, control-plane.yaml and environment file kept"

# Both units' command lines as systemd would run them (there is no systemd
# in a chroot): User, StateDirectory, WorkingDirectory, EnvironmentFile and
# Environment, then ExecStart with ${VAR} and $VAR expanded. The control
# plane on free loopback ports; the agent with fake GPUs; the agent must
# register and the CLI see it ACTIVE.
run_unit() {
  local unit=/lib/systemd/system/$1.service user dir state
  user=$(sed -n 's/^User=//p' "$unit")
  state=$(sed -n 's/^StateDirectory=//p' "$unit")
  dir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
  mkdir -p "/var/lib/$state" && chown "$user" "/var/lib/$state"
  (
    cd "${dir:-/}"
    set +u  # systemd expands an unset variable to nothing
    # KEY=VALUE lines as systemd reads them: the rest of the line, spaces
    # included, one pair of surrounding quotes removed.
    for f in $(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit") \
      <(sed -n 's/^Environment=//p' "$unit"); do
      [ -e "$f" ] || continue
      while IFS= read -r line; do
        case $line in '' | '#'*) continue ;; esac
        val=${line#*=}
        val=${val#\"}
        export "${line%%=*}=${val%\"}"
      done <"$f"
    done
    # shellcheck disable=SC2046 # systemd splits $VAR into words, as here
    exec runuser -u "$user" -- $(eval echo "$(sed -n 's/^ExecStart=//p' "$unit")")
  ) >"/tmp/$1.log" 2>&1 </dev/null &
  echo $!
}
sed -i -e "s|^  address: .*|  address: \"127.0.0.1:$grpc_port\"|" \
  -e "s|^  http_address: .*|  http_address: \"127.0.0.1:$http_port\"|" /etc/navarch/control-plane.yaml
cat >/etc/default/navarch-node-agent <<ENV
NAVARCH_SERVER=127.0.0.1:$grpc_port
NAVARCH_AGENT_ARGS=--node-id pkg-node-1 --gpu-backend fake --kmsg /dev/null --log-format text
ENV
cp_pid=$(run_unit navarch-control-plane)
agent_pid=$(run_unit navarch-node-agent)
trap 'kill $agent_pid $cp_pid 2>/dev/null || true' EXIT
active=
for _ in $(seq 1 100); do
  if navarch --server "127.0.0.1:$grpc_port" get pkg-node-1 2>/dev/null | grep -q 'Active'; then
    active=1
    break
  fi
  sleep 0.2
done
[ -n "$active" ] || fail "the agent started as its unit would never became ACTIVE: $(tail -5 /tmp/navarch-node-agent.log) / $(tail -5 /tmp/navarch-control-plane.log)"
[ "$(stat -c %U /var/lib/navarch/navarch.db)" = navarch ] || fail "the control plane's database is not owned by navarch"
kill "$agent_pid" "$cp_pid"
wait "$agent_pid" "$cp_pid" 2>/dev/null || true
trap - EXIT
echo "ok: the units' command lines start the control plane (as navarch) and the agent, which registers ACTIVE"

dpkg -r navarch-node-agent navarch >/dev/null 2>&1 </dev/null || fail "remove"
[ ! -e /usr/bin/navarch-node-agent ] || fail "remove left the binary"
[ "$(tail -1 /etc/navarch/agent.yaml)" = "# edited" ] || fail "remove deleted the configuration"
dpkg -P navarch-node-agent navarch >/dev/null 2>&1 </dev/null || fail "purge"
[ ! -e /etc/navarch ] && [ ! -e /etc/default/navarch-node-agent ] || fail "purge left configuration: $(ls /etc/navarch /etc/default/navarch-* 2>&1)"
[ ! -e /etc/systemd/system/multi-user.target.wants/navarch-node-agent.service ] || fail "purge left the unit enabled"
[ -d /var/lib/navarch ] || fail "purge deleted /var/lib/navarch (the fleet's data)"
echo "ok: remove kept the configuration; purge deleted it and kept /var/lib/navarch"
SCENARIO

# In a private mount namespace: the overlay, the chroot, and the scenario.
# Two loopback ports free now, for the control plane started in the chroot.
read -r grpc_port http_port < <(python3 - 2>/dev/null <<'PY' || echo "$((20000 + RANDOM % 20000)) $((40000 + RANDOM % 20000))"
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
PY
)
unshare --mount --propagation private bash -euo pipefail -s "$tmp" "$version" "$version+test2" "$arch" "$grpc_port" "$http_port" <<'NS'
tmp=$1 v1=$2 v2=$3 arch=$4 grpc_port=$5 http_port=$6
mnt=$tmp/mnt
mkdir -p "$mnt"
mount -t tmpfs navarch-test "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
mount -t overlay navarch-test -o "lowerdir=/,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root"
root=$mnt/root
mountpoint -q "$root" || { echo "FAIL: no overlay" >&2; exit 1; }
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs navarch-test "$root/run"
mount -t tmpfs navarch-test "$root/tmp"
# No man-db index rebuild after each dpkg run: seconds, and beside the point.
rm -f "$root/var/lib/man-db/auto-update"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp -r "$tmp/debs" "$root/tmp/debs"
cp "$tmp/scenario.sh" "$root/tmp/scenario.sh"
chroot "$root" /bin/bash /tmp/scenario.sh "$v1" "$v2" "$arch" "$grpc_port" "$http_port"
NS
echo "ok: install, upgrade, remove and purge of both packages behave"
