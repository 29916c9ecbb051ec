#!/usr/bin/env bash
# Builds the Python Zabbix transformer into a component: zabbix.wasm beside this file.
# Needs componentize-py (infra/deps.sh installs it in a virtualenv).
set -euo pipefail
here=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
componentize_py=${COMPONENTIZE_PY:-componentize-py}
cd "$here"
"$componentize_py" -d ../../../wit -w transformer componentize app -o "${1:-zabbix.wasm}"
