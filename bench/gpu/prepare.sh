#!/usr/bin/env bash
# Builds, on the CPU machine, what bench/gpu/run.sh runs on a GPU machine:
# specs 01, 02, 05 and 09 compiled for the CPU and for the GPU (sm_90), a
# streaming model for the kernels' bandwidth, their data (generated, with
# a fixed seed) and the CPU build's OpenMP runtime, in bench/gpu/out.
# Carry that folder to the GPU machine (the device tool's `carry`) and run
# `bash bench/gpu/run.sh` there.
#
# usage: bash bench/gpu/prepare.sh   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
MASSC=build/bin/massc
OUT=bench/gpu/out
SPEC=test/lit/spec/fixtures
rm -rf "$OUT"
mkdir -p "$OUT/lib"
for spec in 01_mlp 02_cnn 05_multitask 09_gpt; do
  echo "+ massc $SPEC/$spec.mass (cpu, cuda)"
  "$MASSC" "$SPEC/$spec.mass" -O3 -o "$OUT/${spec}_cpu"
  "$MASSC" "$SPEC/$spec.mass" -O3 --target=cuda --cuda-arch=sm_90 \
    -o "$OUT/${spec}_gpu"
done
echo "+ massc bench/gpu/stream.mass (cuda)"
"$MASSC" bench/gpu/stream.mass -O3 --target=cuda --cuda-arch=sm_90 \
  -o "$OUT/stream_gpu"
/usr/bin/python3 bench/gpu/make_data.py "$OUT"
# The CPU programs' OpenMP runtime (LLVM's libomp): not on the GPU machine.
ldd "$OUT/01_mlp_cpu" | awk '/libomp/ { print $3 }' |
  while read -r lib; do cp -L "$lib" "$OUT/lib/"; done
du -sh "$OUT"
