#!/usr/bin/env bash
# The test command: install, build, run every test (GoogleTest and lit) via ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
echo "+ ctest --preset default"
ctest --preset default
