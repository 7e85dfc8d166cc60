# bench/lib.sh: the helpers the bench scripts share (sourced, never run). The sourcing script
# sets BENCH_NAME (the prefix of its messages and of its temporary folder) first, and runs
# from the repository's root. Sourcing makes $TMP (removed on exit) and the bookkeeping that
# stops, on exit or Ctrl-C, every process started with `start`.
#
#   die MSG                 the message on stderr, exit 1
#   port_open PORT          127.0.0.1:PORT accepts a connection
#   start NAME PORT CMD...  CMD in the background (log $TMP/NAME.log, pid in PID[NAME]) until
#                           PORT accepts (START_WAIT_TENTHS [50] tenths of a second)
#   stop_all                stops everything `start` started (also run on exit)
#   rss_kb PID / pss_kb PID VmRSS / Pss (smaps_rollup) of PID and its children, KiB
#   cpu_ticks PID           user+system clock ticks of PID and its children
#   sample_rss PID SECONDS OUT   the highest RSS every 0.2 s into OUT (kill it at any time)
#   sample_mem PID OUT      the highest RSS and the highest Pss ("rss pss") every 0.2 s into
#                           OUT, until killed or PID exits
#   median / mib KIB / ratio A B   numbers on stdin -> median; KiB -> MiB; A/B to 2 places
#   to_ms LATENCY           wrk's "1.23ms" / "850.00us" / "1.02s" -> milliseconds
#   nginx_backend_conf DIR PORT    an nginx answering 200 "ok\n" to everything, in DIR
#   nginx_proxy_conf DIR PORT BACKEND_PORT [LINES]   nginx as a keep-alive reverse proxy to
#                           BACKEND_PORT with the X-Forwarded-* headers the sidecar adds;
#                           LINES go into its server block (TLS: `ssl` is added to listen)
# Start a config with: nginx -p DIR -e DIR/error.log -c DIR/nginx.conf

: "${BENCH_NAME:?set BENCH_NAME before sourcing bench/lib.sh}"

TMP=$(mktemp -d "/tmp/micro-$BENCH_NAME.XXXXXX")
chmod 755 "$TMP" # nginx workers (user nobody) must reach their temp folders
PIDS=()
declare -A PID=() # server name -> pid

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME PORT CMD...: runs CMD in the background (its own pid, no subshell), logs to
# $TMP/NAME.log, and waits (bounded) until PORT accepts connections.
start() {
    local name=$1 port=$2
    shift 2
    port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
    "$@" >"$TMP/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID[$name]=$pid
    for _ in $(seq 1 "${START_WAIT_TENTHS:-50}"); do
        kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.log" >&2; die "$name exited at start"; }
        port_open "$port" && return 0
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2
    die "$name did not listen on 127.0.0.1:$port"
}

# The pid and its children (nginx's worker).
family() { echo "$1 $(pgrep -P "$1" 2>/dev/null | tr '\n' ' ')"; }
rss_kb() {
    local total=0 p v
    for p in $(family "$1"); do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
pss_kb() {
    local total=0 p v
    for p in $(family "$1"); do
        v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
cpu_ticks() {
    local total=0 p v
    for p in $(family "$1"); do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# sample_rss PID SECONDS OUT: the highest RSS seen every 0.2 s, for at most SECONDS. OUT holds
# the maximum so far at every step, so the sampler may be killed at any time.
sample_rss() {
    local pid=$1 n=$(($2 * 5)) max=0 v
    for _ in $(seq 1 "$n"); do
        kill -0 "$pid" 2>/dev/null || break
        v=$(rss_kb "$pid")
        if [ "$v" -gt "$max" ]; then
            max=$v
            echo "$max" >"$3.tmp" && mv -f "$3.tmp" "$3"
        fi
        sleep 0.2
    done
}

# sample_mem PID OUT: like sample_rss, RSS and Pss ("rss pss", each its own maximum), until
# killed or PID exits.
sample_mem() {
    local pid=$1 rss=0 pss=0 r p
    while kill -0 "$pid" 2>/dev/null; do
        r=$(rss_kb "$pid")
        p=$(pss_kb "$pid")
        [ "$r" -gt "$rss" ] && rss=$r
        [ "$p" -gt "$pss" ] && pss=$p
        echo "$rss $pss" >"$2.tmp" && mv -f "$2.tmp" "$2"
        sleep 0.2
    done
}

median() { sort -g | awk '{v[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
to_ms() { # wrk latency "1.23ms" / "850.00us" / "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN{n=v+0; if(v~/us$/) n/=1000; else if(v~/ms$/) n=n; else if(v~/m$/) n*=60000; else if(v~/s$/) n*=1000; printf "%.3f", n}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if(b>0) printf "%.2f", a/b; else print "n/a"}'; }

# --- nginx configurations ----------------------------------------------------------------------
nginx_common_conf() { # DIR: temp paths inside DIR, no access log, long keep-alive
    mkdir -p "$1"
    cat >"$1/common.conf" <<EOF
client_body_temp_path $1/client_body;
proxy_temp_path $1/proxy;
fastcgi_temp_path $1/fastcgi;
uwsgi_temp_path $1/uwsgi;
scgi_temp_path $1/scgi;
access_log off;
keepalive_requests 1000000;
keepalive_timeout 60s;
EOF
}

nginx_backend_conf() { # DIR PORT
    nginx_common_conf "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    include $1/common.conf;
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / { default_type text/plain; return 200 "ok\n"; }
    }
}
EOF
}

# The proxies add the X-Forwarded-* headers the sidecar adds (SPEC 3.3): the same work.
nginx_proxy_conf() { # DIR PORT BACKEND_PORT [SERVER_LINES]
    local ssl=""
    case "${4:-}" in *ssl_certificate*) ssl=" ssl" ;; esac
    nginx_common_conf "$1"
    cat >"$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    include $1/common.conf;
    upstream backend { server 127.0.0.1:$3; keepalive 64; }
    server {
        listen 127.0.0.1:$2$ssl backlog=4096;
${4:-}
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
}
