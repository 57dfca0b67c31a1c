#!/usr/bin/env bash
# Submit throughput of a real `cumulo server` over loopback, on SQLite (default) or PostgreSQL.
#
#   scripts/bench-submit.sh [sqlite|postgres] [JOBS]     (CUMULO_BIN=path skips the release build)
#
# Builds the release binary, starts a server on a fresh data directory (and, for postgres, the
# throwaway server of scripts/dev-postgres.sh with a fresh database), then runs `cumulo bench
# submit` three times single-job (--batch 1) and three times batched (--batch 100, 4 in flight) and prints each
# run's JSON and the medians. The server runs with the reconcile loop off so that only the submit
# path is measured; everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${1:-sqlite}"
JOBS="${2:-50000}"
SINGLE_CONCURRENCY="${SINGLE_CONCURRENCY:-64}"
BATCH_CONCURRENCY="${BATCH_CONCURRENCY:-4}"
BATCH="${BATCH:-100}"
PORT="${PORT:-18181}"

BIN="${CUMULO_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -q -p cumulo-cli
    BIN="${CARGO_TARGET_DIR:-target}/release/cumulo"
fi
DATA="$(mktemp -d /tmp/cumulo-bench.XXXXXX)"
DB_ARGS=()
if [ "$ENGINE" = postgres ]; then
    URL="$(scripts/dev-postgres.sh start)"
    BASE="${URL%/*}"
    DBNAME="bench_$$"
    psql "$BASE/postgres" -qc "CREATE DATABASE $DBNAME" >/dev/null
    DB_ARGS=(--db "$BASE/$DBNAME")
fi

CUMULO_LOG=warn "$BIN" server --data-dir "$DATA" --listen "127.0.0.1:$PORT" --no-reconcile "${DB_ARGS[@]}" \
    2>"$DATA/server.log" &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$DATA"
    if [ "$ENGINE" = postgres ]; then psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DBNAME" >/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
    [ -s "$DATA/admin.token" ] && curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
TOKEN="$(cat "$DATA/admin.token")"

run() {
    "$BIN" bench submit --server "http://127.0.0.1:$PORT" --token "$TOKEN" --jobs "$JOBS" "$@"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for mode in single batch; do
    if [ "$mode" = single ]; then args=(--batch 1 --concurrency "$SINGLE_CONCURRENCY"); else args=(--batch "$BATCH" --concurrency "$BATCH_CONCURRENCY"); fi
    results=()
    for i in 1 2 3; do
        out="$(run "${args[@]}")"
        echo "$out" | tr -d '\n' | sed 's/  */ /g'
        echo
        results+=("$out")
    done
    for field in jobs_per_sec p50_ms p99_ms errors; do
        printf '%s %s median %s: ' "$ENGINE" "$mode" "$field"
        for r in "${results[@]}"; do echo "$r" | grep "\"$field\"" | sed 's/.*: *//; s/,//'; done | median
    done
done
