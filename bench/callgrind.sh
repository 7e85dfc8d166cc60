#!/usr/bin/env bash
# bench/callgrind.sh: instructions per proxied request, the sidecar (--handler=proxy) beside
# nginx as a keep-alive reverse proxy, counted by valgrind --tool=callgrind. Each proxy runs
# twice under callgrind, serving N1 and then N2 requests (one keep-alive connection, curl's
# URL ranges); (Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up and shutdown and leaves the
# cost of one request. The same difference gives the calls to malloc, calloc, realloc and free
# per request (callgrind counts every call). Then /rpc: the sidecar under callgrind serving
# N1 and N2 sequential POST /rpc calls (one keep-alive connection) to bench/rpc_backend.
# The sidecar's heaviest functions (self cost, N2 proxy run) are listed after.
# Loopback only; every process started here is stopped on exit.
# Knobs: BUILD [build], CG_N1 [2000], CG_N2 [12000], CG_RPC [1] (0: no /rpc runs),
# BENCH_PORT_BASE [18100] (BASE..BASE+2 must be free), CG_ONLY [unset; e.g. "rpc" or
# "sidecar": only those runs, to measure one change quickly],
# CG_HTTP2 [unset; 1: the client speaks h2c (h2load -c1 -m10, prior knowledge) and nginx
# listens with `http2`: the cost of a request proxied from HTTP/2 to the HTTP/1.1 backend].
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
N1=${CG_N1:-2000}
N2=${CG_N2:-12000}
BASE=${BENCH_PORT_BASE:-18100}
P_BACKEND=$BASE
P_PROXY=$((BASE + 1))
P_RPC=$((BASE + 2))
RPC=${CG_RPC:-1}

for p in valgrind nginx curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            valgrind nginx curl
        break
    }
done

TMP=$(mktemp -d /tmp/micro-callgrind.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    if [ -n "${CG_KEEP:-}" ]; then cp "$TMP"/callgrind.* "$CG_KEEP"/ 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() {
    echo "callgrind: $*" >&2
    exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME PORT CMD...: background CMD, wait (at most 60 s: valgrind starts slowly) for PORT.
start() {
    local name=$1 port=$2
    shift 2
    port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
    "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    for _ in $(seq 1 600); do
        kill -0 "$LAST_PID" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited"; }
        port_open "$port" && return 0
        sleep 0.1
    done
    die "$name did not listen on 127.0.0.1:$port"
}

# stop PID: SIGTERM and wait (at most 60 s) so callgrind writes its profile.
stop() {
    kill -TERM "$1"
    for _ in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    PIDS=("${keep[@]}")
}

mkdir -p "$TMP/backend" "$TMP/proxy"
common="client_body_temp_path TMP/cb; proxy_temp_path TMP/px; fastcgi_temp_path TMP/fc;
    uwsgi_temp_path TMP/uw; scgi_temp_path TMP/sc; access_log off; keepalive_requests 1000000;"
cat >"$TMP/backend/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $TMP/backend/pid; error_log $TMP/backend/error.log warn;
events { worker_connections 1024; }
http { ${common//TMP/$TMP/backend}
    server { listen 127.0.0.1:$P_BACKEND; location / { default_type text/plain; return 200 "ok\n"; } } }
EOF
# master_process off: one process, so callgrind sees all of nginx's work.
cat >"$TMP/proxy/nginx.conf" <<EOF
master_process off; daemon off; pid $TMP/proxy/pid; error_log $TMP/proxy/error.log warn;
events { worker_connections 1024; }
http { ${common//TMP/$TMP/proxy}
    upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; }
    server { listen 127.0.0.1:$P_PROXY${CG_HTTP2:+ http2}; http2_max_requests 1000000;
        location / { proxy_pass http://backend; proxy_http_version 1.1;
            proxy_set_header Connection ""; proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host; } } }
EOF

make --no-print-directory -j2 BUILD="$BUILD" "$BUILD/micro" "$BUILD/bench/rpc_backend" >"$TMP/make.log" 2>&1 ||
    { cat "$TMP/make.log" >&2; die "build failed"; }
start backend "$P_BACKEND" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" \
    -c "$TMP/backend/nginx.conf"

# requests N: N GETs over one keep-alive connection; fails unless every one answered ok.
requests() {
    local got
    if [ -n "${CG_HTTP2:-}" ]; then
        h2load -c1 -m10 -t1 -n "$1" "http://127.0.0.1:$P_PROXY/bench/x" >"$TMP/h2load.out" 2>&1 ||
            die "h2load failed: $(cat "$TMP/h2load.out")"
        got=$(awk '/^status codes:/{print $3}' "$TMP/h2load.out")
        [ "$got" = "$1" ] || die "$got of $1 requests answered 2xx"
        return
    fi
    got=$(curl -fsS "http://127.0.0.1:$P_PROXY/bench/x?i=[1-$1]" | grep -c '^ok$')
    [ "$got" = "$1" ] || die "$got of $1 requests answered ok"
}

# rpc_calls N: N POST /rpc over one keep-alive connection; fails unless every one answered.
rpc_calls() {
    local got
    got=$(curl -fsS -w '\n' -H 'Content-Type: application/json' \
        -d '{"service":"go.micro.srv.bench","method":"Bench.Call","request":{}}' \
        "http://127.0.0.1:$P_PROXY/rpc?i=[1-$1]" | grep -c '^{"ok":true}$')
    [ "$got" = "$1" ] || die "$got of $1 /rpc calls answered {\"ok\":true}"
}

total_ir() { awk '/^(summary|totals):/{print $2; exit}' "$1"; }

# allocs FILE: "malloc calloc realloc free", the calls made to each in a callgrind profile (the
# names are compressed: "cfn=(id) name" the first time, "cfn=(id)" after; "calls=N" follows).
allocs() {
    awk '/^c?fn=\(/ {
            id = $1; sub(/^c?fn=/, "", id)
            if (NF > 1) names[id] = $2
            if ($1 ~ /^cfn=/) cur = names[id]
            next
        }
        /^calls=/ {
            split($1, a, "=")
            if (cur == "malloc" || cur == "calloc" || cur == "realloc" || cur == "free") n[cur] += a[2]
            cur = ""
        }
        END { printf "%d %d %d %d\n", n["malloc"], n["calloc"], n["realloc"], n["free"] }' "$1"
}

# profile KIND N: runs proxy KIND under callgrind for N requests; sets IR to its total Ir.
# (Not called as $(...): a subshell would lose track of the processes it starts.)
profile() {
    local kind=$1 n=$2 out="$TMP/callgrind.$1.$2"
    local vg=(valgrind --tool=callgrind --callgrind-out-file="$out")
    if [ "$kind" = sidecar ] || [ "$kind" = rpc ]; then
        local port=$P_BACKEND
        [ "$kind" = rpc ] && port=$P_RPC
        start sidecar "$P_PROXY" "${vg[@]}" "$BUILD/micro" sidecar \
            --sidecar_address="127.0.0.1:$P_PROXY" --handler=proxy --log_level=warn
        curl -fsS -X POST -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$port}]}" \
            "http://127.0.0.1:$P_PROXY/registry"
    else
        start nginx "$P_PROXY" "${vg[@]}" nginx -p "$TMP/proxy" -e "$TMP/proxy/error.log" \
            -c "$TMP/proxy/nginx.conf"
    fi
    local pid=$LAST_PID
    if [ "$kind" = rpc ]; then rpc_calls "$n"; else requests "$n"; fi
    stop "$pid"
    [ -s "$out" ] || die "callgrind wrote no profile for $kind"
    IR=$(total_ir "$out")
    ALLOCS=$(allocs "$out")
}

echo "callgrind: $N1 and $N2 keep-alive requests through each proxy (valgrind is slow: ~1-2 min)"
KINDS=(sidecar nginx)
[ "$RPC" != 0 ] && KINDS+=(rpc)
# shellcheck disable=SC2206 # a list of words on purpose
[ -n "${CG_ONLY:-}" ] && KINDS=($CG_ONLY)
for kind in "${KINDS[@]}"; do
    [ "$kind" = rpc ] && start rpc_backend "$P_RPC" "$BUILD/bench/rpc_backend" "$P_RPC"
done
declare -A per mallocs
for kind in "${KINDS[@]}"; do
    profile "$kind" "$N1"
    a=$IR
    a_allocs=$ALLOCS
    profile "$kind" "$N2"
    b=$IR
    per[$kind]=$(((b - a) / (N2 - N1)))
    # per request: (malloc + calloc + realloc) and free, from the difference of the two runs
    mallocs[$kind]=$(echo "$a_allocs $ALLOCS" | awk -v n=$((N2 - N1)) \
        '{printf "%.2f %.2f", (($5+$6+$7)-($1+$2+$3))/n, ($8-$4)/n}')
    printf '  %-8s Ir(%d)=%s Ir(%d)=%s -> %s instructions per request; allocations, frees per request: %s\n' \
        "$kind" "$N1" "$a" "$N2" "$b" "${per[$kind]}" "${mallocs[$kind]}"
done
echo
echo "| proxy | instructions / request | vs nginx | allocations / request | frees / request |"
echo "|---|---:|---:|---:|---:|"
for kind in "${KINDS[@]}"; do
    label=$kind
    [ "$kind" = rpc ] && label="sidecar /rpc (per call)"
    read -r al fr <<<"${mallocs[$kind]}"
    printf '| %s | %s | %s | %s | %s |\n' "$label" "${per[$kind]}" \
        "$(awk -v a="${per[$kind]}" -v b="${per[nginx]:-}" 'BEGIN{if (b) printf "%.2f", a/b; else printf "-"}')" \
        "$al" "$fr"
done
echo
echo "(allocations = calls to malloc + calloc + realloc; frees count free(NULL) too.)"
echo
[ -f "$TMP/callgrind.sidecar.$N2" ] || exit 0
echo "Sidecar, heaviest functions by self cost ($N2-request run):"
callgrind_annotate --inclusive=no "$TMP/callgrind.sidecar.$N2" 2>/dev/null |
    awk '/^-+$/{s++} s>=3' | grep -v '^-' | sed -n '1,26p'
