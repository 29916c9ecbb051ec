#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests.
#   infra/postgres.sh start DIR   -> prints postgres://tocsin@127.0.0.1:PORT/tocsin
#   infra/postgres.sh stop DIR
#   infra/postgres.sh restart DIR -> fast restart on the same port (every connection
#                                    is closed), for the fault tests
# Data in DIR/data, unix sockets in DIR, log in DIR/postgres.log.
# Idempotent: start on a running cluster just reprints its URL; stop on a
# stopped/missing one is a no-op.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 start|stop|restart DIR"
cmd=$1
dir=$(realpath -m -- "$2")
data=$dir/data
log=$dir/postgres.log

# Server binaries are not on PATH on Debian; prefer pg_config, else the
# highest /usr/lib/postgresql/<ver>/bin.
bindir=
if command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
fi
if [[ ! -x $bindir/initdb ]]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
[[ -x $bindir/initdb ]] || die "PostgreSQL server binaries not found (run infra/deps.sh)"

# PostgreSQL refuses to run as root: drop to the postgres user when root.
# HOME is reset so psql etc. don't trip over root's unreadable home.
if [[ $EUID -eq 0 ]]; then
    as_pg() { runuser -u postgres -- env HOME="$dir" "$@"; }
else
    as_pg() { "$@"; }
fi
# Avoid "could not change directory" warnings when cwd is unreadable to postgres.
cd /

running() { [[ -f $data/postmaster.pid ]] && as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; }
url() { echo "postgres://tocsin@127.0.0.1:$(cat "$dir/port")/tocsin"; }

# True if nothing listens on 127.0.0.1:$1 (bind probe; python3 is always present).
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

start() {
    mkdir -p "$dir"
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$dir"; fi
    chmod 700 "$dir"

    if running; then url; return; fi

    if [[ ! -f $data/PG_VERSION ]]; then
        rm -rf "$data"
        # C locale: deterministic collation regardless of the host's locale.
        as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        # Loopback + local socket only, trust auth (throwaway test cluster).
        cat >"$data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
HBA
        cat >>"$data/postgresql.conf" <<CONF

# --- tocsin test settings (port is passed on the command line) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
CONF
    fi

    # Probe for a free port from 55432; retry if we lose a race for it.
    local port=55432 tries=0
    while :; do
        while ! port_free "$port"; do port=$((port + 1)); done
        : >"$log"
        if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$log"; fi
        if as_pg "$bindir/pg_ctl" start -s -w -t 60 -D "$data" -l "$log" \
                -o "-p $port" >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if grep -q 'could not bind\|Address already in use' "$log" && ((tries < 20)); then
            port=$((port + 1)); continue
        fi
        tail -n 20 "$log" >&2
        die "pg_ctl start failed (see $log)"
    done
    echo "$port" >"$dir/port"

    # Role and database the tests connect as (superuser: tests may create
    # databases/schemas/extensions freely in this throwaway cluster).
    local psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
    as_pg "${psql[@]}" -c "DO \$\$BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tocsin') THEN
            CREATE ROLE tocsin LOGIN SUPERUSER;
        END IF; END\$\$;" >&2
    if [[ -z $(as_pg "${psql[@]}" -tA -c "SELECT 1 FROM pg_database WHERE datname = 'tocsin'") ]]; then
        as_pg "${psql[@]}" -c "CREATE DATABASE tocsin OWNER tocsin" >&2
    fi
    url
}

stop() {
    [[ -d $data ]] || return 0
    if running; then
        as_pg "$bindir/pg_ctl" stop -s -w -m fast -D "$data" >&2
    fi
}

restart() {
    running || die "no cluster runs in $dir"
    as_pg "$bindir/pg_ctl" restart -s -w -t 60 -m fast -D "$data" -l "$log" \
        -o "-p $(cat "$dir/port")" >/dev/null
}

case $cmd in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    *) die "usage: $0 start|stop|restart DIR" ;;
esac
