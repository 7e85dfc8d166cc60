#!/usr/bin/env bash
# bench/run.sh: the side-by-side benchmarks behind `make bench` (issues 3 and 4).
#   1. HTTP proxy: wrk -t1 -c50 against one nginx fixed-200 backend, directly and through
#      nginx (keep-alive reverse proxy), haproxy and `micro sidecar --handler=proxy`; then
#      /rpc against bench/rpc_backend, beside the same backend called directly.
#   2. Broker fan-out: 1 publisher -> 100 WebSocket subscribers on the sidecar (bench/ws_fanout)
#      beside nats-server with 100 subscribers through the NATS C client (bench/nats_fanout).
#   3. Cross-sidecar fan-out (issue 10): three sidecars with --broker=nats on one nats-server,
#      1 publisher on sidecar A, 100 WebSocket subscribers spread over B and C, beside the same
#      fan-out with libnats clients straight on nats-server (the nats-SIZE runs of 2).
#   4. The etcd registry (bench/registry_etcd.sh): reads through the sidecar vs straight from
#      etcd, and etcd requests per sidecar at steady state (BENCH_ETCD_*, BENCH_QUICK=1).
#   5. TLS termination (bench/tls.sh, issue 11): the sidecar proxying over https vs nginx
#      terminating TLS, keep-alive and a handshake per request, and the sidecar's RSS.
#   6. HTTP/2 clients (bench/h2.sh, issue 12): h2load -c10 -m10 h2c through the sidecar's proxy
#      vs nginx `listen ... http2` proxying, to the same HTTP/1.1 backend.
#   7. gRPC (bench/grpc.sh, issue 12): h2load unary calls through the sidecar vs nginx
#      grpc_pass to the same h2c backend (bench/grpc_backend.c): req/s and p99.
#   8. System calls per proxied request (bench/syscalls.sh: strace -c beside nginx and haproxy)
#      and instructions and allocations per proxied request and per /rpc call
#      (bench/callgrind.sh, beside nginx), on ports BASE+30..BASE+33.
#   9. How the costs grow (bench/scale.sh): start-up time, idle RSS, and three sizes each of
#      idle connections, nodes of a service and WebSocket subscribers.
# Everything listens on 127.0.0.1 only, every loop is bounded, and every process started here
# is stopped on exit (trap). Results go to stdout and to $BUILD/bench/results.md.
#
# Knobs (environment): BENCH_ONLY [unset; "cross": only the broker sections 2 and 3],
# BUILD [build], BENCH_DURATION [5] seconds per wrk run, BENCH_ROUNDS [3],
# BENCH_CONNECTIONS [50], BENCH_MESSAGES [20000] per fan-out run, BENCH_SUBSCRIBERS [100],
# BENCH_PORT_BASE [18100] (ports BASE..BASE+10 must be free).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-50}
MSGS=${BENCH_MESSAGES:-20000}
SUBS=${BENCH_SUBSCRIBERS:-100}
BASE=${BENCH_PORT_BASE:-18100}
P_BACKEND=$BASE
P_NGINX=$((BASE + 1))
P_HAPROXY=$((BASE + 2))
P_SIDECAR=$((BASE + 3))
P_RPC=$((BASE + 4))
P_BROKER=$((BASE + 5))
P_NATS=$((BASE + 6))
P_XA=$((BASE + 8)) # the cross-sidecar run's sidecars A (publisher), B and C (subscribers)
P_XB=$((BASE + 9))
P_XC=$((BASE + 10))
HZ=$(getconf CLK_TCK)

# --- dependencies --------------------------------------------------------------------------
# Debian packages, installed once (idempotent like scripts/install-deps.sh). Installing nginx
# or haproxy may enable their system services; this script never uses them: every server
# here runs in the foreground from its own config in a temporary folder.
install_deps() {
    local pkgs=(nginx haproxy wrk nats-server etcd-server curl libuv1-dev libnats-dev procps)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"
    fi
}

# --- process bookkeeping, sampling, nginx configurations: bench/lib.sh ------------------------
BENCH_NAME=bench
# shellcheck source=bench/lib.sh
source bench/lib.sh

# --- 1. HTTP proxy ---------------------------------------------------------------------------
write_configs() {
    nginx_backend_conf "$TMP/nginx-backend" "$P_BACKEND"
    nginx_proxy_conf "$TMP/nginx-proxy" "$P_NGINX" "$P_BACKEND"
    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    option forwardfor
    http-reuse always
frontend bench
    bind 127.0.0.1:$P_HAPROXY
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend backend
backend backend
    server b1 127.0.0.1:$P_BACKEND
EOF
}

register() { # register NAME ID PORT: the node in the sidecar's registry (SPEC 3.1)
    curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"nodes\":[{\"id\":\"$2\",\"address\":\"127.0.0.1\",\"port\":$3}]}" \
        "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null
}
deregister() {
    curl -fsS -X DELETE -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"nodes\":[{\"id\":\"$2\",\"address\":\"127.0.0.1\",\"port\":$3}]}" \
        "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null
}

# wrk_run NAME ROUND PID URL [LUA]: one wrk run; appends "rps p99_ms errors rss_kb cpu_us_per_req"
# to $TMP/res-NAME. PID is the server whose RSS and CPU are measured (0 for none).
wrk_run() {
    local name=$1 round=$2 pid=$3 url=$4 lua=${5:-}
    local out="$TMP/wrk-$name-$round.txt"
    local args=(-t1 "-c$CONNS" "-d${DUR}s" --latency)
    [ -n "$lua" ] && args+=(-s "$lua")
    local t0=0
    if [ "$pid" != 0 ]; then
        t0=$(cpu_ticks "$pid")
        sample_rss "$pid" "$DUR" "$TMP/rss-$name-$round" &
    fi
    timeout $((DUR + 20)) wrk "${args[@]}" "$url" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk against $name failed"
    }
    local cpu_us=nan rss=0
    if [ "$pid" != 0 ]; then
        local ticks=$(($(cpu_ticks "$pid") - t0))
        wait "$!" 2>/dev/null || true
        rss=$(cat "$TMP/rss-$name-$round" 2>/dev/null || rss_kb "$pid")
        local reqs
        reqs=$(awk '/requests in/{print $1}' "$out")
        cpu_us=$(awk -v t="$ticks" -v hz="$HZ" -v r="$reqs" 'BEGIN{if(r>0) printf "%.1f", t*1e6/hz/r; else print "nan"}')
    fi
    local rps p99 errs
    rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
    p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$out")")
    errs=$(awk '/Non-2xx/{e+=$NF} /Socket errors/{gsub(",","");e+=$4+$6+$8+$10} END{print e+0}' "$out")
    echo "$rps $p99 $errs $rss $cpu_us" >>"$TMP/res-$name"
    printf '  %-14s round %d: %10.0f req/s  p99 %7.3f ms  errors %s\n' "$name" "$round" "$rps" "$p99" "$errs"
}

col_median() { awk -v c="$2" '{print $c}' "$TMP/res-$1" | median; }
col_max() { awk -v c="$2" 'BEGIN{m=0} {if($c>m)m=$c} END{print m}' "$TMP/res-$1"; }
col_sum() { awk -v c="$2" '{s+=$c} END{print s+0}' "$TMP/res-$1"; }

bench_proxy() {
    write_configs
    start backend "$P_BACKEND" nginx -p "$TMP/nginx-backend" -e "$TMP/nginx-backend/error.log" \
        -c "$TMP/nginx-backend/nginx.conf"
    start nginx "$P_NGINX" nginx -p "$TMP/nginx-proxy" -e "$TMP/nginx-proxy/error.log" \
        -c "$TMP/nginx-proxy/nginx.conf"
    start haproxy "$P_HAPROXY" haproxy -db -f "$TMP/haproxy.cfg"
    start rpc_backend "$P_RPC" "$BUILD/bench/rpc_backend" "$P_RPC"
    start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
        --handler=proxy --log_level=warn
    register go.micro.srv.bench b1 "$P_BACKEND"

    # Every path answers before anything is measured.
    local name url
    for url in "$P_BACKEND" "$P_NGINX" "$P_HAPROXY" "$P_SIDECAR"; do
        [ "$(curl -fsS "http://127.0.0.1:$url/bench/x?q=1")" = ok ] ||
            die "GET /bench/x through port $url did not answer ok"
    done
    sleep 1
    SIDECAR_IDLE_KB=$(rss_kb "${PID[sidecar]}")

    declare -A URL=([direct]="http://127.0.0.1:$P_BACKEND/bench/x"
        [nginx-proxy]="http://127.0.0.1:$P_NGINX/bench/x"
        [haproxy]="http://127.0.0.1:$P_HAPROXY/bench/x"
        [sidecar-proxy]="http://127.0.0.1:$P_SIDECAR/bench/x")
    declare -A PIDOF=([direct]="${PID[backend]}" [nginx-proxy]="${PID[nginx]}"
        [haproxy]="${PID[haproxy]}" [sidecar-proxy]="${PID[sidecar]}")
    PROXY_TARGETS=(direct nginx-proxy haproxy sidecar-proxy)
    echo "bench: proxy, wrk -t1 -c$CONNS -d${DUR}s, $ROUNDS rounds (warm-up 1 s each first)"
    for name in "${PROXY_TARGETS[@]}"; do
        timeout 20 wrk -t1 "-c$CONNS" -d1s "${URL[$name]}" >/dev/null
    done
    for r in $(seq 1 "$ROUNDS"); do
        for name in "${PROXY_TARGETS[@]}"; do
            wrk_run "$name" "$r" "${PIDOF[$name]}" "${URL[$name]}"
        done
    done

    # /rpc: the same service name now points at the JSON-RPC backend.
    deregister go.micro.srv.bench b1 "$P_BACKEND"
    register go.micro.srv.bench b2 "$P_RPC"
    local reply
    reply=$(curl -fsS -H 'Content-Type: application/json' \
        -d '{"service":"go.micro.srv.bench","method":"Bench.Call","request":{}}' \
        "http://127.0.0.1:$P_SIDECAR/rpc")
    [ "$reply" = '{"ok":true}' ] || die "/rpc answered '$reply', expected {\"ok\":true}"
    RPC_TARGETS=(rpc-direct sidecar-rpc)
    echo "bench: /rpc, wrk -t1 -c$CONNS -d${DUR}s, $ROUNDS rounds"
    timeout 20 wrk -t1 "-c$CONNS" -d1s -s bench/jsonrpc.lua "http://127.0.0.1:$P_RPC/" >/dev/null
    timeout 20 wrk -t1 "-c$CONNS" -d1s -s bench/rpc.lua "http://127.0.0.1:$P_SIDECAR/rpc" >/dev/null
    for r in $(seq 1 "$ROUNDS"); do
        wrk_run rpc-direct "$r" "${PID[rpc_backend]}" "http://127.0.0.1:$P_RPC/" bench/jsonrpc.lua
        wrk_run sidecar-rpc "$r" "${PID[sidecar]}" "http://127.0.0.1:$P_SIDECAR/rpc" bench/rpc.lua
    done
    sleep 1
    SIDECAR_AFTER_KB=$(rss_kb "${PID[sidecar]}")
}

# --- 2. Broker fan-out -----------------------------------------------------------------------
# fanout_run NAME ROUND PID CMD...: one fan-out run; appends "msgs_per_s rss_kb cpu_us_per_msg"
# to $TMP/res-NAME.
fanout_run() {
    local name=$1 round=$2 pid=$3
    shift 3
    local out="$TMP/fanout-$name-$round.txt"
    local t0
    t0=$(cpu_ticks "$pid")
    sample_rss "$pid" 30 "$TMP/rss-$name-$round" &
    local sampler=$!
    timeout 60 "$@" >"$out" 2>&1 || {
        cat "$out" >&2
        kill "$sampler" 2>/dev/null || true
        die "$name round $round did not deliver every message"
    }
    local ticks=$(($(cpu_ticks "$pid") - t0))
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local rss
    rss=$(rss_kb "$pid")
    if [ -s "$TMP/rss-$name-$round" ] && [ "$(cat "$TMP/rss-$name-$round")" -gt "$rss" ]; then
        rss=$(cat "$TMP/rss-$name-$round")
    fi
    local rate delivered
    rate=$(sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' "$out")
    delivered=$(sed -n 's/.*delivered=\([0-9]*\).*/\1/p' "$out")
    local cpu_us
    cpu_us=$(awk -v t="$ticks" -v hz="$HZ" -v d="$delivered" 'BEGIN{if(d>0) printf "%.3f", t*1e6/hz/d; else print "nan"}')
    echo "$rate $rss $cpu_us" >>"$TMP/res-$name"
    printf '  %-14s round %d: %10s msgs/s delivered  (%s)\n' "$name" "$round" "$rate" "$(tail -1 "$out")"
}

bench_broker() {
    start broker "$P_BROKER" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_BROKER" \
        --log_level=warn
    start nats "$P_NATS" nats-server -a 127.0.0.1 -p "$P_NATS"
    sleep 1
    BROKER_IDLE_KB=$(rss_kb "${PID[broker]}")
    NATS_IDLE_KB=$(rss_kb "${PID[nats]}")
    echo "bench: fan-out, 1 publisher -> $SUBS subscribers, $MSGS messages per run, $ROUNDS rounds"
    for r in $(seq 1 "$ROUNDS"); do
        for size in 64 1024; do
            fanout_run "sidecar-ws-$size" "$r" "${PID[broker]}" "$BUILD/bench/ws_fanout" \
                -p "$P_BROKER" -s "$SUBS" -m "$MSGS" -b "$size" -t 40
            fanout_run "nats-$size" "$r" "${PID[nats]}" "$BUILD/bench/nats_fanout" \
                -p "$P_NATS" -s "$SUBS" -m "$MSGS" -b "$size" -t 40
        done
    done
    BROKER_AFTER_KB=$(rss_kb "${PID[broker]}")
}

# Three sidecars sharing nats-server: the publisher's frames cross A -> NATS -> B and C, each
# of which fans out to its 50 WebSocket subscribers. -d: a pause after the last upgrade so B's
# and C's NATS subscriptions have reached the server before the first publish. CPU and RSS
# are B's (a subscriber-side sidecar: where the fan-out work is).
bench_cross() {
    local p
    for p in "$P_XA" "$P_XB" "$P_XC"; do
        start "x$p" "$p" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$p" \
            --broker=nats --broker_address="nats://127.0.0.1:$P_NATS" --log_level=warn
    done
    sleep 1
    echo "bench: cross-sidecar fan-out through nats-server, 1 publisher on A -> $SUBS subscribers on B and C"
    for r in $(seq 1 "$ROUNDS"); do
        for size in 64 1024; do
            fanout_run "cross-$size" "$r" "${PID[x$P_XB]}" "$BUILD/bench/ws_fanout" \
                -P "$P_XA" -p "$P_XB,$P_XC" -d 300 -s "$SUBS" -m "$MSGS" -b "$size" -t 40
        done
    done
}

# --- report ----------------------------------------------------------------------------------
report() {
    echo "## Results ($(date -u +%Y-%m-%d), $(nproc) CPUs: $(lscpu | sed -n 's/^Model name: *//p'))"
    echo
    [ "${BENCH_ONLY:-}" = cross ] || report_proxy
    report_broker
}

report_proxy() {
    local nginx_rps sc_rps n
    nginx_rps=$(col_median nginx-proxy 1)
    sc_rps=$(col_median sidecar-proxy 1)
    echo "### HTTP proxy: wrk -t1 -c$CONNS -d${DUR}s, median of $ROUNDS rounds"
    echo
    echo "| target | req/s | vs nginx-proxy | p99 ms | errors | max RSS MiB | CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for n in "${PROXY_TARGETS[@]}"; do
        printf '| %s | %.0f | %s | %.2f | %s | %s | %s |\n' "$n" "$(col_median "$n" 1)" \
            "$(ratio "$(col_median "$n" 1)" "$nginx_rps")" "$(col_median "$n" 2)" \
            "$(col_sum "$n" 3)" "$(mib "$(col_max "$n" 4)")" "$(col_median "$n" 5)"
    done
    echo
    echo "sidecar / nginx-proxy throughput: **$(ratio "$sc_rps" "$nginx_rps")x**;" \
        "p99 sidecar $(col_median sidecar-proxy 2) ms vs nginx $(col_median nginx-proxy 2) ms."
    echo
    echo "### /rpc against bench/rpc_backend: wrk -t1 -c$CONNS -d${DUR}s, median of $ROUNDS rounds"
    echo
    echo "| target | req/s | vs direct | p99 ms | errors | max RSS MiB | CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for n in "${RPC_TARGETS[@]}"; do
        printf '| %s | %.0f | %s | %.2f | %s | %s | %s |\n' "$n" "$(col_median "$n" 1)" \
            "$(ratio "$(col_median "$n" 1)" "$(col_median rpc-direct 1)")" "$(col_median "$n" 2)" \
            "$(col_sum "$n" 3)" "$(mib "$(col_max "$n" 4)")" "$(col_median "$n" 5)"
    done
    echo
    echo "Sidecar RSS (proxy instance): idle $(mib "$SIDECAR_IDLE_KB") MiB," \
        "max under proxy load $(mib "$(col_max sidecar-proxy 4)") MiB," \
        "max under /rpc load $(mib "$(col_max sidecar-rpc 4)") MiB," \
        "after the load $(mib "$SIDECAR_AFTER_KB") MiB."
    echo
}

report_broker() {
    local size
    echo "### Broker fan-out: 1 publisher -> $SUBS subscribers, $MSGS messages, median of $ROUNDS rounds"
    echo
    echo "| message | sidecar msgs/s | nats-server msgs/s | sidecar / nats | sidecar CPU µs/msg | nats-server CPU µs/msg | sidecar max RSS MiB | nats-server max RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    local size
    for size in 64 1024; do
        printf '| %s B | %.0f | %.0f | **%s** | %s | %s | %s | %s |\n' "$size" \
            "$(col_median "sidecar-ws-$size" 1)" "$(col_median "nats-$size" 1)" \
            "$(ratio "$(col_median "sidecar-ws-$size" 1)" "$(col_median "nats-$size" 1)")" \
            "$(col_median "sidecar-ws-$size" 3)" "$(col_median "nats-$size" 3)" \
            "$(mib "$(col_max "sidecar-ws-$size" 2)")" "$(mib "$(col_max "nats-$size" 2)")"
    done
    echo
    echo "Broker RSS idle: sidecar $(mib "$BROKER_IDLE_KB") MiB, nats-server $(mib "$NATS_IDLE_KB") MiB;" \
        "sidecar after the load $(mib "$BROKER_AFTER_KB") MiB."
    echo
    echo "### Cross-sidecar fan-out (--broker=nats): 1 publisher on sidecar A -> $SUBS WebSocket subscribers on sidecars B and C, one nats-server, $MSGS messages, median of $ROUNDS rounds"
    echo
    echo "Every run delivered every message (ws_fanout/nats_fanout exit non-zero otherwise and the bench stops). Direct = the same fan-out with $SUBS libnats subscriber connections straight on nats-server (bench/nats_fanout). Target: cross / direct >= 0.8."
    echo
    echo "| message | cross-sidecar msgs/s | direct libnats msgs/s | cross / direct | sidecar B CPU µs/msg | sidecar B max RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|"
    for size in 64 1024; do
        printf '| %s B | %.0f | %.0f | **%s** | %s | %s |\n' "$size" \
            "$(col_median "cross-$size" 1)" "$(col_median "nats-$size" 1)" \
            "$(ratio "$(col_median "cross-$size" 1)" "$(col_median "nats-$size" 1)")" \
            "$(col_median "cross-$size" 3)" "$(mib "$(col_max "cross-$size" 2)")"
    done
}

main() {
    install_deps
    command -v wrk >/dev/null || die "wrk is missing"
    echo "bench: building $BUILD/micro and the load clients"
    make --no-print-directory -j2 BUILD="$BUILD" "$BUILD/micro" "$BUILD/bench/rpc_backend" \
        "$BUILD/bench/ws_fanout" "$BUILD/bench/nats_fanout" >"$TMP/make.log" 2>&1 || {
        cat "$TMP/make.log" >&2
        die "build failed"
    }
    local started=$SECONDS
    [ "${BENCH_ONLY:-}" = cross ] || bench_proxy
    bench_broker
    bench_cross
    mkdir -p "$BUILD/bench"
    report | tee "$BUILD/bench/results.md"
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" bash bench/registry_etcd.sh | tee -a "$BUILD/bench/results.md"
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" bash bench/tls.sh | tee -a "$BUILD/bench/results.md"
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" bash bench/h2.sh | tee -a "$BUILD/bench/results.md"
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" bash bench/grpc.sh | tee -a "$BUILD/bench/results.md"
    # The noise-free figures (issue 13): system calls and instructions per proxied request.
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" BENCH_PORT_BASE=$((BASE + 30)) bash bench/syscalls.sh | tee -a "$BUILD/bench/results.md"
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" BENCH_PORT_BASE=$((BASE + 30)) bash bench/callgrind.sh | tee -a "$BUILD/bench/results.md"
    # How the costs grow with connections, nodes and subscribers (issue 13).
    echo | tee -a "$BUILD/bench/results.md"
    BUILD="$BUILD" bash bench/scale.sh | tee -a "$BUILD/bench/results.md"
    echo
    echo "bench: done in $((SECONDS - started)) s; results in $BUILD/bench/results.md"
}

main "$@"
