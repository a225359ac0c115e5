#!/usr/bin/env bash
# Installs what is missing, configures (Ninja, ccache) and builds Mass with
# the CMake preset given (default: "default", in build/; "sanitize" builds
# in build-sanitize/).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
bash scripts/install-deps.sh
echo "+ cmake --preset $preset"
cmake --preset "$preset" >/dev/null
echo "+ cmake --build --preset $preset"
cmake --build --preset "$preset"
