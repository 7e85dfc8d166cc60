#!/usr/bin/env bash
# make soak: the sidecar under long, mixed, hostile-to-its-dependencies load, on loopback only
# and bounded in time (not part of make test). Phase 1 holds 10,000 concurrent keep-alive
# connections; phase 2 runs SOAK_MINUTES [5] of registry reads and writes with TTLs, /rpc calls,
# proxied HTTP/1 and HTTP/2 (h2c) requests, gRPC calls (unary, server and bidi streaming) to
# grpcio nodes, and 200 WebSocket subscribers with a steady publish rate, while service nodes
# (go-micro, HTTP and gRPC) are killed and restarted and etcd and nats-server are restarted
# (--registry=etcd --broker=nats; SOAK_BACKENDS=memory for the embedded ones). It prints the
# error counts by kind, RSS every 10 s and the final registration check, and exits non-zero on
# an unexplained error, RSS growth or a lost registration. The driver is scripts/soak.py.
#
#   bash scripts/soak.sh [build/micro]
#   SOAK_MINUTES=n  SOAK_CONNECTIONS=n [10000]  SOAK_SUBSCRIBERS=n [200]  SOAK_BACKENDS=etcd|memory
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/micro}
[ -x "$bin" ] || { echo "soak: $bin not built (make first)"; exit 2; }
# Every connection is a descriptor in the sidecar and one in the client (two processes, each
# with this limit): raise it as far as allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
need=$((${SOAK_CONNECTIONS:-10000} + 2000))
if [ "$(ulimit -n)" -lt "$need" ]; then
    echo "soak: the descriptor limit is $(ulimit -n); ${SOAK_CONNECTIONS:-10000} connections need $need"
    exit 2
fi
exec /usr/bin/python3 scripts/soak.py "$bin"
