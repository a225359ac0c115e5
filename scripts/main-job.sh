#!/usr/bin/env bash
# The main job: install, build, fetch real MNIST digits, compile the example
# model into a training program and train it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash examples/data/fetch_mnist.sh
echo "+ build/bin/massc examples/mnist_mlp.mass -o build/mnist_mlp"
build/bin/massc examples/mnist_mlp.mass -o build/mnist_mlp
cd examples
echo "+ ../build/mnist_mlp --report ../build/mnist_mlp.svg"
../build/mnist_mlp --report ../build/mnist_mlp.svg
echo "the loss and accuracy curves: build/mnist_mlp.svg (open it in a browser)"
