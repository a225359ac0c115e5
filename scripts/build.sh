#!/usr/bin/env bash
# Installs what is missing, configures (Ninja, ccache) and builds Mass in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "+ cmake --preset default"
cmake --preset default >/dev/null
echo "+ cmake --build --preset default"
cmake --build --preset default
