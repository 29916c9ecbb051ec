#!/usr/bin/env bash
# Debian's prometheus-alertmanager as a benchmark peer.
#   infra/alertmanager.sh start DIR   -> prints http://127.0.0.1:PORT once /-/ready
#   infra/alertmanager.sh stop DIR
# Config, storage, log and pid file live in DIR. Idempotent like postgres.sh.
set -euo pipefail

die() { echo "alertmanager.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 start|stop DIR"
cmd=$1
dir=$(realpath -m -- "$2")
bin=/usr/bin/prometheus-alertmanager
pidfile=$dir/alertmanager.pid
log=$dir/alertmanager.log

# Running = exists and not a zombie (kill -0 succeeds on zombies, e.g. our own
# unreaped child that died on startup).
pid_alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $st != Z* ]]
}
alive() { [[ -f $pidfile ]] && pid_alive "$(cat "$pidfile")"; }

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers do
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# Poll GET /-/ready while the process is alive; true once it answers 200.
wait_ready() {
    local pid=$1 url=$2 i
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || return 1
        if python3 -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/-/ready", timeout=1)' "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

start() {
    [[ -x $bin ]] || die "$bin not found (run infra/deps.sh)"
    mkdir -p "$dir/data"
    if alive; then cat "$dir/url"; return; fi

    # Minimal config: a receiver with no integrations is a valid "null"
    # receiver (alerts are accepted and stored, never sent anywhere).
    # group_wait 0s so notifications are evaluated immediately.
    # ALERTMANAGER_CONFIG=FILE uses that configuration instead.
    if [[ -n ${ALERTMANAGER_CONFIG:-} ]]; then
        cp -- "$ALERTMANAGER_CONFIG" "$dir/alertmanager.yml"
    else
    cat >"$dir/alertmanager.yml" <<'YML'
route:
  receiver: "null"
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
YML
    fi

    local port=59093 tries=0 pid url
    while :; do
        while ! port_free "$port"; do port=$((port + 1)); done
        url=http://127.0.0.1:$port
        # stdio to the log so `$(alertmanager.sh start ...)` doesn't hang on
        # an inherited pipe; setsid so it outlives the caller's process group.
        # Empty --cluster.listen-address disables HA gossip (no port 9094).
        setsid "$bin" \
            --config.file="$dir/alertmanager.yml" \
            --storage.path="$dir/data" \
            --web.listen-address="127.0.0.1:$port" \
            --cluster.listen-address= \
            </dev/null >"$log" 2>&1 &
        pid=$!
        echo "$pid" >"$pidfile"
        if wait_ready "$pid" "$url"; then break; fi
        kill "$pid" 2>/dev/null || true
        rm -f "$pidfile"
        tries=$((tries + 1))
        if grep -q 'address already in use' "$log" && ((tries < 20)); then
            port=$((port + 1)); continue
        fi
        tail -n 20 "$log" >&2
        die "alertmanager did not become ready (see $log)"
    done
    echo "$url" >"$dir/url"
    echo "$url"
}

stop() {
    alive || { rm -f "$pidfile"; return 0; }
    local pid i
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop DIR" ;;
esac
