#!/usr/bin/env bash
# One command to install the relay agent as a systemd service on a Linux host at the customer site:
#
#   sudo bash agent/install/install.sh --site contoso-hq            # from a checkout of this repo
#
# It creates the atria-agent user, copies the app to /opt/atria-agent (npm ci --omit=dev there), makes
# /etc/atria-agent with the site's keys GENERATED ON THIS MACHINE (X25519 for sealed passwords, Ed25519 for
# signing replies; private keys 0600, owned by atria-agent, never printed), writes a config template
# when none exists, installs the systemd unit, and prints the two public keys for `PUT /api/sites/<site>`.
# Safe to run again: existing keys and config are kept (an upgrade re-copies the app and restarts).
# It enables the service only once `agent doctor` passes.
set -euo pipefail

site=""
app_dir=/opt/atria-agent
config_dir=/etc/atria-agent
state_dir=/var/lib/atria-agent
while [ $# -gt 0 ]; do
  case "$1" in
    --site) site="$2"; shift 2 ;;
    --app-dir) app_dir="$2"; shift 2 ;;
    --config-dir) config_dir="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
done
[ -n "$site" ] || { echo "usage: install.sh --site <siteId>" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "run as root (it creates a user, /etc/atria-agent and a systemd unit)" >&2; exit 77; }
command -v openssl >/dev/null || { echo "openssl is required (apt-get install openssl)" >&2; exit 69; }
src="$(cd "$(dirname "$0")/../.." && pwd)"

id atria-agent >/dev/null 2>&1 || useradd --system --home-dir "$state_dir" --shell /usr/sbin/nologin atria-agent
install -d -m 0755 "$app_dir"
install -d -m 0750 -o root -g atria-agent "$config_dir"
install -d -m 0700 -o atria-agent -g atria-agent "$state_dir"

# The app: sources and lockfile; dependencies installed here (Node 22 comes from the `node` package).
tar -C "$src" -cf - package.json package-lock.json agent shared tsconfig.json | tar -C "$app_dir" -xf -
(cd "$app_dir" && npm ci --no-audit --no-fund --omit=dev --include=optional >/dev/null && npm install --no-save --no-audit --no-fund tsx node >/dev/null)

key() { # name algorithm
  local file="$config_dir/$1"
  if [ ! -f "$file" ]; then
    (umask 077 && openssl genpkey -algorithm "$2" -out "$file")
    chown atria-agent:atria-agent "$file"
    chmod 0600 "$file"
  fi
}
key site-key.pem X25519
key agent-signing-key.pem ED25519

if [ ! -f "$config_dir/config.json" ]; then
  sed "s/@SITE@/$site/g; s#@STATE_DIR@#$state_dir#g" "$src/agent/install/config.template.json" >"$config_dir/config.json"
  chmod 0640 "$config_dir/config.json"
  chgrp atria-agent "$config_dir/config.json"
  echo "wrote $config_dir/config.json: fill in the Service Bus namespace, SAS key, DCs, bind account and OUs" >&2
fi

sed "s#@APP_DIR@#$app_dir#g; s#@CONFIG_DIR@#$config_dir#g; s#@STATE_DIR@#$state_dir#g" \
  "$src/agent/install/atria-agent.service" >/etc/systemd/system/atria-agent.service
systemctl daemon-reload

echo "Register the site with Atria (PUT /api/sites/$site) with these public keys:"
printf '  publicKeyPem (X25519):\n%s\n' "$(openssl pkey -in "$config_dir/site-key.pem" -pubout)"
printf '  agentPublicKeyPem (Ed25519):\n%s\n' "$(openssl pkey -in "$config_dir/agent-signing-key.pem" -pubout)"

if (cd "$app_dir" && runuser -u atria-agent -- node_modules/.bin/node --import tsx agent/main.ts doctor --config "$config_dir/config.json"); then
  systemctl enable --now atria-agent
  systemctl restart atria-agent # an upgrade: the new code
  echo "atria-agent is running: journalctl -u atria-agent -f"
else
  echo "doctor found problems (above, each with its fix); fix them and run this again" >&2
  exit 1
fi
