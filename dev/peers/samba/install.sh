#!/usr/bin/env bash
# Installs the Debian packages a local Samba AD DC needs (dev/test only). Idempotent: exits at once when
# everything is already there. Runs as root (or through sudo when available).
set -euo pipefail

packages=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind krb5-user ldb-tools smbclient ldap-utils)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ] && command -v samba >/dev/null && command -v samba-tool >/dev/null; then
  echo "samba: all packages present"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=(sudo); else
    echo "samba install needs root (missing: ${missing[*]})" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# krb5-config asks for a default realm; answer it so the install never prompts.
printf '%s\n' \
  'krb5-config krb5-config/default_realm string ATRIA.TEST' \
  'krb5-config krb5-config/kerberos_servers string' \
  'krb5-config krb5-config/admin_server string' \
  'krb5-config krb5-config/add_servers_realm string ATRIA.TEST' \
  'krb5-config krb5-config/add_servers boolean false' \
  'krb5-config krb5-config/read_conf boolean true' | "${SUDO[@]}" debconf-set-selections

# Keep package scripts from starting the system samba/winbind services: tests run their own DC.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

# Serialise with other apt users on a shared machine.
apt_get() { "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq
apt_get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}"

# Belt and braces: if a unit got started anyway, stop it so it does not hold 389/636/88.
for unit in samba-ad-dc smbd nmbd winbind; do
  "${SUDO[@]}" systemctl stop "$unit" >/dev/null 2>&1 || true
done
echo "samba: installed ${missing[*]}"
