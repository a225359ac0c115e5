#!/usr/bin/env bash
# The sanitizer stage of the tests: builds the compiler, the runtime's unit
# tests and the frontend's fuzzer with clang, AddressSanitizer and UBSan
# (CMake preset "sanitize", build-sanitize/), then runs the unit tests, the
# lit tests that link no training program, and a minute of fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh sanitize
echo "+ ctest --preset sanitize"
ctest --preset sanitize
