#!/usr/bin/env bash
# HTTP/2 clients proxied to an HTTP/1.1 backend, side by side in one run (issue 12):
#   - `micro sidecar --handler=proxy`, h2c by prior knowledge on its one API port;
#   - nginx with `listen ... http2` on plain TCP (h2c prior knowledge) and proxy_pass with a
#     keep-alive upstream, setting the X-Forwarded-* headers the sidecar sets;
# both to the same nginx fixed-200 backend, one worker/loop each. h2load -c10 -m10: 100
# concurrent streams over 10 connections, for BENCH_DURATION seconds after a 1 s warm-up.
# Prints a markdown table on stdout.
#   BUILD [build], BENCH_DURATION [5], BENCH_ROUNDS [3] (medians), BENCH_PORT_BASE [19500]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
BASE=${BENCH_PORT_BASE:-19500}
P_BACKEND=$BASE P_NGINX=$((BASE + 1)) P_SIDECAR=$((BASE + 2))
for tool in nginx h2load curl; do
    command -v "$tool" >/dev/null || { echo "bench/h2.sh: $tool is missing (nghttp2-client, nginx)" >&2; exit 1; }
done
[ -x "$BUILD/micro" ] || { echo "bench/h2.sh: build $BUILD/micro first" >&2; exit 1; }

TMP=$(mktemp -d /tmp/micro-bench-h2.XXXXXX)
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
die() { echo "bench/h2.sh: $*" >&2; exit 1; }
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

for d in backend proxy; do
    mkdir -p "$TMP/$d"
    cat >"$TMP/$d/common.conf" <<EOF
client_body_temp_path $TMP/$d/client_body;
proxy_temp_path $TMP/$d/proxy;
fastcgi_temp_path $TMP/$d/fastcgi;
uwsgi_temp_path $TMP/$d/uwsgi;
scgi_temp_path $TMP/$d/scgi;
access_log off;
keepalive_requests 1000000;
keepalive_timeout 60s;
EOF
done
cat >"$TMP/backend/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 4096; }
http {
    include $TMP/backend/common.conf;
    server {
        listen 127.0.0.1:$P_BACKEND backlog=4096;
        location / { default_type text/plain; return 200 "ok\n"; }
    }
}
EOF
cat >"$TMP/proxy/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/proxy/nginx.pid;
error_log $TMP/proxy/error.log warn;
events { worker_connections 4096; }
http {
    include $TMP/proxy/common.conf;
    http2_max_requests 1000000;
    upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 128; }
    server {
        listen 127.0.0.1:$P_NGINX http2 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
EOF
start backend "$P_BACKEND" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" \
    -c "$TMP/backend/nginx.conf"
start nginx "$P_NGINX" nginx -p "$TMP/proxy" -e "$TMP/proxy/error.log" -c "$TMP/proxy/nginx.conf"
start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
    --handler=proxy --log_level=warn
curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
    "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null
for p in "$P_NGINX" "$P_SIDECAR"; do
    [ "$(curl -fsS --http2-prior-knowledge "http://127.0.0.1:$p/bench/x")" = ok ] ||
        die "GET /bench/x over h2c on port $p did not answer ok"
done

# h2load_rps PORT: requests/s of one run; any failed or non-2xx request fails the run.
h2load_rps() {
    local out="$TMP/h2load.out"
    timeout $((DUR + 30)) h2load -c10 -m10 -t1 --warm-up-time=1 -D "$DUR" \
        "http://127.0.0.1:$1/bench/x" >"$out" 2>&1 || die "h2load against $1 failed: $(cat "$out")"
    grep -Eq "requests: .* [1-9][0-9]* failed|[1-9][0-9]* 4xx|[1-9][0-9]* 5xx" "$out" &&
        die "failed or non-2xx answers from $1: $(grep -E '^(requests|status codes):' "$out")"
    awk '/^finished in/{gsub(",", "", $4); printf "%.0f", $4}' "$out"
}

median() { sort -g | awk '{v[NR]=$1} END{if(NR%2){print v[(NR+1)/2]} else {printf "%.0f", (v[NR/2]+v[NR/2+1])/2}}'; }
: >"$TMP/nginx"; : >"$TMP/sidecar"
for round in $(seq 1 "$ROUNDS"); do
    # alternate which goes first: the machine is shared, a fixed order would favour one
    order="nginx sidecar"
    [ $((round % 2)) -eq 0 ] && order="sidecar nginx"
    for who in $order; do
        port=$P_NGINX
        [ "$who" = sidecar ] && port=$P_SIDECAR
        h2load_rps "$port" >>"$TMP/$who"
        echo >>"$TMP/$who"
    done
done
NGINX=$(median <"$TMP/nginx")
SIDECAR=$(median <"$TMP/sidecar")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if(b>0) printf "%.2f", a/b; else print "n/a"}'; }
cat <<EOF
### HTTP/2 clients through the proxy (h2load -c10 -m10 -D${DUR}s, h2c, median of $ROUNDS)

| run | nginx (http2, proxy) req/s | sidecar (h2c, proxy) req/s | sidecar / nginx | target |
|---|---|---|---|---|
| 100 streams over 10 connections, to an HTTP/1.1 backend | $NGINX | $SIDECAR | $(ratio "$SIDECAR" "$NGINX") | >= 1.0 |
EOF
