#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium driven by npm's playwright-core (installed into
# a temporary directory), against the real `cumulo` binary on its demo fleet (simulated clusters and
# this machine). Signs in, filters jobs, opens a job, follows its log, cancels a job, checks there
# are no console errors and that the page fits 390 px, and saves screenshots at 1440 and 390 px
# under target/ci-artifacts/. Exits non-zero on any failure. Starts and stops its own server.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
artifacts="$root/target/ci-artifacts"
mkdir -p "$artifacts"

if ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian)"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get install -y --no-install-recommends chromium >/dev/null
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "installing playwright-core into $work"
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null)

cargo build --locked -q -p cumulo-cli
bin="$root/target/debug/cumulo"

# The demo fleet, sampled every 2 s so the charts have a history within the test.
(cd "$work" && exec "$bin" up --listen 127.0.0.1:0 --no-save --history-every 2 >"$work/up.out" 2>"$work/up.err") &
server_pid=$!
for _ in $(seq 1 120); do grep -q "admin token:" "$work/up.out" 2>/dev/null && break; sleep 0.5; done
url=$(sed -n 's/^Cumulo is up: //p' "$work/up.out")
token=$(sed -n 's/^ *admin token: //p' "$work/up.out")
[ -n "$url" ] && [ -n "$token" ] || { echo "cumulo up did not start"; cat "$work/up.out" "$work/up.err"; exit 1; }
export CUMULO_SERVER="$url" CUMULO_TOKEN="$token"

# Jobs a newcomer would submit: the examples, a job on this machine that logs for a while, and one
# that can never start (to cancel).
cat >"$work/ticker.yaml" <<'JOB'
name: ticker
resources: {cpus: 1, infra: local}
run: for i in 1 2 3 4 5 6 7 8; do echo "tick $i of job $CUMULO_JOB_ID"; sleep 1; done
JOB
cat >"$work/never.yaml" <<'JOB'
name: waits-forever
tenant: research
resources: {accelerators: GB200:4}
num_nodes: 100
run: train
JOB
"$bin" submit examples/jobs/agent-sandbox.yaml examples/jobs/pretrain-gb200-nvl72.yaml \
  examples/jobs/inference-service.yaml examples/jobs/batch-sweep.yaml examples/jobs/notebook-quarter-gpu.yaml \
  "$work/never.yaml" >/dev/null
sleep 5   # a few history samples before the ticker
"$bin" submit "$work/ticker.yaml" >/dev/null

NODE_PATH="$work/node_modules" CUMULO_URL="$url" CUMULO_TOKEN="$token" ARTIFACTS="$artifacts" \
  node scripts/ci-browser.cjs
echo "dashboard browser test passed; screenshots in $artifacts"
