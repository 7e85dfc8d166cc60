#!/usr/bin/env bash
# TLS termination, side by side in one run (issue 11): wrk over https against
#   - nginx terminating TLS and proxying (keep-alive upstream) to an nginx fixed-200 backend;
#   - `micro sidecar --handler=proxy --enable_tls` proxying to the same backend.
# Both with the same ECDSA P-256 certificate, TLS 1.2/1.3 and Mozilla's intermediate ciphers,
# one worker/loop each. Two runs per server: keep-alive (req/s), and a fresh connection per
# request (`Connection: close`: a full handshake each, so req/s = handshakes/s). Rounds
# alternate which server goes first; figures are medians. Memory, RSS and Pss (smaps_rollup):
# the sidecar's after start-up, 1 s after its first requests, idle (after BENCH_TLS_QUIET
# seconds without a connection), and the highest under each load; nginx's (master + worker)
# beside it; and the floor any process reaches with these libraries (bench/tls_floor.c).
# The noise-free figures (instructions and syscalls per request): bench/tls_profile.sh.
# Prints a markdown table on stdout.
#   BUILD [build], BENCH_DURATION [5] seconds per wrk run, BENCH_ROUNDS [3],
#   BENCH_CONNS or BENCH_CONNECTIONS [50], BENCH_TLS_QUIET [22], BENCH_PORT_BASE [19400]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-${BENCH_CONNECTIONS:-50}}
QUIET=${BENCH_TLS_QUIET:-22}
BASE=${BENCH_PORT_BASE:-19400}
P_BACKEND=$BASE P_NGINX=$((BASE + 1)) P_SIDECAR=$((BASE + 2))
BENCH_NAME=bench-tls
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in nginx wrk openssl curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
[ -x "$BUILD/micro" ] || die "build $BUILD/micro first"
make --no-print-directory -s BUILD="$BUILD" "$BUILD/bench/tls_floor" >/dev/null ||
    die "cannot build $BUILD/bench/tls_floor"

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

# The floor: a process that only builds the same server context, then one handshake in memory.
FLOOR=$("$BUILD/bench/tls_floor" "$TMP/server.crt" "$TMP/server.key") || die "bench/tls_floor failed"
read -r _ FLOOR_CTX_RSS FLOOR_CTX_PSS _ FLOOR_HS_RSS FLOOR_HS_PSS <<<"$(echo $FLOOR)"

# --- servers ---
INTERMEDIATE="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
nginx_backend_conf "$TMP/backend" "$P_BACKEND"
nginx_proxy_conf "$TMP/proxy" "$P_NGINX" "$P_BACKEND" "        ssl_certificate $TMP/server.crt;
        ssl_certificate_key $TMP/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $INTERMEDIATE;
        ssl_session_tickets on;"
start backend "$P_BACKEND" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" \
    -c "$TMP/backend/nginx.conf"
start nginx "$P_NGINX" nginx -p "$TMP/proxy" -e "$TMP/proxy/error.log" -c "$TMP/proxy/nginx.conf"
start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
    --handler=proxy --log_level=warn --enable_tls --tls_cert_file="$TMP/server.crt" \
    --tls_key_file="$TMP/server.key"
SC=${PID[sidecar]} NG=${PID[nginx]}
sleep 0.5
START_RSS=$(rss_kb "$SC") START_PSS=$(pss_kb "$SC")
curl -fsS --cacert "$TMP/ca.crt" -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
    "https://127.0.0.1:$P_SIDECAR/registry" >/dev/null
for p in "$P_NGINX" "$P_SIDECAR"; do
    [ "$(curl -fsS --cacert "$TMP/ca.crt" "https://127.0.0.1:$p/bench/x")" = ok ] ||
        die "GET /bench/x over https on port $p did not answer ok"
done
sleep 1
FIRST_RSS=$(rss_kb "$SC") FIRST_PSS=$(pss_kb "$SC")
echo "bench-tls: ${QUIET}s without a connection, then the sidecar's idle memory" >&2
sleep "$QUIET"
IDLE_RSS=$(rss_kb "$SC") IDLE_PSS=$(pss_kb "$SC")
NG_IDLE_RSS=$(rss_kb "$NG") NG_IDLE_PSS=$(pss_kb "$NG")

# wrk_rps PORT PID [HEADER...]: "req/s cpu_us_per_request p99_ms" of one run (after a 1 s
# warm-up), the CPU time (user + system) being PID's and its children's; errors fail the run.
HZ=$(getconf CLK_TCK)
wrk_rps() {
    local port=$1 pid=$2 out="$TMP/wrk.out"
    shift 2
    local args=(-t1 "-c$CONNS")
    for h in "$@"; do args+=(-H "$h"); done
    timeout 30 wrk "${args[@]}" -d1s "https://127.0.0.1:$port/bench/x" >/dev/null 2>&1 || true
    local t0
    t0=$(cpu_ticks "$pid")
    timeout $((DUR + 30)) wrk "${args[@]}" --latency "-d${DUR}s" "https://127.0.0.1:$port/bench/x" >"$out" 2>&1 ||
        die "wrk against $port failed: $(cat "$out")"
    local ticks=$(($(cpu_ticks "$pid") - t0))
    if grep -q "Non-2xx" "$out"; then die "non-2xx answers from $port: $(cat "$out")"; fi
    local p99
    p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$out")")
    awk -v t="$ticks" -v hz="$HZ" -v p99="$p99" '/requests in/{n=$1} /^Requests\/sec:/{r=$2}
        END{printf "%.0f %.1f %s\n", r, (n > 0) ? t * 1e6 / hz / n : 0, p99}' "$out"
}

# phase NAME [HEADER...]: ROUNDS alternating rounds (a fixed order would favour one server on
# a shared machine), "req/s cpu_us p99_ms" lines into $TMP/NAME_nginx and $TMP/NAME_sidecar, both
# servers' highest
# memory into $TMP/mem_NAME_{sidecar,nginx}.
phase() {
    local name=$1 round who port pid
    shift
    echo "0 0" >"$TMP/mem_${name}_sidecar"
    echo "0 0" >"$TMP/mem_${name}_nginx"
    sample_mem "$SC" "$TMP/mem_${name}_sidecar" &
    local s1=$!
    sample_mem "$NG" "$TMP/mem_${name}_nginx" &
    local s2=$!
    : >"$TMP/${name}_nginx"
    : >"$TMP/${name}_sidecar"
    for round in $(seq 1 "$ROUNDS"); do
        local order="nginx sidecar"
        [ $((round % 2)) -eq 0 ] && order="sidecar nginx"
        for who in $order; do
            port=$P_NGINX pid=$NG
            [ "$who" = sidecar ] && port=$P_SIDECAR pid=$SC
            wrk_rps "$port" "$pid" "$@" >>"$TMP/${name}_$who"
            echo "bench-tls: $name round $round $who $(tail -1 "$TMP/${name}_$who") (req/s, CPU µs/req, p99 ms)" >&2
        done
    done
    kill "$s1" "$s2" 2>/dev/null || true
    wait "$s1" "$s2" 2>/dev/null || true
}
phase ka
phase hs "Connection: close"

col() { awk -v c="$2" '{print $c}' "$TMP/$1" | median; } # col FILE COLUMN: its median
KA_NGINX=$(col ka_nginx 1) KA_SIDECAR=$(col ka_sidecar 1)
HS_NGINX=$(col hs_nginx 1) HS_SIDECAR=$(col hs_sidecar 1)
KA_NGINX_CPU=$(col ka_nginx 2) KA_SIDECAR_CPU=$(col ka_sidecar 2)
HS_NGINX_CPU=$(col hs_nginx 2) HS_SIDECAR_CPU=$(col hs_sidecar 2)
KA_NGINX_P99=$(col ka_nginx 3) KA_SIDECAR_P99=$(col ka_sidecar 3)
HS_NGINX_P99=$(col hs_nginx 3) HS_SIDECAR_P99=$(col hs_sidecar 3)
read -r KA_RSS KA_PSS <"$TMP/mem_ka_sidecar"
read -r HS_RSS HS_PSS <"$TMP/mem_hs_sidecar"
read -r NG_KA_RSS NG_KA_PSS <"$TMP/mem_ka_nginx"
read -r NG_HS_RSS NG_HS_PSS <"$TMP/mem_hs_nginx"
rounds() { awk '{print $1}' "$1" | tr '\n' ' ' | sed 's/ *$//; s/ /, /g'; }
yes_no() { awk -v v="$1" -v t="$2" 'BEGIN{print (v/1024 < t) ? "met" : "not met"}'; }

cat <<EOF
### TLS termination (wrk -t1 -c$CONNS -d${DUR}s over https, ECDSA P-256, median of $ROUNDS alternating rounds)

| run | nginx (TLS, proxy) req/s | sidecar (TLS, proxy) req/s | sidecar / nginx | target | p99 ms nginx / sidecar | nginx CPU µs/req | sidecar CPU µs/req |
|---|---:|---:|---:|---|---:|---:|---:|
| keep-alive | $KA_NGINX | $KA_SIDECAR | **$(ratio "$KA_SIDECAR" "$KA_NGINX")** | >= 1.0 (issue 11), >= 1.1 and p99 no worse (issue 13) | $KA_NGINX_P99 / $KA_SIDECAR_P99 | $KA_NGINX_CPU | $KA_SIDECAR_CPU |
| new connection per request (handshakes/s) | $HS_NGINX | $HS_SIDECAR | **$(ratio "$HS_SIDECAR" "$HS_NGINX")** | >= 0.9 | $HS_NGINX_P99 / $HS_SIDECAR_P99 | $HS_NGINX_CPU | $HS_SIDECAR_CPU |

Rounds, req/s: keep-alive nginx $(rounds "$TMP/ka_nginx"), sidecar $(rounds "$TMP/ka_sidecar");
handshakes nginx $(rounds "$TMP/hs_nginx"), sidecar $(rounds "$TMP/hs_sidecar").

| memory, MiB | sidecar RSS | sidecar Pss | nginx RSS (master + worker) | nginx Pss | target (sidecar RSS) |
|---|---:|---:|---:|---:|---|
| after start-up (the port probe: one TCP connection, no handshake) | $(mib "$START_RSS") | $(mib "$START_PSS") | | | |
| 1 s after the first requests | $(mib "$FIRST_RSS") | $(mib "$FIRST_PSS") | | | |
| idle (${QUIET} s without a connection) | $(mib "$IDLE_RSS") | $(mib "$IDLE_PSS") | $(mib "$NG_IDLE_RSS") | $(mib "$NG_IDLE_PSS") | < 6: $(yes_no "$IDLE_RSS" 6) |
| highest under the keep-alive load | $(mib "$KA_RSS") | $(mib "$KA_PSS") | $(mib "$NG_KA_RSS") | $(mib "$NG_KA_PSS") | < 10: $(yes_no "$KA_RSS" 10) |
| highest under the handshake load | $(mib "$HS_RSS") | $(mib "$HS_PSS") | $(mib "$NG_HS_RSS") | $(mib "$NG_HS_PSS") | |
| the floor (bench/tls_floor.c: a program that only builds the same server context) | $(mib "$FLOOR_CTX_RSS") | $(mib "$FLOOR_CTX_PSS") | | | |
| the floor after one handshake and one record each way (in memory) | $(mib "$FLOOR_HS_RSS") | $(mib "$FLOOR_HS_PSS") | | | |
EOF
