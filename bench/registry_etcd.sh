#!/usr/bin/env bash
# bench/registry_etcd.sh: the etcd registry benchmarks (issue 10), run by bench/run.sh.
#   1. Registry reads: wrk GET /registry?service=bench through `micro sidecar --registry=etcd`
#      (served from the local view) beside the same read as a range straight from etcd's
#      JSON gateway (bench/etcd_range.lua). Target: the sidecar >= 10x.
#   2. etcd requests per sidecar at steady state: grpc_server_started_total at etcd's /metrics
#      over a window, with SIDECARS sidecars owning NODES nodes each. Target: at most one per
#      TTL/3 per sidecar, whatever NODES is.
# Knobs: BUILD [build], BENCH_DURATION [5] s per wrk run, BENCH_CONNECTIONS [50],
# BENCH_ETCD_WINDOW [120] s (BENCH_QUICK=1: 15 s), BENCH_ETCD_TTL [6] s, BENCH_ETCD_NODES [50],
# BENCH_ETCD_SIDECARS [2], BENCH_ETCD_PORT_BASE [18140]. Markdown on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNECTIONS:-50}
WINDOW=${BENCH_ETCD_WINDOW:-120}
[ "${BENCH_QUICK:-0}" = 1 ] && WINDOW=${BENCH_ETCD_WINDOW:-15}
TTL=${BENCH_ETCD_TTL:-6}
NODES=${BENCH_ETCD_NODES:-50}
SIDECARS=${BENCH_ETCD_SIDECARS:-2}
BASE=${BENCH_ETCD_PORT_BASE:-18140}
P_ETCD=$BASE
P_PEER=$((BASE + 1))
ETCD=127.0.0.1:$P_ETCD

TMP=$(mktemp -d /tmp/micro-bench-etcd.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "bench-etcd: $*" >&2; exit 1; }
wait_for() { # wait_for SECONDS CMD...: bounded poll
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
started_total() {
    curl -s "http://$ETCD/metrics" | awk '/^grpc_server_started_total/ {s += $2} END {printf "%d", s}'
}

command -v etcd >/dev/null || die "etcd is missing (apt-get install etcd-server)"
etcd --name default --data-dir "$TMP/etcd" --listen-client-urls "http://$ETCD" \
    --advertise-client-urls "http://$ETCD" --listen-peer-urls "http://127.0.0.1:$P_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$P_PEER" \
    --initial-cluster "default=http://127.0.0.1:$P_PEER" >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
wait_for 20 curl -sf "http://$ETCD/health" || die "etcd did not start"

for i in $(seq 1 "$SIDECARS"); do
    port=$((BASE + 1 + i))
    "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$port" --registry=etcd \
        --registry_address="$ETCD" --register_ttl="${TTL}s" --register_interval="$((TTL - 1))s" \
        --log_level=warn >"$TMP/sidecar-$i.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 curl -sf "http://127.0.0.1:$port/registry" || die "sidecar $i did not start"
    # NODES nodes owned by this sidecar (on its lease): the steady-state cost must not grow
    # with them.
    for n in $(seq 1 "$NODES"); do
        curl -sf -X POST "http://127.0.0.1:$port/registry" -H 'Content-Type: application/json' \
            -d "{\"name\":\"bench\",\"nodes\":[{\"id\":\"s$i-n$n\",\"address\":\"127.0.0.1\",\"port\":$((9000 + n))}]}" \
            >/dev/null || die "registration failed"
    done
done
P1=$((BASE + 2))
want=$((SIDECARS * NODES))
have() { [ "$(curl -s "http://127.0.0.1:$P1/registry?service=bench" | grep -o '"id"' | wc -l)" = "$want" ]; }
wait_for 10 have || die "the view did not reach $want nodes"

wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$P1/registry?service=bench" >"$TMP/wrk-sidecar"
wrk -t1 -c"$CONNS" -d"${DUR}s" -s bench/etcd_range.lua "http://$ETCD/v3/kv/range" >"$TMP/wrk-etcd"
SC=$(rps "$TMP/wrk-sidecar")
ET=$(rps "$TMP/wrk-etcd")

# Steady state: nothing but the sidecars' keep-alives (the watch is one long-lived stream).
sleep 2
before=$(started_total)
sleep "$WINDOW"
after=$(started_total)
REQS=$((after - before))

echo "### etcd registry ($SIDECARS sidecars x $NODES nodes, TTL ${TTL}s)"
echo
echo "| GET /registry?service=bench ($want nodes) | req/s |"
echo "|---|---|"
printf '| sidecar --registry=etcd (local view) | %.0f |\n' "$SC"
printf '| etcd gateway /v3/kv/range (same keys) | %.0f |\n' "$ET"
awk -v a="$SC" -v b="$ET" 'BEGIN{printf "| **ratio** | **%.1fx** (target >= 10x) |\n", a/b}'
echo
awk -v r="$REQS" -v s="$SIDECARS" -v w="$WINDOW" -v t="$TTL" 'BEGIN{
    per = r / s; bound = w / (t / 3);
    printf "Steady state over %d s: %d etcd requests (grpc_server_started_total) from %d sidecars = %.1f per sidecar; bound one per TTL/3 = %.1f per sidecar (%s).\n",
        w, r, s, per, bound, per <= bound + 1 ? "met" : "NOT met"}'
