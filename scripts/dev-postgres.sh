#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 for Cumulo's store tests, on 127.0.0.1:55432.
#
#   scripts/dev-postgres.sh start   # idempotent; prints the URL to export as CUMULO_TEST_POSTGRES_URL
#   scripts/dev-postgres.sh stop    # idempotent; stops the server this script started and removes its data
#   scripts/dev-postgres.sh url     # prints the URL
#
# The data directory is CUMULO_PG_DIR (default /tmp/cumulo-dev-postgres). fsync is off: this server is
# for tests only and never for durability tests; CUMULO_PG_FSYNC=on starts it durable (for benchmarks).
set -euo pipefail

PORT="${CUMULO_PG_PORT:-55432}"
D="${CUMULO_PG_DIR:-/tmp/cumulo-dev-postgres}"
BIN="${CUMULO_PG_BIN:-/usr/lib/postgresql/15/bin}"
URL="postgres://postgres@127.0.0.1:${PORT}/cumulo"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

running() {
    [ -f "$D/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" -D "$D" status >/dev/null 2>&1
}

case "${1:-}" in
start)
    if running; then
        echo "$URL"
        exit 0
    fi
    if [ ! -f "$D/PG_VERSION" ]; then
        rm -rf "$D"
        mkdir -p "$D"
        chown postgres:postgres "$D" 2>/dev/null || true
        chmod 700 "$D"
        as_postgres "$BIN/initdb" -D "$D" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
    fi
    SYNC="-c fsync=off -c synchronous_commit=off"
    if [ "${CUMULO_PG_FSYNC:-off}" = on ]; then SYNC="-c fsync=on -c synchronous_commit=on"; fi
    as_postgres "$BIN/pg_ctl" -D "$D" -l "$D/pg.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $D $SYNC -c max_connections=200" \
        start >/dev/null
    if ! as_postgres psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'cumulo'" 2>/dev/null | grep -q 1; then
        as_postgres createdb -h 127.0.0.1 -p "$PORT" -U postgres cumulo
    fi
    echo "$URL"
    ;;
stop)
    if running; then
        as_postgres "$BIN/pg_ctl" -D "$D" -m fast -w stop >/dev/null
    fi
    rm -rf "$D"
    ;;
url)
    echo "$URL"
    ;;
*)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
