#!/usr/bin/env bash
# Install what Tocsin's tests and benchmarks need on Debian 12, only if missing.
# Idempotent: a second run only does cheap checks (no apt-get update, no network).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# Debian packages we need, each with a cheap "already there?" probe.
# postgresql: test database server (binaries in /usr/lib/postgresql/<ver>/bin).
# prometheus-alertmanager: peer for benchmarks, and amtool for the silences API tests.
# prometheus: the real client of the Alertmanager-compatible API in the tests.
# procps: pgrep/ps used by scripts and tests.
# wrk: the load generator of the benchmarks.
# fonts-dejavu-core: the text of the benchmarks' charts.
missing=()
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || have_pkg postgresql || missing+=(postgresql)
[[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
[[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
# fonts-dejavu-core: the text of the overload benchmark's charts.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
# chromium + chromium-driver: the web UI's tests drive a real headless browser.
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
# python3 with venv: componentize-py (the Python plugin example) comes from PyPI.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "deps.sh: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    # Keep maintainer scripts from starting services (Debian's postgresql
    # cluster on 5432, alertmanager on 9093): we run our own instances on free
    # ports. policy-rc.d exit 101 = "action forbidden"; honoured by
    # invoke-rc.d/deb-systemd-invoke. Only add (and later remove) it if absent.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    echo "deps.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# WebAssembly component target for the plugin host; rustup only if it's absent.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2 >&2
    fi
else
    echo "deps.sh: warning: rustup not found, cannot add wasm32-wasip2" >&2
fi

# componentize-py builds the Python example plugin (plugins/python/zabbix); the tests
# look for it in this virtualenv (or $COMPONENTIZE_PY).
venv="${HOME}/.cache/tocsin-venv"
if [[ ! -x "$venv/bin/componentize-py" ]]; then
    echo "deps.sh: installing componentize-py into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "componentize-py==0.25.*" >&2
fi
# aws-sam-translator and cfn-lint check infra/template.yaml offline
# (infra/validate-template.py, and the e2e test infra); the lower bounds are the
# versions it was tested with.
if [[ ! -x "$venv/bin/cfn-lint" ]] || ! "$venv/bin/python" -c 'import samtranslator' >/dev/null 2>&1; then
    echo "deps.sh: installing aws-sam-translator and cfn-lint into $venv" >&2
    "$venv/bin/pip" install --quiet "aws-sam-translator>=1.115,<2" "cfn-lint>=1.58,<2" >&2
fi
# The serverless stack's end-to-end test runs the Lambda functions under `cargo lambda
# watch` (the runtime emulator) and SQS on `moto_server`; both come from PyPI.
if [[ ! -x "$venv/bin/cargo-lambda" ]] || [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "deps.sh: installing cargo-lambda and moto into $venv" >&2
    "$venv/bin/pip" install --quiet "cargo-lambda==1.9.*" "moto[server]>=5,<6" >&2
fi
# schemathesis: the e2e test that fuzzes the API against its own OpenAPI document
# (tests/e2e/schemathesis.rs).
if [[ ! -x "$venv/bin/schemathesis" ]]; then
    echo "deps.sh: installing schemathesis into $venv" >&2
    "$venv/bin/pip" install --quiet "schemathesis==4.*" >&2
fi
