#!/usr/bin/env bash
# Installs what Sampan needs on a fresh Debian 12 machine (run as root):
#   scripts/install.sh          runtime: Python venv in .venv with the sampan package
#   scripts/install.sh --test   also what the test suite needs (etcd, test packages)
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# The node agent runs containers with runc under conmon (a small per-container monitor),
# wires pods with the CNI plugins, and the service proxy programs nftables. The CNI bridge
# (ipMasq) and portmap plugins call iptables. catatonit holds the PID namespace of pods with
# shareProcessNamespace.
debs=(python3-venv sqlite3 runc conmon catatonit containernetworking-plugins iptables iproute2 nftables nginx)
[ "$want_test" = 1 ] && debs+=(etcd-server etcd-client busybox-static docker-registry curl wrk)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages like etcd, docker-registry and nginx start a system service when installed;
  # Sampan and its tests run their own, so keep the package scripts from starting any.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$own_policy" = 1 ] && rm -f "$policy"
  # ... nor at the next boot.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now etcd docker-registry nginx >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q -e ".${extras}"
  touch "$stamp"
fi
