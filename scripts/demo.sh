#!/usr/bin/env bash
# make demo: a local fleet on loopback. etcd and nats-server, three sidecars (:8081, :8082,
# :8083) sharing them, each with an example app behind it: the Python greeter, the Node.js
# greeter (two nodes of one JSON-RPC service) and the Node.js web app (--handler=auto).
# Prints what to curl, then waits; Ctrl-C stops everything it started (and nothing else).
# Knobs: DEMO_DIR [a temporary folder], DEMO_BASE [18500] (etcd and nats ports start there).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${DEMO_BASE:-18500}
DIR=${DEMO_DIR:-$(mktemp -d /tmp/micro-demo.XXXXXX)}
MICRO=build/micro
ETCD=127.0.0.1:$BASE
NATS=nats://127.0.0.1:$((BASE + 2))
PIDS=()

stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping"
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo: logs were in $DIR"
}
trap stop INT TERM EXIT

start() { # start NAME COMMAND...: runs it in the background, its output in $DIR/NAME.log
    local name=$1
    shift
    "$@" >"$DIR/$name.log" 2>&1 &
    PIDS+=($!)
}

wait_port() { # wait_port PORT NAME: up to 15 s
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: $2 did not start; its log:" >&2
    cat "$DIR/$2.log" >&2
    exit 1
}

for tool in etcd nats-server node; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing: run make deps first" >&2; exit 1; }
done
start etcd etcd --name demo --data-dir "$DIR/etcd" \
    --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 1))" \
    --initial-cluster "demo=http://127.0.0.1:$((BASE + 1))"
start nats nats-server -a 127.0.0.1 -p $((BASE + 2))
wait_port "$BASE" etcd
wait_port $((BASE + 2)) nats

start greeter-py python3 examples/greeter.py 19090
start greeter-js node examples/greeter.js 19091
start webapp node examples/webapp.js 19092
wait_port 19090 greeter-py
wait_port 19091 greeter-js
wait_port 19092 webapp

shared=(--registry=etcd --registry_address="$ETCD" --broker=nats --broker_address="$NATS"
        --handler=auto --register_ttl=15s --register_interval=5s)
start sidecar-a "$MICRO" sidecar --sidecar_address=127.0.0.1:8081 "${shared[@]}" \
    --server_name=go.micro.srv.greeter --server_address=127.0.0.1:19090 \
    --healthcheck_url=http://127.0.0.1:19090/health
start sidecar-b "$MICRO" sidecar --sidecar_address=127.0.0.1:8082 "${shared[@]}" \
    --server_name=go.micro.srv.greeter --server_address=127.0.0.1:19091 \
    --healthcheck_url=http://127.0.0.1:19091/health
start sidecar-c "$MICRO" sidecar --sidecar_address=127.0.0.1:8083 "${shared[@]}" \
    --server_name=go.micro.srv.webapp --server_address=127.0.0.1:19092 \
    --server_metadata=protocol=http
for p in 8081 8082 8083; do wait_port $p "sidecar-${p: -1}"; done

cat <<MSG

demo: etcd on $ETCD, nats-server on $NATS, three sidecars sharing them:
  :8081  Python greeter (go.micro.srv.greeter)     :8082  Node.js greeter (same service)
  :8083  Node.js web app (go.micro.srv.webapp, metadata protocol=http, proxied by --handler=auto)

Try (any sidecar answers for every app):
  curl 127.0.0.1:8083/registry
  curl -H 'Content-Type: application/json' 127.0.0.1:8083/rpc \\
       -d '{"service":"go.micro.srv.greeter","method":"Greeter.Hello","request":{"name":"fleet"}}'
  curl -d '{"name":"path"}' 127.0.0.1:8081/greeter/hello
  curl 127.0.0.1:8081/webapp/hello?from=8081
  curl '127.0.0.1:8082/health?verbose=1'
  curl -d 'hello across sidecars' '127.0.0.1:8081/broker?topic=demo'   # a WebSocket
       # subscriber on ws://127.0.0.1:8083/broker?topic=demo receives it
  etcdctl --endpoints=$ETCD get --prefix /micro/registry/ --keys-only

Logs in $DIR. Ctrl-C stops the fleet.
MSG
wait
