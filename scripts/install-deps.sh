#!/usr/bin/env bash
# Installs, once, every Debian package that building, running and testing micro needs.
# Idempotent: when everything is present it only checks and returns.
set -euo pipefail
PKGS=(build-essential pkg-config clang-format
      libuv1-dev node-llhttp libwslay-dev libjansson-dev libssl-dev uuid-dev libcmocka-dev
      libnats-dev
      curl python3 python3-pytest python3-websockets chromium)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from Debian (nodejs + npm) or from a newer packaging with npm inside nodejs;
# ask for Debian's only when neither is on the machine.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
