#!/usr/bin/env bash
# The test command: deps, throwaway PostgreSQL, build binaries, cargo test, fuzz targets.
# Extra arguments are passed to `cargo test`. Works from any cwd.
set -euo pipefail

cd "$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")/.."

bash infra/deps.sh

pgdir=$(mktemp -d)
cleanup() {
    local rc=$?
    # Always tear down, but never let cleanup mask cargo's exit code.
    bash infra/postgres.sh stop "$pgdir" || true
    rm -rf -- "$pgdir"
    exit "$rc"
}
trap cleanup EXIT
# Make Ctrl-C / SIGTERM go through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM

TOCSIN_TEST_POSTGRES_URL=$(bash infra/postgres.sh start "$pgdir")
export TOCSIN_TEST_POSTGRES_URL
echo "test.sh: TOCSIN_TEST_POSTGRES_URL=$TOCSIN_TEST_POSTGRES_URL" >&2

# A one-off build gains nothing from incremental state, which is several GB here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Integration tests spawn the workspace binaries, so build them first.
cargo build --workspace --bins
cargo test --workspace "$@"

# The fuzz targets, each for a bounded time (TOCSIN_FUZZ_SECONDS, default 20): a crash
# fails the run. Skipped only when the caller picked tests (`bash infra/test.sh NAME`).
if (($# == 0)); then
    bash infra/fuzz.sh
fi
