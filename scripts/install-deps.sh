#!/usr/bin/env bash
# Installs, once, the Debian packages micro needs. Idempotent: when everything is present it
# only checks and returns.
#   bash scripts/install-deps.sh run    what building and running need (make run)
#   bash scripts/install-deps.sh        that, plus what only the tests use (make test)
set -euo pipefail
BUILD_PKGS=(build-essential pkg-config
            libuv1-dev node-llhttp libwslay-dev libjansson-dev libssl-dev uuid-dev libnats-dev libnghttp2-dev)
TEST_PKGS=(clang-format libcmocka-dev curl python3 python3-pytest python3-websockets chromium
           nats-server etcd-server etcd-client prometheus sslscan nghttp2-client python3-h2
           python3-grpcio clang libclang-rt-14-dev valgrind)
PKGS=("${BUILD_PKGS[@]}")
[ "${1:-test}" = run ] || PKGS+=("${TEST_PKGS[@]}")
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-test}" != run ]; then
    # Node (for the `ws` client of the tests) may come from Debian (nodejs + npm) or from a
    # newer packaging with npm inside nodejs; ask for Debian's only when neither is there.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
