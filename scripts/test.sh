#!/usr/bin/env bash
# The test command: installs and starts what the tests need (PostgreSQL, a local Slurm with 64
# fake-GPU nodes) with the project's own scripts, runs fmt, clippy and the whole test suite with
# --locked, then stops what it started. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export CUMULO_DATA_DIR="${CUMULO_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
started=()
cleanup() {
  for svc in "${started[@]}"; do
    "scripts/dev-$svc.sh" stop || echo "warning: could not stop $svc" >&2
  done
}
trap cleanup EXIT

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

for svc in postgres slurm; do
  if [ -x "scripts/dev-$svc.sh" ]; then
    step "start $svc"
    # each script prints `export NAME=value` lines for the tests to find the service
    env_lines=$("scripts/dev-$svc.sh" start)
    started+=("$svc")
    eval "$env_lines"
  fi
done

step "tests"
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
step "done"
