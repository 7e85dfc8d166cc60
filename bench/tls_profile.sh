#!/usr/bin/env bash
# bench/tls_profile.sh: the noise-free figures of TLS termination, the sidecar
# (--handler=proxy --enable_tls) beside nginx terminating TLS, both proxying to one nginx
# fixed-200 backend with the same ECDSA P-256 certificate:
#   - instructions per keep-alive request and per full handshake (valgrind --tool=callgrind):
#     each server runs twice under callgrind, serving N1 and then N2 requests (curl: one
#     keep-alive connection, URL ranges) or H1 and then H2 fresh connections (curl
#     --no-sessionid, one full handshake each); (Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up
#     and shutdown;
#   - syscalls per keep-alive request and per handshake (strace -c on the running server).
# The client is curl (TLS 1.3, X25519, TLS_AES_256_GCM_SHA384 with both servers). Loopback
# only; every process started here is stopped on exit. Markdown on stdout.
# Knobs: BUILD [build], TP_N1 [500], TP_N2 [3000], TP_H1 [20], TP_H2 [120],
# TP_STRACE_N [2000], TP_STRACE_H [200], BENCH_PORT_BASE [19420].
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N1=${TP_N1:-500} N2=${TP_N2:-3000} H1=${TP_H1:-20} H2=${TP_H2:-120}
SN=${TP_STRACE_N:-2000} SH=${TP_STRACE_H:-200}
BASE=${BENCH_PORT_BASE:-19420}
P_BACKEND=$BASE P_PROXY=$((BASE + 1))
BENCH_NAME=tls-profile
START_WAIT_TENTHS=600 # valgrind starts slowly
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in nginx curl openssl valgrind strace; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
make --no-print-directory -j2 BUILD="$BUILD" "$BUILD/micro" >"$TMP/make.log" 2>&1 ||
    { cat "$TMP/make.log" >&2; die "build failed"; }

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

INTERMEDIATE="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
nginx_backend_conf "$TMP/backend" "$P_BACKEND"
nginx_proxy_conf "$TMP/proxy" "$P_PROXY" "$P_BACKEND" "        ssl_certificate $TMP/server.crt;
        ssl_certificate_key $TMP/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers $INTERMEDIATE;
        ssl_session_tickets on;"
# master_process off: one process, so callgrind and strace see all of nginx's work.
sed -i 's/^worker_processes 1;/master_process off;/' "$TMP/proxy/nginx.conf"
start backend "$P_BACKEND" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" \
    -c "$TMP/backend/nginx.conf"

# stop_one NAME: SIGTERM (twice if need be, 30 s each) and wait, so callgrind writes its
# profile.
stop_one() {
    local pid=${PID[$1]} try
    for try in 1 2; do
        kill -TERM "$pid" 2>/dev/null || break
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# serve KIND [WRAPPER...]: starts the TLS proxy KIND (sidecar or nginx) under WRAPPER, ready.
serve() {
    local kind=$1
    shift
    if [ "$kind" = sidecar ]; then
        start "$kind" "$P_PROXY" "$@" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_PROXY" \
            --handler=proxy --log_level=warn --enable_tls --tls_cert_file="$TMP/server.crt" \
            --tls_key_file="$TMP/server.key"
        curl -fsS --cacert "$TMP/ca.crt" -X POST \
            -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
            "https://127.0.0.1:$P_PROXY/registry" >/dev/null
    else
        start "$kind" "$P_PROXY" "$@" nginx -p "$TMP/proxy" -e "$TMP/proxy/error.log" \
            -c "$TMP/proxy/nginx.conf"
    fi
}

# load keepalive N | load handshakes N: N requests over one connection, or N connections of
# one request each (a full handshake: no session resumption); fails unless all answered ok.
# HTTP/1.1 on both (as wrk in bench/tls.sh): the sidecar offers h2 by ALPN, nginx here not.
load() {
    local got
    if [ "$1" = keepalive ]; then
        got=$(curl -fsS --http1.1 --cacert "$TMP/ca.crt" "https://127.0.0.1:$P_PROXY/bench/x?i=[1-$2]" |
            grep -c '^ok$' || true)
    else
        got=$(for _ in $(seq 1 "$2"); do
            curl -fsS --http1.1 --no-sessionid --cacert "$TMP/ca.crt" "https://127.0.0.1:$P_PROXY/bench/x"
        done | grep -c '^ok$' || true)
    fi
    [ "$got" = "$2" ] || die "$got of $2 requests answered ok"
}

# instructions KIND MODE A B: Ir per unit between runs of A and B units.
instructions() {
    local kind=$1 mode=$2 n ir=()
    for n in "$3" "$4"; do
        local out="$TMP/callgrind.$kind.$mode.$n"
        serve "$kind" valgrind --tool=callgrind --callgrind-out-file="$out"
        load "$mode" "$n"
        stop_one "$kind"
        [ -s "$out" ] || die "callgrind wrote no profile for $kind"
        ir+=("$(awk '/^(summary|totals):/{print $2; exit}' "$out")")
    done
    echo $(((ir[1] - ir[0]) / ($4 - $3)))
}

# syscalls KIND MODE N: strace -c over N units on the running server; "total per-unit
# breakdown".
syscalls() {
    local kind=$1 mode=$2 n=$3 out="$TMP/strace.$1.$2"
    serve "$kind"
    load "$mode" 2 # warm: the first connection's one-off work is not counted
    strace -c -o "$out" -p "${PID[$kind]}" 2>/dev/null &
    local st=$!
    sleep 0.5
    load "$mode" "$n"
    sleep 0.2
    kill -INT "$st"
    wait "$st" 2>/dev/null || true
    stop_one "$kind"
    awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $1 ~ /^[0-9.]+$/ && $NF != "total" {
            calls[$NF] = $4; sum += $4 }
        END { printf "%.2f", sum / n; sep = " ("
            for (s in calls) if (calls[s] / n >= 0.05) { printf "%s%s %.2f", sep, s, calls[s] / n; sep = ", " }
            print ")" }' "$out"
}

echo "tls-profile: callgrind, $N1/$N2 keep-alive requests and $H1/$H2 handshakes per server (a few minutes)" >&2
declare -A IR_KA IR_HS SYS_KA SYS_HS
for kind in sidecar nginx; do
    IR_KA[$kind]=$(instructions "$kind" keepalive "$N1" "$N2")
    IR_HS[$kind]=$(instructions "$kind" handshakes "$H1" "$H2")
    SYS_KA[$kind]=$(syscalls "$kind" keepalive "$SN")
    SYS_HS[$kind]=$(syscalls "$kind" handshakes "$SH")
    echo "tls-profile: $kind: ${IR_KA[$kind]} Ir/request, ${IR_HS[$kind]} Ir/handshake" >&2
done
cat <<EOF
### TLS termination, instructions and syscalls (bench/tls_profile.sh; curl, TLS 1.3, X25519, ECDSA P-256)

| per | sidecar | nginx | sidecar / nginx |
|---|---:|---:|---:|
| keep-alive request, instructions | ${IR_KA[sidecar]} | ${IR_KA[nginx]} | **$(ratio "${IR_KA[sidecar]}" "${IR_KA[nginx]}")** |
| full handshake (+ its one request), instructions | ${IR_HS[sidecar]} | ${IR_HS[nginx]} | **$(ratio "${IR_HS[sidecar]}" "${IR_HS[nginx]}")** |
| keep-alive request, syscalls | ${SYS_KA[sidecar]} | ${SYS_KA[nginx]} | |
| full handshake (+ its one request), syscalls | ${SYS_HS[sidecar]} | ${SYS_HS[nginx]} | |

Lower is better. Instructions: callgrind, (Ir(N2) - Ir(N1)) / (N2 - N1) with N = $N1/$N2 requests and $H1/$H2 handshakes; syscalls: strace -c over $SN requests and $SH handshakes.
EOF
