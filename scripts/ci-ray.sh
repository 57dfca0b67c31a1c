#!/usr/bin/env bash
# The Ray driver's end-to-end tests (issue 12) against a real local Ray head: installs
# ray[default]==2.60.0 (PyPI) into a venv kept under target/ (a re-run reuses it; pip's wheel
# cache is ~/.cache/pip), starts `ray start --head` with small resources and its dashboard (the
# Jobs REST API) on a free loopback port, runs `cargo test -p cumulo-driver-ray --test ray` with
# CUMULO_TEST_RAY=1 and CUMULO_TEST_RAY_URL, stops Ray, and exits non-zero when a test fails or
# skips. About 1.7 GiB of memory while Ray runs.
#
#   scripts/ci-ray.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RAY_VERSION=2.60.0
VENV=$(realpath -m "${CUMULO_RAY_VENV:-target/ray-venv}")

if [ ! -x "$VENV/bin/ray" ]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet "ray[default]==$RAY_VERSION"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
gcs_port=$(free_port)
dashboard_port=$(free_port)
url="http://127.0.0.1:$dashboard_port"
# Short: Ray's socket paths live under the temp dir and must fit in 107 bytes.
work=$(mktemp -d /tmp/cumulo-ray.XXXXXX)
export PATH="$VENV/bin:$PATH" RAY_USAGE_STATS_ENABLED=0

started=
cleanup() {
  if [ -n "$started" ]; then
    ray stop --force >"$work/stop.log" 2>&1 || echo "warning: ray stop failed (see $work/stop.log)" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Build the tests before Ray takes its memory.
cargo test --locked -q -p cumulo-driver-ray --test ray --no-run

echo "starting a Ray $RAY_VERSION head (dashboard $url)"
started=1
if ! ray start --head --port="$gcs_port" --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 \
    --dashboard-port="$dashboard_port" --disable-usage-stats --num-cpus=4 --num-gpus=8 \
    --include-dashboard=true --temp-dir="$work/ray" >"$work/start.log" 2>&1; then
  cat "$work/start.log" >&2
  echo "ray start failed" >&2
  exit 1
fi
up() { python3 -c "import urllib.request; urllib.request.urlopen('$url/api/version', timeout=1)" 2>/dev/null; }
for _ in $(seq 1 120); do up && break; sleep 0.5; done
up || { cat "$work/start.log" >&2; echo "the Ray Jobs API did not come up at $url" >&2; exit 1; }

export CUMULO_TEST_RAY=1 CUMULO_TEST_RAY_URL="$url"
cargo test --locked -p cumulo-driver-ray --test ray -- --nocapture 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
if grep -q '^skipping' "$work/test.log"; then
  echo "a Ray test skipped although a Ray head was up" >&2
  status=1
fi
exit "$status"
