#!/usr/bin/env bash
# TLS termination, side by side in one run (issue 11): wrk over https against
#   - nginx terminating TLS and proxying (keep-alive upstream) to an nginx fixed-200 backend;
#   - `micro sidecar --handler=proxy --enable_tls` proxying to the same backend.
# Both with the same ECDSA P-256 certificate, TLS 1.2/1.3 and Mozilla's intermediate ciphers,
# one worker/loop each. Two runs per server: keep-alive (req/s), and a fresh connection per
# request (`Connection: close`: a full handshake each, so req/s = handshakes/s). Also the
# sidecar's RSS idle with TLS on and the highest seen under the keep-alive load.
# Prints a markdown table on stdout.
#   BUILD [build], BENCH_DURATION [5] seconds per wrk run, BENCH_ROUNDS [3] (medians),
#   BENCH_CONNS [50],
#   BENCH_PORT_BASE [19400]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-50}
BASE=${BENCH_PORT_BASE:-19400}
P_BACKEND=$BASE P_NGINX=$((BASE + 1)) P_SIDECAR=$((BASE + 2))
for tool in nginx wrk openssl curl; do
    command -v "$tool" >/dev/null || { echo "bench/tls.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$BUILD/micro" ] || { echo "bench/tls.sh: build $BUILD/micro first" >&2; exit 1; }

TMP=$(mktemp -d /tmp/micro-bench-tls.XXXXXX)
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
die() { echo "bench/tls.sh: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # start NAME PORT CMD...: in the background, until PORT accepts (5 s bound)
    local name=$1 port=$2
    shift 2
    port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_$name=$!"
    for _ in $(seq 1 50); do
        port_open "$port" && return 0
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    die "$name did not listen on $port"
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# --- certificates ---
(
    cd "$TMP"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=ca \
        -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench \
        -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
) >/dev/null 2>&1 || die "openssl could not make the certificates"

# --- servers ---
INTERMEDIATE="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
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
    upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; }
    server {
        listen 127.0.0.1:$P_NGINX ssl backlog=4096;
        ssl_certificate $TMP/server.crt;
        ssl_certificate_key $TMP/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $INTERMEDIATE;
        ssl_session_tickets on;
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
    --handler=proxy --log_level=warn --enable_tls --tls_cert_file="$TMP/server.crt" \
    --tls_key_file="$TMP/server.key"
curl -fsS --cacert "$TMP/ca.crt" -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
    "https://127.0.0.1:$P_SIDECAR/registry" >/dev/null
for p in "$P_NGINX" "$P_SIDECAR"; do
    [ "$(curl -fsS --cacert "$TMP/ca.crt" "https://127.0.0.1:$p/bench/x")" = ok ] ||
        die "GET /bench/x over https on port $p did not answer ok"
done
sleep 1
IDLE_KB=$(rss_kb "$PID_sidecar")

# wrk_rps PORT [HEADER...]: requests/s of one run (after a 1 s warm-up); errors fail the run.
wrk_rps() {
    local port=$1 out="$TMP/wrk.out"
    shift
    local args=(-t1 "-c$CONNS")
    for h in "$@"; do args+=(-H "$h"); done
    timeout 30 wrk "${args[@]}" -d1s "https://127.0.0.1:$port/bench/x" >/dev/null 2>&1 || true
    timeout $((DUR + 30)) wrk "${args[@]}" "-d${DUR}s" "https://127.0.0.1:$port/bench/x" >"$out" 2>&1 ||
        die "wrk against $port failed: $(cat "$out")"
    if grep -q "Non-2xx" "$out"; then die "non-2xx answers from $port: $(cat "$out")"; fi
    awk '/^Requests\/sec:/{printf "%.0f", $2}' "$out"
}

PEAK_FILE="$TMP/peak"
echo "$IDLE_KB" >"$PEAK_FILE"
(
    while kill -0 "$PID_sidecar" 2>/dev/null; do
        v=$(rss_kb "$PID_sidecar")
        [ "$v" -gt "$(cat "$PEAK_FILE")" ] && echo "$v" >"$PEAK_FILE"
        sleep 0.2
    done
) &
SAMPLER=$!
# Rounds alternate which server goes first (the machine is shared: a fixed order would favour
# one); each figure is the median of the rounds.
median() { sort -g | awk '{v[NR]=$1} END{if(NR%2){print v[(NR+1)/2]} else {printf "%.0f", (v[NR/2]+v[NR/2+1])/2}}'; }
: >"$TMP/ka_nginx"; : >"$TMP/ka_sidecar"; : >"$TMP/hs_nginx"; : >"$TMP/hs_sidecar"
for round in $(seq 1 "$ROUNDS"); do
    order="nginx sidecar"
    [ $((round % 2)) -eq 0 ] && order="sidecar nginx"
    for who in $order; do
        port=$P_NGINX
        [ "$who" = sidecar ] && port=$P_SIDECAR
        wrk_rps "$port" >>"$TMP/ka_$who"
        echo >>"$TMP/ka_$who"
    done
done
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
LOADED_KB=$(cat "$PEAK_FILE")
for round in $(seq 1 "$ROUNDS"); do
    order="nginx sidecar"
    [ $((round % 2)) -eq 0 ] && order="sidecar nginx"
    for who in $order; do
        port=$P_NGINX
        [ "$who" = sidecar ] && port=$P_SIDECAR
        wrk_rps "$port" "Connection: close" >>"$TMP/hs_$who"
        echo >>"$TMP/hs_$who"
    done
done
KA_NGINX=$(median <"$TMP/ka_nginx")
KA_SIDECAR=$(median <"$TMP/ka_sidecar")
HS_NGINX=$(median <"$TMP/hs_nginx")
HS_SIDECAR=$(median <"$TMP/hs_sidecar")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if(b>0) printf "%.2f", a/b; else print "n/a"}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
cat <<EOF
### TLS termination (wrk -t1 -c$CONNS -d${DUR}s over https, ECDSA P-256, median of $ROUNDS)

| run | nginx (TLS, proxy) req/s | sidecar (TLS, proxy) req/s | sidecar / nginx | target |
|---|---|---|---|---|
| keep-alive | $KA_NGINX | $KA_SIDECAR | **$(ratio "$KA_SIDECAR" "$KA_NGINX")** | >= 1.0 |
| new connection per request (handshakes/s) | $HS_NGINX | $HS_SIDECAR | **$(ratio "$HS_SIDECAR" "$HS_NGINX")** | >= 0.9 |

Sidecar RSS with TLS on: idle $(mib "$IDLE_KB") MiB (target < 6), under the keep-alive load $(mib "$LOADED_KB") MiB (target < 10).
EOF
