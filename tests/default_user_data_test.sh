#!/usr/bin/env bash
# The default user data (packaging/user-data/default.sh), run for real on this
# machine as cloud-init would run it on a new one, against a real control
# plane serving a real .deb at /api/v1/agent/package:
#   1. it downloads the package with the token, checks its SHA-256, hands
#      exactly that file to apt-get, writes /etc/default/navarch-node-agent
#      (mode 0600: server, token, node id auto, pool, provider, region, type)
#      and enables and restarts the unit;
#   2. a package altered on the way fails the checksum: nothing is installed,
#      nothing written, the script exits non-zero;
#   3. a token the control plane refuses (401) stops it the same way.
# It runs in a private mount namespace with a tmpfs over /etc/default, and
# apt-get and systemctl are stubs that record their arguments: nothing
# reaches this machine's configuration. Needs root (mount namespace); skipped
# (exit 77) otherwise.
#   default_user_data_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  [ -f "${tmp:-/nonexistent}/cp.log" ] && tail -20 "$tmp/cp.log" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (a private mount namespace over /etc/default)"
unshare --mount --propagation private true 2>/dev/null || skip "cannot make a mount namespace here"
for tool in curl sha256sum dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps)"
done
[ -x "$build/bin/control-plane" ] || fail "$build/bin/control-plane is not built"

tmp=$(mktemp -d)
cp_pid=
cleanup() {
  [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# A real (tiny) Debian package to serve.
mkdir -p "$tmp/pkg/DEBIAN" "$tmp/pkg/usr/share/doc/navarch-node-agent"
cat >"$tmp/pkg/DEBIAN/control" <<'CONTROL'
Package: navarch-node-agent
Version: 0.0.1-test
Architecture: all
Maintainer: Navarch tests <tests@invalid>
Description: stand-in for the agent package (default_user_data_test.sh)
CONTROL
echo "test" >"$tmp/pkg/usr/share/doc/navarch-node-agent/README"
dpkg-deb --root-owner-group -b "$tmp/pkg" "$tmp/agent.deb" >/dev/null
want_sum=$(sha256sum "$tmp/agent.deb" | cut -d ' ' -f 1)

# The control plane: an agent-role token (standing in for the bootstrap
# token, which the download accepts alike) and the package.
agent_token=agent-default-user-data-test-7f3e
cat >"$tmp/navarch.yaml" <<YAML
server:
  address: 127.0.0.1:0
  data_dir: $tmp/data
  agent_package: $tmp/agent.deb
auth:
  tokens:
    - {name: agents, role: agent, token_env: TEST_AGENT_TOKEN}
storage:
  backend: memory
YAML
TEST_AGENT_TOKEN=$agent_token "$build/bin/control-plane" --config "$tmp/navarch.yaml" \
  --ready-file "$tmp/ready.json" >"$tmp/cp.log" 2>&1 &
cp_pid=$!
for _ in $(seq 1 300); do
  [ -s "$tmp/ready.json" ] && break
  kill -0 "$cp_pid" 2>/dev/null || fail "the control plane exited"
  sleep 0.1
done
[ -s "$tmp/ready.json" ] || fail "the control plane did not become ready"
http=$(sed -n 's/.*"http_address":"\([^"]*\)".*/\1/p' "$tmp/ready.json")
case $http in 127.0.0.1:*) ;; *) fail "HTTP listener not on loopback: $http" ;; esac

# Stubs: apt-get checks it was handed the package, systemctl records.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/apt-get" <<STUB
#!/bin/sh
for deb; do :; done
echo "apt-get \$* sha256=\$(sha256sum "\$deb" | cut -d ' ' -f 1) package=\$(dpkg-deb --field "\$deb" Package)" >>"$tmp/calls"
STUB
cat >"$tmp/bin/systemctl" <<STUB
#!/bin/sh
echo "systemctl \$*" >>"$tmp/calls"
STUB
# curl, through the real one; TAMPER=1 alters the package as it arrives.
real_curl=$(command -v curl)
cat >"$tmp/bin/curl" <<STUB
#!/bin/sh
"$real_curl" "\$@" || exit \$?
if [ "\${TAMPER:-0}" = 1 ]; then
  for a in "\$@"; do case \$a in *.deb) printf x >>"\$a" ;; esac; done
fi
STUB
chmod +x "$tmp/bin/"*

# The script as the pool manager renders it (config/template.h: {{.Name}}).
render() {
  sed -e "s|{{.BootstrapToken}}|$1|g" \
    -e "s|{{.PackageURL}}|http://$http/api/v1/agent/package|g" \
    -e "s|{{.BinaryURL}}|http://$http/api/v1/agent/binary|g" \
    -e "s|{{.ControlPlane}}|http://127.0.0.1:50051|g" \
    -e "s|{{.Pool}}|training|g" -e "s|{{.NodeID}}|auto|g" \
    -e "s|{{.Provider}}|aws|g" -e "s|{{.Region}}|us-east-1|g" \
    -e "s|{{.InstanceType}}|p5.48xlarge|g" \
    "$src/packaging/user-data/default.sh" >"$tmp/user-data.sh"
  ! grep -q '{{' "$tmp/user-data.sh" || fail "a variable left unrendered: $(grep '{{' "$tmp/user-data.sh")"
}

# Runs the user data with /etc/default on a tmpfs; copies out what it wrote.
run_user_data() {
  rm -f "$tmp/calls" "$tmp/env" "$tmp/env.mode"
  unshare --mount --propagation private env PATH="$tmp/bin:$PATH" TAMPER="${TAMPER:-0}" sh -c "
    mount -t tmpfs tmpfs /etc/default
    sh '$tmp/user-data.sh' >'$tmp/out' 2>&1; rc=\$?
    if [ -f /etc/default/navarch-node-agent ]; then
      cp /etc/default/navarch-node-agent '$tmp/env'
      stat -c %a /etc/default/navarch-node-agent >'$tmp/env.mode'
    fi
    exit \$rc"
}

# 1. The happy path.
render "$agent_token"
run_user_data || fail "the user data failed: $(cat "$tmp/out")"
grep -qx "apt-get install -y --no-install-recommends .*/navarch-node-agent.deb sha256=$want_sum package=navarch-node-agent" "$tmp/calls" ||
  fail "apt-get was not handed the served package: $(cat "$tmp/calls")"
[ "$(grep '^systemctl' "$tmp/calls")" = "systemctl enable navarch-node-agent
systemctl restart navarch-node-agent" ] || fail "systemctl calls: $(cat "$tmp/calls")"
[ -f "$tmp/env" ] || fail "no /etc/default/navarch-node-agent written"
[ "$(cat "$tmp/env.mode")" = 600 ] || fail "the environment file's mode is $(cat "$tmp/env.mode"), not 600"
grep -qx 'NAVARCH_SERVER=http://127.0.0.1:50051' "$tmp/env" || fail "env: $(cat "$tmp/env")"
grep -qx "NAVARCH_AUTH_TOKEN=$agent_token" "$tmp/env" || fail "env has no token: $(cat "$tmp/env")"
grep -qx 'NAVARCH_AGENT_ARGS="--node-id auto --pool training --provider aws --region us-east-1 --instance-type p5.48xlarge"' "$tmp/env" ||
  fail "env args: $(cat "$tmp/env")"
echo "ok: downloaded, checked, installed, configured, started"

# 2. Altered on the way: the checksum stops it before apt-get.
if TAMPER=1 run_user_data; then fail "a package that fails its checksum was accepted: $(cat "$tmp/out")"; fi
grep -q 'FAILED' "$tmp/out" || fail "no checksum failure reported: $(cat "$tmp/out")"
[ ! -s "$tmp/calls" ] || fail "something ran after a bad checksum: $(cat "$tmp/calls")"
[ ! -f "$tmp/env" ] || fail "the environment file was written after a bad checksum"
echo "ok: an altered package is refused"

# 3. A token the control plane refuses.
render "not-a-token"
if run_user_data; then fail "the download worked with a wrong token"; fi
grep -q '401' "$tmp/out" || fail "no 401 reported: $(cat "$tmp/out")"
[ ! -s "$tmp/calls" ] || fail "something ran without the package: $(cat "$tmp/calls")"
echo "ok: a refused token stops the bootstrap"
