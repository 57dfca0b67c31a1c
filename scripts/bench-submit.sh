#!/usr/bin/env bash
# Submit throughput of a real `cumulo server` over loopback, on SQLite (default) or PostgreSQL
# (issue 12, finding 10).
#
#   scripts/bench-submit.sh [sqlite|postgres] [JOBS]            throughput, single and batched
#   scripts/bench-submit.sh overload [sqlite|postgres]          a storm of big batches: shedding
#
# CUMULO_BIN=path skips the release build. Environment knobs (defaults in brackets):
#   LOOP [on]          on: the server runs its reconcile loop over a backlog of BACKLOG [100000]
#                      jobs that stays pending (the bench fleet below is full), submitted by an
#                      untimed `cumulo bench submit --jobs 1 --backlog` call that also waits for
#                      two passes over it; off: --no-reconcile, no backlog.
#   MODES [single batch]  single: --batch 1 at SINGLE_CONCURRENCY [64]; batch: --batch BATCH [100]
#                      at BATCH_CONCURRENCY [4]; idle: no submits, the server's CPU time over IDLE_S [20]
#                      seconds after the backlog (the loop's fixed cost; its line gives
#                      server_cpu_per_s, its summary the median).
#   RUNS [3]           runs per mode; each on a fresh server, data directory and (for PostgreSQL)
#                      database, so every run sees the same backlog.
#   TASKSET [unset]    e.g. "taskset -c 1": prefix for the server (the bench client runs unpinned).
#
# Each run prints one JSON line: `cumulo bench submit`'s report plus engine, mode, loop,
# server_peak_rss_kib (VmHWM of the server process at the end of the run), load_1m (the machine's
# 1-minute load average when the timed part started), server_cpu_s (the server's CPU time during
# the timed part, the loop's included; PostgreSQL's own is not) and jobs_per_server_cpu_s, which
# says more than jobs_per_sec on a machine shared with other work. After the runs of a mode a
# summary line gives the medians of jobs_per_sec, p50_ms, p99_ms and jobs_per_server_cpu_s, the
# highest peak RSS and the loads.
#
# overload: one server (loop on, the bench fleet), OVERLOAD_CLIENTS [64] clients each sending
# OVERLOAD_REQUESTS [4] batches of OVERLOAD_BATCH [2000] jobs at once; prints the answers by
# status, how many 429/503 lacked Retry-After, and the server's peak RSS. It exits non-zero when an
# answer is neither 201 nor 429/503 with Retry-After, when nothing was stored, or when the peak RSS
# reaches 1 GiB.
#
# PostgreSQL comes from scripts/dev-postgres.sh (started when it is not running); each run makes
# its own database bench_<pid>_<n> and drops it after.
set -euo pipefail
cd "$(dirname "$0")/.."

OVERLOAD=0
if [ "${1:-}" = overload ]; then
    OVERLOAD=1
    shift
fi
ENGINE="${1:-sqlite}"
JOBS="${2:-50000}"
case "$ENGINE" in sqlite | postgres) ;; *)
    echo "invalid engine \`$ENGINE\`: expected sqlite or postgres" >&2
    exit 2
    ;;
esac
LOOP="${LOOP:-on}"
case "$LOOP" in on | off) ;; *)
    echo "invalid LOOP \`$LOOP\`: expected on or off" >&2
    exit 2
    ;;
esac
BACKLOG="${BACKLOG:-100000}"
MODES="${MODES:-single batch}"
RUNS="${RUNS:-3}"
SINGLE_CONCURRENCY="${SINGLE_CONCURRENCY:-64}"
BATCH_CONCURRENCY="${BATCH_CONCURRENCY:-4}"
BATCH="${BATCH:-100}"
PORT="${PORT:-18181}"
TASKSET="${TASKSET:-}"

BIN="${CUMULO_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -q -p cumulo-cli
    BIN="${CARGO_TARGET_DIR:-target}/release/cumulo"
fi
WORK="$(mktemp -d /tmp/cumulo-bench.XXXXXX)"
if [ "$ENGINE" = postgres ]; then
    URL="$(scripts/dev-postgres.sh start)"
    BASE="${URL%/*}"
fi

# The bench fleet: one simulated cluster of 4 vCPUs whose jobs run for ten days, so after the
# first pass places four jobs every other job stays pending (reason: the fleet is full) and each
# pass of the loop schedules the whole queue it reads again.
cat >"$WORK/fleet.yaml" <<'EOF'
tenants:
  - {name: default}
clusters:
  - name: sim-full
    provider: aws
    region: us-east-1
    capacity: on-demand
    price_per_node_hour: "1.00"
    driver: {kind: simulated, nodes: 1, gpus: 0, vcpus: 4, memory_gb: 16, default_duration_s: 864000}
EOF

SERVER=""
DATA=""
DBNAME=""
RUN_NO=0
stop_server() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=""
    fi
    if [ -n "$DBNAME" ]; then
        psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DBNAME" >/dev/null || true
        DBNAME=""
    fi
    if [ -n "$DATA" ]; then
        rm -rf "$DATA"
        DATA=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a fresh server (fresh data directory and database) with the loop per $LOOP; sets
# SERVER, DATA, DBNAME and TOKEN.
start_server() {
    RUN_NO=$((RUN_NO + 1))
    DATA="$WORK/run$RUN_NO"
    mkdir -p "$DATA"
    local db_args=() loop_args=(--config "$WORK/fleet.yaml")
    if [ "$ENGINE" = postgres ]; then
        DBNAME="bench_$$_$RUN_NO"
        psql "$BASE/postgres" -qc "CREATE DATABASE $DBNAME" >/dev/null
        db_args=(--db "$BASE/$DBNAME")
    fi
    if [ "$LOOP" = off ]; then loop_args+=(--no-reconcile); fi
    # shellcheck disable=SC2086 # TASKSET is a command prefix
    CUMULO_LOG=warn $TASKSET "$BIN" server --data-dir "$DATA" --listen "127.0.0.1:$PORT" "${loop_args[@]}" \
        "${db_args[@]}" 2>"$DATA/server.log" &
    SERVER=$!
    for _ in $(seq 300); do
        [ -s "$DATA/admin.token" ] && curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        kill -0 "$SERVER" 2>/dev/null || {
            cat "$DATA/server.log" >&2
            exit 1
        }
        sleep 0.1
    done
    TOKEN="$(cat "$DATA/admin.token")"
}

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER/status"; }
load_1m() { cut -d' ' -f1 /proc/loadavg; }
# utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
# name in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [ "$OVERLOAD" = 1 ]; then
    CLIENTS="${OVERLOAD_CLIENTS:-64}"
    REQUESTS="${OVERLOAD_REQUESTS:-4}"
    SIZE="${OVERLOAD_BATCH:-2000}"
    jq -cn --argjson n "$SIZE" \
        '{jobs: [range($n) | {name: "storm-\(.)", tenant: "default", kind: "batch", resources: {cpus: 1}, run: "true"}]}' \
        >"$WORK/batch.json"
    start_server
    load="$(load_1m)"
    # One curl per request; each prints one line "STATUS RETRY_AFTER" (an empty Retry-After: "-").
    seq $((CLIENTS * REQUESTS)) | xargs -P "$CLIENTS" -I{} curl -s -o /dev/null \
        -w '%{http_code} %header{retry-after}-\n' \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "@$WORK/batch.json" "http://127.0.0.1:$PORT/v1/jobs:batch" >"$WORK/answers"
    rss="$(peak_rss_kib)"
    alive=true
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || alive=false
    jq -cRn --arg engine "$ENGINE" --argjson clients "$CLIENTS" --argjson requests "$((CLIENTS * REQUESTS))" \
        --argjson batch "$SIZE" --argjson rss "$rss" --arg load "$load" --argjson alive "$alive" '
        [inputs | split(" ") | {status: .[0], retry_after: (.[1] != "-")}] as $a
        | {bench: "submit-overload", engine: $engine, clients: $clients, requests: $requests, batch: $batch,
           jobs_offered: ($requests * $batch),
           answers: ($a | group_by(.status) | map({key: .[0].status, value: length}) | from_entries),
           shed_without_retry_after: ($a | map(select((.status == "429" or .status == "503") and (.retry_after | not))) | length),
           other_answers: ($a | map(select(.status != "201" and .status != "429" and .status != "503")) | length),
           server_alive: $alive, server_peak_rss_kib: $rss, load_1m: ($load | tonumber)}' <"$WORK/answers" \
        | tee "$WORK/overload.json"
    jq -e '.shed_without_retry_after == 0 and .other_answers == 0 and (.answers["201"] // 0) > 0
           and .server_alive and .server_peak_rss_kib < 1048576' "$WORK/overload.json" >/dev/null
    exit
fi

for mode in $MODES; do
    case "$mode" in
        single) args=(--batch 1 --concurrency "$SINGLE_CONCURRENCY") ;;
        batch) args=(--batch "$BATCH" --concurrency "$BATCH_CONCURRENCY") ;;
        idle) args=() ;;
        *)
            echo "invalid mode \`$mode\` in MODES: expected single, batch or idle" >&2
            exit 2
            ;;
    esac
    results=()
    for _ in $(seq "$RUNS"); do
        start_server
        if [ "$LOOP" = on ]; then
            # The backlog first (one job timed, then two passes over it), so that the server's CPU
            # time below covers the timed submits (and the loop beside them) only.
            "$BIN" bench submit --server "http://127.0.0.1:$PORT" --token "$TOKEN" --jobs 1 --backlog "$BACKLOG" >/dev/null
        fi
        load="$(load_1m)"
        cpu_before="$(cpu_ticks)"
        if [ "$mode" = idle ]; then
            sleep "${IDLE_S:-20}"
            line="$(echo "$(cpu_ticks) $cpu_before $(getconf CLK_TCK) ${IDLE_S:-20}" \
                | awk '{printf "%.4f", ($1 - $2) / $3 / $4}' \
                | jq -c --arg engine "$ENGINE" --arg loop "$LOOP" --arg load "$load" --argjson rss "$(peak_rss_kib)" \
                    --argjson backlog "$([ "$LOOP" = on ] && echo "$BACKLOG" || echo 0)" --argjson idle_s "${IDLE_S:-20}" \
                    '{engine: $engine, mode: "idle", loop: $loop, backlog: $backlog, idle_s: $idle_s,
                      server_cpu_per_s: ., server_peak_rss_kib: $rss, load_1m: ($load | tonumber)}')"
            echo "$line"
            results+=("$line")
            stop_server
            continue
        fi
        out="$("$BIN" bench submit --server "http://127.0.0.1:$PORT" --token "$TOKEN" --jobs "$JOBS" "${args[@]}")"
        cpu_s="$(echo "$(cpu_ticks) $cpu_before $(getconf CLK_TCK)" | awk '{printf "%.2f", ($1 - $2) / $3}')"
        rss="$(peak_rss_kib)"
        line="$(echo "$out" | jq -c --arg engine "$ENGINE" --arg mode "$mode" --arg loop "$LOOP" \
            --argjson rss "$rss" --arg load "$load" --argjson cpu "$cpu_s" \
            --argjson backlog "$([ "$LOOP" = on ] && echo "$BACKLOG" || echo 0)" \
            '{engine: $engine, mode: $mode, loop: $loop} + . + {backlog: $backlog, server_peak_rss_kib: $rss,
              load_1m: ($load | tonumber), server_cpu_s: $cpu,
              jobs_per_server_cpu_s: (if $cpu > 0 then (.jobs_accepted / $cpu | floor) else null end)}')"
        echo "$line"
        results+=("$line")
        stop_server
    done
    field() { for r in "${results[@]}"; do echo "$r" | jq ".$1"; done; }
    if [ "$mode" = idle ]; then
        jq -cn --arg engine "$ENGINE" --arg loop "$LOOP" --argjson runs "$RUNS" \
            --argjson cpu "$(field server_cpu_per_s | median)" --arg loads "$(field load_1m | tr '\n' ' ')" \
            '{summary: "submit-idle", engine: $engine, loop: $loop, runs: $runs, server_cpu_per_s_median: $cpu,
              load_1m: ($loads | split(" ") | map(select(. != "") | tonumber))}'
        continue
    fi
    jq -cn --arg engine "$ENGINE" --arg mode "$mode" --arg loop "$LOOP" --argjson runs "$RUNS" \
        --argjson backlog "$([ "$LOOP" = on ] && echo "$BACKLOG" || echo 0)" \
        --argjson jps "$(field jobs_per_sec | median)" --argjson p50 "$(field p50_ms | median)" \
        --argjson p99 "$(field p99_ms | median)" --argjson errors "$(field errors | sort -n | tail -1)" \
        --argjson passes "$(field reconcile_passes | median)" \
        --argjson kept "$(field 'plans_kept // 0' | median)" \
        --argjson per_cpu "$(field jobs_per_server_cpu_s | median)" \
        --argjson rss "$(field server_peak_rss_kib | sort -n | tail -1)" \
        --arg loads "$(field load_1m | tr '\n' ' ')" \
        '{summary: "submit", engine: $engine, mode: $mode, loop: $loop, backlog: $backlog, runs: $runs,
          jobs_per_sec_median: $jps, p50_ms_median: $p50, p99_ms_median: $p99, errors_max: $errors,
          reconcile_passes_median: $passes, plans_kept_median: $kept, jobs_per_server_cpu_s_median: $per_cpu,
          server_peak_rss_kib_max: $rss,
          load_1m: ($loads | split(" ") | map(select(. != "") | tonumber))}'
done
