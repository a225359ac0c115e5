#!/usr/bin/env bash
# The test command: install, build, run every test (GoogleTest, lit and the
# end-to-end suites) via ctest, then the sanitizer stage (scripts/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
echo "+ ctest --preset default"
ctest --preset default
bash scripts/sanitize.sh
