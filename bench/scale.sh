#!/usr/bin/env bash
# bench/scale.sh: how the sidecar's costs grow, part of `make bench` (or alone:
# `bash bench/scale.sh`). On loopback, bounded in count and time:
#   1. Start-up: time from exec to the first answered /health (median of 5), idle RSS.
#   2. Connections: C idle keep-alive connections (C = 100, 1000, 10000): RSS per connection,
#      and the CPU of a proxied request while they are held.
#   3. Nodes: one service with N nodes (N = 100, 1000, 10000): RSS per node, CPU per
#      registered node, and the CPU of a proxied request (the balancer picks among N).
#   4. Subscribers: S WebSocket subscribers on one topic (S = 10, 100, 1000): RSS per
#      subscriber and CPU per delivered message.
# CPU figures are the sidecar's own (utime + stime from /proc) divided by the work done, so
# the load clients' cost is not in them; they are coarse (10 ms ticks) but large runs make the
# error small. A flat row means the cost does not grow with the size.
#
# Knobs: BUILD [build], BENCH_PORT_BASE [18100] (ports BASE+20..BASE+23), BENCH_QUICK=1
# (smaller runs). Results to stdout and $BUILD/bench/scale.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NAME=scale
. bench/lib.sh

BUILD=${BUILD:-build}
HZ=$(getconf CLK_TCK)

BASE=${BENCH_PORT_BASE:-18100}
P_BACKEND=$((BASE + 20))
P_SIDECAR=$((BASE + 21))
QUICK=${BENCH_QUICK:-0}
REQS_DUR=3
MSGS=20000
[ "$QUICK" = 1 ] && REQS_DUR=1 && MSGS=4000

# The fd limit (inherited by the sidecar and the client, each holding one side) must cover
# 10,000 sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 10200 ] || die "the open-file limit ($(ulimit -n)) is too low for 10,000 connections"

sidecar_start() { # sidecar_start [FLAGS...]: a fresh sidecar on P_SIDECAR
    start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
        --log_level=warn --max_connections=20000 "$@"
}
sidecar_stop() {
    local pid=${PID[sidecar]}
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# proxy_cpu_us: the sidecar's CPU microseconds per proxied request over a short wrk run (10
# connections) to go.micro.srv.bench through --handler=proxy.
proxy_cpu_us() {
    local pid=${PID[sidecar]} t0 out reqs ticks
    out=$TMP/wrk-scale.txt
    t0=$(cpu_ticks "$pid")
    timeout $((REQS_DUR + 20)) wrk -t1 -c10 "-d${REQS_DUR}s" "http://127.0.0.1:$P_SIDECAR/bench/x" \
        >"$out" 2>&1 || die "wrk through the sidecar failed: $(cat "$out")"
    ticks=$(($(cpu_ticks "$pid") - t0))
    reqs=$(awk '/requests in/{print $1}' "$out")
    grep -q "Non-2xx" "$out" && die "proxied requests failed: $(cat "$out")"
    awk -v t="$ticks" -v hz="$HZ" -v r="$reqs" 'BEGIN{if(r>0) printf "%.1f", t*1e6/hz/r; else print "nan"}'
}

# register_nodes N: one POST per 1000 nodes of service go.micro.srv.bench (path /bench), all on the backend's port.
register_nodes() {
    local n=$1 from
    for ((from = 0; from < n; from += 1000)); do
        /usr/bin/python3 - "$from" "$((from + 1000 < n ? from + 1000 : n))" "$P_BACKEND" \
            >"$TMP/nodes.json" <<'PY'
import json, sys
a, b, port = (int(x) for x in sys.argv[1:])
print(json.dumps({"name": "go.micro.srv.bench", "nodes": [
    {"id": "n%d" % i, "address": "127.0.0.1", "port": port} for i in range(a, b)]}))
PY
        curl -fsS -X POST -H 'Content-Type: application/json' --data-binary @"$TMP/nodes.json" \
            "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null || die "registering nodes failed"
    done
}

startup() {
    local i t0 t1 times=()
    for i in 1 2 3 4 5; do
        t0=$(date +%s%N)
        "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" --log_level=warn \
            >"$TMP/startup.log" 2>&1 &
        local pid=$!
        until curl -fs -o /dev/null "http://127.0.0.1:$P_SIDECAR/health" 2>/dev/null; do
            kill -0 "$pid" 2>/dev/null || die "the sidecar exited at start: $(cat "$TMP/startup.log")"
            [ $(($(date +%s%N) - t0)) -lt 5000000000 ] || die "no /health within 5 s"
            sleep 0.002
        done
        t1=$(date +%s%N)
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/1e6}')")
        if [ "$i" = 5 ]; then
            sleep 1
            IDLE_KB=$(rss_kb "$pid")
        fi
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
    done
    STARTUP_MS=$(printf '%s\n' "${times[@]}" | median)
}

scale_connections() {
    sidecar_start --handler=proxy
    register_nodes 1
    local base c holder
    sleep 0.5
    base=$(rss_kb "${PID[sidecar]}")
    CONN_ROWS=()
    for c in 100 1000 10000; do
        coproc HOLD { /usr/bin/python3 bench/hold_conns.py "$P_SIDECAR" "$c" 300 2>&1; }
        holder=$HOLD_PID
        local line=""
        read -r -t 90 line <&"${HOLD[0]}" || true
        [ "${line%% *}" = ready ] || die "holding $c connections failed: $line"
        sleep 0.5
        local rss cpu
        rss=$(rss_kb "${PID[sidecar]}")
        cpu=$(proxy_cpu_us)
        CONN_ROWS+=("| $c | $(mib "$rss") | $(awk -v r="$rss" -v b="$base" -v c="$c" 'BEGIN{printf "%.1f", (r-b)/c}') | $cpu |")
        echo "  $c idle connections: RSS $(mib "$rss") MiB, proxied request ${cpu} us CPU"
        eval "exec ${HOLD[1]}>&-"
        wait "$holder" 2>/dev/null || true
        sleep 0.5
    done
    sidecar_stop
}

scale_nodes() {
    NODE_ROWS=()
    local n
    for n in 100 1000 10000; do
        sidecar_start --handler=proxy
        sleep 0.3
        local pid=${PID[sidecar]} base t0 ticks rss cpu
        base=$(rss_kb "$pid")
        t0=$(cpu_ticks "$pid")
        register_nodes "$n"
        ticks=$(($(cpu_ticks "$pid") - t0))
        sleep 0.3
        rss=$(rss_kb "$pid")
        cpu=$(proxy_cpu_us)
        NODE_ROWS+=("| $n | $(mib "$rss") | $(awk -v r="$rss" -v b="$base" -v n="$n" 'BEGIN{printf "%.2f", (r-b)/n}') | $(awk -v t="$ticks" -v hz="$HZ" -v n="$n" 'BEGIN{if(t>0) printf "%.1f", t*1e6/hz/n; else printf "< %.1f", 1e6/hz/n}') | $cpu |")
        echo "  $n nodes: RSS $(mib "$rss") MiB, proxied request ${cpu} us CPU"
        sidecar_stop
    done
}

scale_subscribers() {
    SUB_ROWS=()
    local s
    for s in 10 100 1000; do
        sidecar_start
        sleep 0.3
        local pid=${PID[sidecar]} base t0 ticks out delivered rss
        base=$(rss_kb "$pid")
        out=$TMP/fanout-$s.txt
        local m=$((MSGS * 100 / s))
        t0=$(cpu_ticks "$pid")
        sample_rss "$pid" 60 "$TMP/rss-sub-$s" &
        local sampler=$!
        timeout 90 "$BUILD/bench/ws_fanout" -p "$P_SIDECAR" -s "$s" -m "$m" -b 64 -t 60 >"$out" 2>&1 ||
            die "fan-out to $s subscribers failed: $(tail -3 "$out")"
        ticks=$(($(cpu_ticks "$pid") - t0))
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        rss=$(cat "$TMP/rss-sub-$s" 2>/dev/null || rss_kb "$pid")
        delivered=$(sed -n 's/.*delivered=\([0-9]*\).*/\1/p' "$out")
        SUB_ROWS+=("| $s | $m | $(mib "$rss") | $(awk -v r="$rss" -v b="$base" -v s="$s" 'BEGIN{printf "%.1f", (r-b)/s}') | $(awk -v t="$ticks" -v hz="$HZ" -v d="$delivered" 'BEGIN{if(d>0) printf "%.2f", t*1e6/hz/d; else print "nan"}') |")
        echo "  $s subscribers: $delivered messages delivered, RSS $(mib "$rss") MiB"
        sidecar_stop
    done
}

report() {
    cat <<EOF
## How the costs grow (bench/scale.sh)

Start-up to the first answered \`/health\`: **$STARTUP_MS ms** (median of 5); idle RSS
**$(mib "$IDLE_KB") MiB** (memory registry and broker, no TLS). For scale, the figures the other
sidecars publish for their proxies' memory: Linkerd2-proxy 17-26 MB, Dapr 23-38 MB, Envoy
40-60 MB (their documentation's numbers, not measured here).

### Idle keep-alive connections (each answered one GET /health, then held)
| connections | RSS MiB | KiB per connection | proxied request, us CPU |
|---:|---:|---:|---:|
$(printf '%s\n' "${CONN_ROWS[@]}")

### Nodes of one service (registered 1000 per POST)
| nodes | RSS MiB | KiB per node | registration, us CPU per node | proxied request, us CPU |
|---:|---:|---:|---:|---:|
$(printf '%s\n' "${NODE_ROWS[@]}")

### WebSocket subscribers on one topic (64-byte messages)
| subscribers | messages | peak RSS MiB | KiB per subscriber | us CPU per delivered message |
|---:|---:|---:|---:|---:|
$(printf '%s\n' "${SUB_ROWS[@]}")
EOF
}

main() {
    local tool
    for tool in nginx wrk curl; do
        command -v "$tool" >/dev/null || die "$tool is missing (make bench installs it)"
    done
    make --no-print-directory -j2 BUILD="$BUILD" "$BUILD/micro" "$BUILD/bench/ws_fanout" >/dev/null
    nginx_backend_conf "$TMP/nginx-backend" "$P_BACKEND"
    start backend "$P_BACKEND" nginx -p "$TMP/nginx-backend" -e "$TMP/nginx-backend/error.log" \
        -c "$TMP/nginx-backend/nginx.conf"
    echo "scale: start-up"
    startup
    echo "scale: idle connections"
    scale_connections
    echo "scale: nodes"
    scale_nodes
    echo "scale: subscribers"
    scale_subscribers
    mkdir -p "$BUILD/bench"
    report | tee "$BUILD/bench/scale.md"
}

main "$@"
