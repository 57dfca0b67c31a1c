#!/usr/bin/env bash
# The test command: installs and starts what the tests need (PostgreSQL, a local Slurm with 64
# fake-GPU nodes, a Docker daemon) with the project's own scripts, runs fmt, clippy and the whole test suite with
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

step "start postgres"
CUMULO_TEST_POSTGRES_URL=$(scripts/dev-postgres.sh start)
export CUMULO_TEST_POSTGRES_URL
started+=(postgres)

step "start slurm (64 fake-GPU nodes)"
slurm_env=$(scripts/dev-slurm.sh start) # prints `export NAME=value` lines
started+=(slurm)
eval "$slurm_env"

step "start docker (local driver's container tests)"
scripts/dev-docker.sh start
started+=(docker)

step "tests"
cargo test --locked --workspace --no-fail-fast # unit, integration and doc tests of every crate
step "api conformance (schemathesis)" && scripts/ci-schemathesis.sh
scripts/ci-browser.sh  # the dashboard in Debian's chromium (playwright-core): screenshots in target/ci-artifacts/
step "FOCUS export (focus-validator)" && scripts/ci-focus.sh
step "ray driver end-to-end (scripts/ci-ray.sh)" && scripts/ci-ray.sh
step "done"
