#!/usr/bin/env bash
# bench/syscalls.sh: system calls per proxied request, the sidecar (--handler=proxy) beside
# nginx and haproxy as keep-alive reverse proxies, each adding the same Host and
# X-Forwarded-For/-Proto/-Host headers, all in front of one nginx fixed-200 backend. For each
# proxy, `strace -c -f` is attached to the running server for SC_N sequential GETs over one
# keep-alive connection (curl's URL ranges); the total divided by SC_N is the figure (the
# one-off accept, upstream connect and close add a few calls over the whole run: < 0.02 per
# request at 2,000). The per-call breakdown follows the table.
# Loopback only; every process started here is stopped on exit.
# Knobs: BUILD [build], SC_N [2000], BENCH_PORT_BASE [18100] (BASE..BASE+3 must be free).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
N=${SC_N:-2000}
BASE=${BENCH_PORT_BASE:-18100}
P_BACKEND=$BASE
P_SIDECAR=$((BASE + 1))
P_NGINX=$((BASE + 2))
P_HAPROXY=$((BASE + 3))

for p in strace nginx haproxy curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            strace nginx haproxy curl
        break
    }
done

BENCH_NAME=syscalls
. bench/lib.sh
START_WAIT_TENTHS=200

nginx_backend_conf "$TMP/backend" "$P_BACKEND"
nginx_common_conf "$TMP/proxy"
# master_process off: one process, the one strace watches.
cat >"$TMP/proxy/nginx.conf" <<EOF
master_process off; daemon off; pid $TMP/proxy/pid; error_log $TMP/proxy/error.log warn;
events { worker_connections 1024; }
http { include $TMP/proxy/common.conf;
    upstream backend { server 127.0.0.1:$P_BACKEND; keepalive 64; }
    server { listen 127.0.0.1:$P_NGINX;
        location / { proxy_pass http://backend; proxy_http_version 1.1;
            proxy_set_header Connection ""; proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host; } } }
EOF
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 1024
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

make --no-print-directory -j2 BUILD="$BUILD" "$BUILD/micro" >"$TMP/make.log" 2>&1 ||
    { cat "$TMP/make.log" >&2; die "build failed"; }
start backend "$P_BACKEND" nginx -p "$TMP/backend" -e "$TMP/backend/error.log" \
    -c "$TMP/backend/nginx.conf"
start sidecar "$P_SIDECAR" "$BUILD/micro" sidecar --sidecar_address="127.0.0.1:$P_SIDECAR" \
    --handler=proxy --log_level=warn
declare -A PIDOF=([sidecar]=${PID[sidecar]})
curl -fsS -X POST -d "{\"name\":\"go.micro.srv.bench\",\"nodes\":[{\"id\":\"b1\",\"address\":\"127.0.0.1\",\"port\":$P_BACKEND}]}" \
    "http://127.0.0.1:$P_SIDECAR/registry" >/dev/null
start nginx "$P_NGINX" nginx -p "$TMP/proxy" -e "$TMP/proxy/error.log" -c "$TMP/proxy/nginx.conf"
PIDOF[nginx]=${PID[nginx]}
start haproxy "$P_HAPROXY" haproxy -db -f "$TMP/haproxy.cfg"
PIDOF[haproxy]=${PID[haproxy]}
declare -A PORTOF=([sidecar]=$P_SIDECAR [nginx]=$P_NGINX [haproxy]=$P_HAPROXY)

# requests PORT N: N GETs over one keep-alive connection; fails unless every one answered ok.
requests() {
    local got
    got=$(curl -fsS "http://127.0.0.1:$1/bench/x?i=[1-$2]" | grep -c '^ok$')
    [ "$got" = "$2" ] || die "$got of $2 requests through port $1 answered ok"
}

echo "syscalls: strace -c -f over $N keep-alive requests through each proxy"
declare -A per
for kind in sidecar nginx haproxy; do
    requests "${PORTOF[$kind]}" 10 # warm: the upstream connection exists before counting
    out="$TMP/strace.$kind"
    strace -c -f -o "$out" -p "${PIDOF[$kind]}" 2>"$TMP/strace-$kind.log" &
    spid=$!
    # strace prints "Process N attached" once it is in; wait for that (at most 10 s).
    for _ in $(seq 1 100); do
        grep -q attached "$TMP/strace-$kind.log" 2>/dev/null && break
        sleep 0.1
    done
    requests "${PORTOF[$kind]}" "$N"
    sleep 0.3
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    total=$(awk '$NF=="total"{print $4 + 0}' "$out")
    [ -n "$total" ] || die "strace wrote no summary for $kind"
    per[$kind]=$(awk -v t="$total" -v n="$N" 'BEGIN{printf "%.2f", t/n}')
    printf '  %-8s %s calls over %d requests -> %s per request\n' "$kind" "$total" "$N" "${per[$kind]}"
done
echo
echo "| proxy | system calls / request | vs nginx |"
echo "|---|---:|---:|"
for kind in sidecar nginx haproxy; do
    printf '| %s | %s | %s |\n' "$kind" "${per[$kind]}" \
        "$(awk -v a="${per[$kind]}" -v b="${per[nginx]}" 'BEGIN{printf "%.2f", a/b}')"
done
echo
for kind in sidecar nginx haproxy; do
    echo "$kind, by call (per request):"
    awk -v n="$N" '/^-/{s++; next} s==1 && NF>=5 {printf "    %-16s %6.2f\n", $NF, $4/n}' \
        "$TMP/strace.$kind"
done
