#!/usr/bin/env bash
# Fuzz Tocsin's parsers and checks (tests/fuzz/) for a bounded time each, with cargo fuzz on
# nightly (installed here if missing). A crash fails the run and leaves its input in
# tests/fuzz/artifacts/<target>/: turn it into a regression test, then fix it.
#
#   bash infra/fuzz.sh            every target, TOCSIN_FUZZ_SECONDS (default 20) each
#   bash infra/fuzz.sh datadog    one target
#
# The corpus (tests/fuzz/corpus/<target>/, not committed) is seeded from tests/fuzz/seeds/ and
# tests/fixtures, and grows from run to run on the same machine.
set -euo pipefail
cd "$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")/.."

seconds="${TOCSIN_FUZZ_SECONDS:-20}"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain (cargo fuzz needs it)" >&2
    rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version "0.13.*" >&2
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)
fi

# Seeds: the hand-written ones, and every fixture the tests use. A webhook target reads
# the webhook URL's query on its first line, so its fixtures get an empty first line.
corpus=tests/fuzz/corpus
for target in "${targets[@]}"; do
    mkdir -p "$corpus/$target"
    if [[ -d tests/fuzz/seeds/$target ]]; then
        cp -- tests/fuzz/seeds/"$target"/* "$corpus/$target/"
    fi
done
seed() { # seed TARGET PREFIX FILE...
    local target=$1 prefix=$2 file
    shift 2
    [[ -d $corpus/$target ]] || return 0
    for file in "$@"; do
        { printf '%s' "$prefix"; cat -- "$file"; } >"$corpus/$target/fixture-$(basename -- "$file")"
    done
}
seed datadog $'\n' tests/fixtures/datadog/*.json
seed datadog $'high=P1,P2&service=checkout\n' tests/fixtures/datadog/triggered.json
seed loggly $'\n' tests/fixtures/loggly/*.json
seed loggly $'tz=-04:00&priority=high\n' tests/fixtures/loggly/alert.json
seed alertmanager_alerts '' tests/fixtures/alertmanager/*.json
seed events_yaml '' tests/fixtures/*.yaml

# Panics and arithmetic overflow are what a `forbid(unsafe_code)` crate can crash on,
# so: debug assertions (overflow checks) on, no sanitizer (nothing for one to find).
flags=(--fuzz-dir tests/fuzz --sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}" >&2
log=$(mktemp)
trap 'rm -f -- "$log"' EXIT
for target in "${targets[@]}"; do
    if cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz.sh: $target: ${runs:-?} runs in ${seconds}s, no crash" >&2
    else
        tail -n 40 -- "$log" >&2
        echo "fuzz.sh: $target crashed; its input is in tests/fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
