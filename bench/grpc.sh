#!/usr/bin/env bash
# gRPC unary calls, side by side in one run (issue 12): h2load POSTs of one framed gRPC message
# (content-type application/grpc, te: trailers) over h2c, BENCH_GRPC_CONNS connections with
# BENCH_GRPC_STREAMS streams each, to the same h2c gRPC backend (bench/grpc_backend.c, C and
# nghttp2, so the backend is not what is measured):
#   - straight to the backend (the ceiling);
#   - through nginx: `listen ... http2` (h2c) and `grpc_pass` with upstream keep-alive;
#   - through `micro sidecar` (any handler), the node registered in its registry.
# req/s and p99 latency (from h2load's per-request log), medians of BENCH_ROUNDS runs whose
# order alternates. Prints a markdown table on stdout.
#   BUILD [build], BENCH_DURATION [5] seconds per run, BENCH_ROUNDS [3],
#   BENCH_GRPC_CONNS [10], BENCH_GRPC_STREAMS [10], BENCH_PORT_BASE [19600]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_GRPC_CONNS:-10}
STREAMS=${BENCH_GRPC_STREAMS:-10}
BASE=${BENCH_PORT_BASE:-19600}
P_BACKEND=$BASE P_NGINX=$((BASE + 1)) P_SIDECAR=$((BASE + 2))
for tool in nginx h2load curl; do
    command -v "$tool" >/dev/null || { echo "bench/grpc.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$BUILD/micro" ] || { echo "bench/grpc.sh: build $BUILD/micro first" >&2; exit 1; }
make --no-print-directory -s BUILD="$BUILD" "$BUILD/bench/grpc_backend" >/dev/null

TMP=$(mktemp -d /tmp/micro-bench-grpc.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "bench/grpc.sh: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # start NAME PORT CMD...: in the background, until PORT accepts (5 s bound)
    local name=$1 port=$2
    shift 2
    port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 50); do
        port_open "$port" && return 0
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    die "$name did not listen on $port"
}

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    # nginx opens one upstream connection per stream in flight: room for all of them
    upstream grpc_backend { server 127.0.0.1:$P_BACKEND; keepalive 256; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$P_NGINX http2 backlog=4096;
        http2_max_concurrent_streams 128;
        location / { grpc_pass grpc://grpc_backend; }
    }
}
EOF
start backend "$P_BACKEND" "$BUILD/bench/grpc_backend" "$P_BACKEND"
start nginx "$P_NGINX" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
    --log_level=warn
curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"g1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
    "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null

# One framed gRPC message: flag 0, length 5, "hello".
printf '\000\000\000\000\005hello' >"$TMP/msg.bin"
URL_PATH=/go.micro.srv.bench.Greeter/Hello
H2LOAD=(-c "$CONNS" -m "$STREAMS" -d "$TMP/msg.bin" -H 'content-type: application/grpc'
        -H 'te: trailers')
for p in "$P_BACKEND" "$P_NGINX" "$P_SIDECAR"; do
    out=$(timeout 20 h2load -n 100 -c 1 "${H2LOAD[@]:2}" "http://127.0.0.1:$p$URL_PATH" 2>&1) ||
        die "h2load against $p failed: $out"
    grep -q "100 succeeded" <<<"$out" || die "calls through $p did not succeed: $out"
done

# h2load_run PORT: "req/s p99_ms" of one timed run (1 s warm-up); any failed call fails it.
h2load_run() {
    local port=$1 out="$TMP/h2load.out" log="$TMP/h2load.log"
    rm -f "$log"
    timeout $((DUR + 30)) h2load "${H2LOAD[@]}" -D "$DUR" --warm-up-time=1 --log-file="$log" \
        "http://127.0.0.1:$port$URL_PATH" >"$out" 2>&1 || die "h2load against $port: $(cat "$out")"
    grep -Eq ' 0 failed, 0 errored, 0 timeout' "$out" || die "failed calls on $port: $(cat "$out")"
    grep -Eq 'status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' "$out" ||
        die "non-2xx answers on $port: $(cat "$out")"
    local rps p99
    rps=$(awk '/^finished in/{for(i=1;i<=NF;i++) if($i=="req/s,") {printf "%.0f", $(i-1)}}' "$out")
    p99=$(awk -F'\t' '{print $3}' "$log" | sort -n |
        awk '{v[NR]=$1} END{i=int(NR*0.99); if(i<1)i=1; printf "%.2f", v[i]/1000}')
    echo "$rps $p99"
}

median() { sort -g | awk '{v[NR]=$1} END{if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }
: >"$TMP/res_backend"; : >"$TMP/res_nginx"; : >"$TMP/res_sidecar"
for round in $(seq 1 "$ROUNDS"); do
    order="backend nginx sidecar"
    [ $((round % 2)) -eq 0 ] && order="sidecar nginx backend"
    for who in $order; do
        case $who in
        backend) port=$P_BACKEND ;;
        nginx) port=$P_NGINX ;;
        sidecar) port=$P_SIDECAR ;;
        esac
        h2load_run "$port" >>"$TMP/res_$who"
    done
done
col() { awk -v c="$2" '{print $c}' "$TMP/res_$1" | median; }
RPS_B=$(col backend 1) P99_B=$(col backend 2)
RPS_N=$(col nginx 1) P99_N=$(col nginx 2)
RPS_S=$(col sidecar 1) P99_S=$(col sidecar 2)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if(b>0) printf "%.2f", a/b; else print "n/a"}'; }
cat <<EOF
### gRPC unary calls (h2load -c$CONNS -m$STREAMS -D${DUR}s, h2c, one 10-byte framed message, median of $ROUNDS)

| path | req/s | p99 ms |
|---|---:|---:|
| straight to the backend (ceiling) | $RPS_B | $P99_B |
| nginx \`grpc_pass\` (keep-alive upstream) | $RPS_N | $P99_N |
| micro sidecar (h2c pool, multiplexed) | $RPS_S | $P99_S |

sidecar / nginx: req/s $(ratio "$RPS_S" "$RPS_N")x (target >= 1.0), p99 $(ratio "$P99_S" "$P99_N")x
(target <= 1.0).
EOF
