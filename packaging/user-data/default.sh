#!/bin/sh
# Navarch's default bootstrap for a machine of pool {{.Pool}}: the user data a
# cloud pool's machines get when the pool sets none (docs/pools.md, "Cloud
# user data"). It installs the agent package from the control plane unless
# the image has it, checks its SHA-256, gives the agent its server, bootstrap
# token and pool, and (re)starts it. The agent resolves its own node id and
# trades the bootstrap token for its node token when it registers.
set -eu
export DEBIAN_FRONTEND=noninteractive
token='{{.BootstrapToken}}'

fetch() {
  curl --fail --silent --show-error --location --retry 30 --retry-delay 5 \
    --retry-connrefused --max-time 600 \
    --header "Authorization: Bearer $token" --output "$2" "$1"
}

if ! command -v navarch-node-agent >/dev/null 2>&1; then
  dir=$(mktemp -d)
  fetch '{{.PackageURL}}' "$dir/navarch-node-agent.deb"
  fetch '{{.PackageURL}}.sha256' "$dir/sum"
  echo "$(cut -d ' ' -f 1 "$dir/sum")  $dir/navarch-node-agent.deb" | sha256sum -c -
  # Its libraries come from the machine's own package sources.
  apt-get install -y --no-install-recommends "$dir/navarch-node-agent.deb"
  rm -rf "$dir"
fi

umask 077
mkdir -p /etc/default
cat > /etc/default/navarch-node-agent <<CONF
NAVARCH_SERVER={{.ControlPlane}}
NAVARCH_AUTH_TOKEN=$token
NAVARCH_AGENT_ARGS="--node-id {{.NodeID}} --pool {{.Pool}} --provider {{.Provider}} --region {{.Region}} --instance-type {{.InstanceType}}"
CONF
systemctl enable navarch-node-agent
systemctl restart navarch-node-agent
