#!/usr/bin/env bash
# Starts (or stops) a local Ray head for Cumulo's driver-ray tests, from a venv with
# ray[default]==2.60.0 (installed on first start: slow, about a minute and 1.7 GiB of memory when
# running), for running the driver-ray tests by hand; `.ci/run` uses scripts/ci-ray.sh instead.
#
#   scripts/dev-ray.sh start   # idempotent
#   scripts/dev-ray.sh stop    # `ray stop` for the head this script started
#
# After `start`, `source $CUMULO_RAY_DIR/env` (default /tmp/cumulo-ray/env) exports
# CUMULO_TEST_RAY_URL=http://127.0.0.1:8265 for the tests.
set -euo pipefail

DIR="${CUMULO_RAY_DIR:-/tmp/cumulo-ray}"
VENV="$DIR/venv"
PORT="${CUMULO_RAY_DASHBOARD_PORT:-8265}"
URL="http://127.0.0.1:$PORT"

log() { echo "dev-ray: $*" >&2; }

up() { curl -s -o /dev/null -w '%{http_code}' "$URL/api/version" 2>/dev/null | grep -q '^200'; }

start() {
  mkdir -p "$DIR"
  if [ ! -x "$VENV/bin/ray" ]; then
    log "installing ray[default]==2.60.0 into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "ray[default]==2.60.0" >"$DIR/pip.log" 2>&1
  fi
  if up; then
    log "already up at $URL"
  else
    export PATH="$VENV/bin:$PATH" RAY_USAGE_STATS_ENABLED=0
    ray start --head --port=6379 --dashboard-host=127.0.0.1 --dashboard-port="$PORT" --disable-usage-stats \
      --num-cpus=4 --num-gpus=8 --temp-dir="$DIR/tmp" >"$DIR/start.log" 2>&1
    touch "$DIR/started-by-script"
    for _ in $(seq 1 600); do up && break; sleep 0.1; done
    up || { log "ray dashboard did not come up at $URL"; exit 1; }
  fi
  echo "export CUMULO_TEST_RAY_URL=$URL" >"$DIR/env"
  log "up at $URL; source $DIR/env"
}

stop() {
  if [ -f "$DIR/started-by-script" ]; then
    PATH="$VENV/bin:$PATH" ray stop >"$DIR/stop.log" 2>&1 || true
    rm -f "$DIR/started-by-script"
    log "stopped"
  else
    log "no head started by this script"
  fi
}

case "${1:-}" in
  start) start >&2 && cat "$DIR/env" ;; # stdout: only the `export NAME=value` lines
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
