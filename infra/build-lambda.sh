#!/usr/bin/env bash
# Builds the four Lambda functions for arm64 (Graviton), as infra/template.yaml expects:
# target/lambda/<function>/bootstrap for api, pipeline, notify and tick.
#   bash infra/build-lambda.sh            # release, arm64
#   bash infra/build-lambda.sh --x86-64   # release, x86_64 (then set Architectures in the template)
# Installs what it needs itself: cargo-lambda (from PyPI, with the Zig toolchain it
# cross-compiles with) in the project's virtualenv, and the Rust target.
set -euo pipefail
cd "$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")/.."

arch=--arm64
target=aarch64-unknown-linux-gnu
if [[ ${1:-} == --x86-64 ]]; then
    arch=--x86-64
    target=x86_64-unknown-linux-gnu
fi

venv="${HOME}/.cache/tocsin-venv"
if [[ ! -x "$venv/bin/cargo-lambda" ]] || ! "$venv/bin/python" -c "import ziglang" 2>/dev/null; then
    echo "build-lambda.sh: installing cargo-lambda and Zig into $venv" >&2
    [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "cargo-lambda==1.9.*" "ziglang>=0.13,<0.16" >&2
fi
# cargo-lambda finds Zig as `python3 -m ziglang`: the virtualenv's python first.
export PATH="$venv/bin:$PATH"
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" >&2
fi

# Without symbols and line tables: the release profile keeps line tables for profiling,
# which would make each bundle about 270 MiB, over Lambda's 250 MB unzipped limit
# (stripped, about 45 MiB).
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
    "$venv/bin/cargo-lambda" lambda build --release "$arch" \
    --bin api --bin pipeline --bin notify --bin tick
# SAM's CodeUri is target/lambda/<function>/ (relative to the repository): a build with
# CARGO_TARGET_DIR elsewhere is copied there.
out="${CARGO_TARGET_DIR:-target}/lambda"
for function in api pipeline notify tick; do
    if [[ $out != target/lambda ]]; then
        mkdir -p "target/lambda/$function"
        cp "$out/$function/bootstrap" "target/lambda/$function/bootstrap"
    fi
    size=$(stat -c %s "target/lambda/$function/bootstrap")
    echo "target/lambda/$function/bootstrap: $((size / 1024)) KiB" >&2
done
