#!/usr/bin/env bash
# API conformance (issue 12): schemathesis (PyPI) against a live `cumulo server` on SQLite in a
# temporary directory, once with an admin token and once with a member token. Every check is on;
# fails on any server error, schema violation or conformance failure (a schema-valid request
# refused, a schema-invalid one accepted). Bounded: a fixed number of examples per operation and
# a time budget per run, so the step takes a few minutes on 2 cores.
#
#   scripts/ci-schemathesis.sh            # builds the debug binary if needed
#   CUMULO_BIN=target/release/cumulo scripts/ci-schemathesis.sh
#   SCHEMATHESIS_EXAMPLES=150 SCHEMATHESIS_MAX_TIME=300 SCHEMATHESIS_SEED=7 scripts/ci-schemathesis.sh  # explore
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-40}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"
SEED="${SCHEMATHESIS_SEED:-12}"
VENV=$(realpath -m "${SCHEMATHESIS_VENV:-target/schemathesis-venv}")
config=$(realpath scripts/schemathesis.toml)
hooks=$(realpath scripts/schemathesis_hooks.py)
# Python 3.13 where one runs, else python3. Before 3.13 CPython's ast module can raise "AST
# constructor recursion depth mismatch" when two threads parse at once (hypothesis does, to
# describe its strategies), a runtime error of the tool, so schemathesis then runs one worker.
PYTHON=python3
WORKERS=1
if python3.13 -c 'import sys' >/dev/null 2>&1; then
  PYTHON=python3.13
  WORKERS=2
fi

if [ ! -x "$VENV/bin/schemathesis" ] || [ "$(cat "$VENV/made-by" 2>/dev/null)" != "$PYTHON" ]; then
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
  echo "$PYTHON" >"$VENV/made-by"
fi

BIN=$(realpath -m "${CUMULO_BIN:-target/debug/cumulo}")
if [ -z "${CUMULO_BIN:-}" ]; then
  cargo build --locked -q -p cumulo-cli --bin cumulo
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/fleet.yaml" <<'YAML'
tenants: [{name: default}, {name: team-b}]
clusters:
  - name: sim-conformance
    provider: aws
    region: us-east-1
    capacity: on-demand
    price_per_node_hour: '1.00'
    driver: {kind: simulated, nodes: 4, gpus: 8, gpu: H100, vcpus: 64, memory_gb: 512, start_delay_s: 0, default_duration_s: 5}
YAML

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
CUMULO_LOG=warn "$BIN" server --data-dir "$work/data" --listen "127.0.0.1:$port" --config "$work/fleet.yaml" \
  2>"$work/server.log" &
server_pid=$!

for _ in $(seq 1 300); do
  if [ -s "$work/data/admin.token" ] && python3 -c "import urllib.request; urllib.request.urlopen('$url/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.2
done
admin=$(cat "$work/data/admin.token")
member=$(python3 - "$url" "$admin" <<'PY'
import json, sys, urllib.request
url, admin = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url + "/v1/tokens", method="POST",
    data=json.dumps({"tenant": "team-b", "role": "member", "name": "conformance"}).encode(),
    headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request))["token"])
PY
)

status=0
for who in admin member; do
  token=$admin
  [ "$who" = member ] && token=$member
  echo "== schemathesis as $who ($EXAMPLES examples per operation, at most ${MAX_TIME}s)"
  # Every check, `positive_data_acceptance` (ST202) and `negative_data_rejection` (ST201)
  # included: the OpenAPI document states each rule the server applies to a field (patterns,
  # ranges, nulls as absent, texts bounded in characters), and the server takes whatever the
  # document allows. What no schema states is kept out of reach of a fuzzer: sums over fields (a
  # job's `envs` at most 256 KiB, a job file at most 1 MiB) and state across requests (an
  # Idempotency-Key reused with another body is a 422, which scripts/schemathesis.toml adds to
  # the statuses a schema-valid request may get).
  # Run from the temporary directory: schemathesis keeps a `.schemathesis/` folder in its cwd.
  # scripts/schemathesis_hooks.py: a serializer for the uploads' application/x-tar bodies.
  if ! (cd "$work" && SCHEMATHESIS_HOOKS="$hooks" "$VENV/bin/schemathesis" --config-file "$config" run "$url/v1/openapi.json" \
      --checks all \
      --max-examples "$EXAMPLES" \
      --max-time "$MAX_TIME" \
      --seed "$SEED" \
      --request-timeout 10 \
      --workers "$WORKERS" \
      --suppress-health-check all \
      --header "Authorization: Bearer $token"); then
    status=1
  fi
done
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server died during the run; its log:" >&2
  cat "$work/server.log" >&2
  status=1
fi
exit $status
