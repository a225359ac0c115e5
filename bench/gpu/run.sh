#!/usr/bin/env bash
# The GPU benchmark, run on a machine with an NVIDIA GPU (Hopper, sm_90)
# after bench/gpu/prepare.sh built bench/gpu/out on the CPU machine and
# that folder was carried over. In one run (about 5 minutes on an H200):
#  (a) specs 01, 02, 05 and 09 train 50 steps (logging the training and
#      validation losses every 10) as the CPU build and as the
#      GPU build, on the same data, seed and initial weights: every logged
#      loss must agree within 1e-3 relative (compare.py);
#  (b) the GPU build's training steps/s (--benchmark) beside PyTorch eager
#      and torch.compile on the same models and batch sizes (torch_gpu.py);
#  (c) the generated kernels' bandwidth (stream.mass: a fused elementwise
#      chain and a row reduction over 64 MiB) against the device's copy
#      bandwidth;
#  (d) where the machine has two GPUs and mpirun: specs 01 and 02 on two
#      processes (a GPU each, NCCL summing the gradients and batch norm's
#      statistics) against the one-GPU run of (a), and spec 01's samples/s
#      on one and two GPUs.
# Results go to $OUT/gpu-bench (the device tool brings $OUT back), else to
# bench/gpu/out/gpu-bench: summary.txt, results.md (the table for
# bench/README.md), the logs and each program's output.
#
# usage: bash bench/gpu/run.sh
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$HERE/out"
RESULTS="${OUT:-$BIN}/gpu-bench"
PY="${PYTHON:-python3}"
if [ ! -x "$BIN/01_mlp_gpu" ]; then
  echo "run.sh: no programs in $BIN: run bench/gpu/prepare.sh first" >&2
  exit 1
fi
mkdir -p "$RESULTS"
cd "$BIN"
export LD_LIBRARY_PATH="$BIN/lib:${LD_LIBRARY_PATH:-}"
# cuBLAS: the toolkit's, else the one PyTorch's wheels carry.
if [ -z "${MASS_CUBLAS:-}" ]; then
  MASS_CUBLAS="$(find /usr/local/cuda/ /usr/local/ /opt/ /usr/lib/ \
    -name 'libcublas.so.13*' 2>/dev/null | head -n 1)"
  export MASS_CUBLAS
fi
log() { echo "$*" | tee -a "$RESULTS/summary.txt"; }
: > "$RESULTS/summary.txt"
log "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader 2>&1 | head -n 1)"
log "cublas: ${MASS_CUBLAS:-not found}"

# (a) The same 50 steps on the CPU and on the GPU.
for spec in 01_mlp 02_cnn 05_multitask 09_gpt; do
  for target in cpu gpu; do
    start=$(date +%s%N)
    timeout 240 "./${spec}_$target" --steps 50 --val-every 10 --seed 1 \
      --log "$RESULTS/$spec.$target.jsonl" \
      --checkpoint-dir "$RESULTS/ckpt.$spec.$target" \
      > "$RESULTS/$spec.$target.out" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    log "$spec $target: exit $rc, ${ms} ms$([ $rc -ne 0 ] &&
      echo ": $(tail -n 2 "$RESULTS/$spec.$target.out" | tr '\n' ' ')")"
  done
  log "$spec losses: $("$PY" "$HERE/compare.py" "$RESULTS/$spec.cpu.jsonl" \
    "$RESULTS/$spec.gpu.jsonl" 2>&1 | tail -n 1)"
done

# (b) Steps/s: Mass's GPU programs, then PyTorch eager and torch.compile.
for spec in 01_mlp 02_cnn 05_multitask 09_gpt; do
  timeout 120 "./${spec}_gpu" --benchmark 50 > "$RESULTS/$spec.bench.out" 2>&1
  log "$spec benchmark: $(grep '^benchmark ' "$RESULTS/$spec.bench.out" ||
    tail -n 2 "$RESULTS/$spec.bench.out" | tr '\n' ' ')"
done
timeout 300 "$PY" "$HERE/torch_gpu.py" --steps 50 > "$RESULTS/torch.jsonl" \
  2> "$RESULTS/torch.err"
log "torch: exit $?, $(wc -l < "$RESULTS/torch.jsonl") lines"

# (c) The generated kernels' bandwidth: 4096 rows of 4096 floats.
mkdir -p data/stream
"$PY" -c "
import numpy as np
rng = np.random.default_rng(0)
np.save('data/stream/x.npy', rng.random((4096, 4096), dtype=np.float32))
np.save('data/stream/y.npy', rng.random((4096, 1), dtype=np.float32))"
timeout 120 ./stream_gpu --train data/stream --benchmark-forward 20 \
  > "$RESULTS/stream.out" 2>&1
log "stream: $(grep '^benchmark ' "$RESULTS/stream.out" ||
  tail -n 2 "$RESULTS/stream.out" | tr '\n' ' ')"

# (d) Two processes, a GPU each, under mpirun (NCCL: the toolkit's, else
# the one PyTorch's wheels carry).
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if [ "$gpus" -ge 2 ] && command -v mpirun > /dev/null; then
  if [ -z "${MASS_NCCL:-}" ]; then
    MASS_NCCL="$(find /usr/local/cuda/ /usr/local/ /opt/ /usr/lib/ \
      -name 'libnccl.so.2*' 2>/dev/null | head -n 1)"
    export MASS_NCCL
  fi
  log "nccl: ${MASS_NCCL:-not found}"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  for spec in 01_mlp 02_cnn; do
    timeout 240 mpirun -np 2 -x LD_LIBRARY_PATH -x MASS_CUBLAS -x MASS_NCCL \
      "./${spec}_gpu" --steps 50 --val-every 10 --seed 1 \
      --log "$RESULTS/$spec.gpu2.jsonl" \
      --checkpoint-dir "$RESULTS/ckpt.$spec.gpu2" \
      > "$RESULTS/$spec.gpu2.out" 2>&1
    log "$spec on 2 GPUs: exit $?; against 1 GPU: $("$PY" "$HERE/compare.py" \
      "$RESULTS/$spec.gpu.jsonl" "$RESULTS/$spec.gpu2.jsonl" 1e-4 2>&1 |
      tail -n 1)"
  done
  for n in 1 2; do
    timeout 120 mpirun -np $n -x LD_LIBRARY_PATH -x MASS_CUBLAS -x MASS_NCCL \
      ./01_mlp_gpu --steps 300 --val-every 300 --batch 1024 \
      --log "$RESULTS/01_mlp.scale$n.jsonl" > "$RESULTS/01_mlp.scale$n.out" 2>&1
    log "01_mlp on $n GPU(s), batch 1024: exit $?, $(grep -o \
      '[0-9]* samples/s' "$RESULTS/01_mlp.scale$n.out" | tail -n 1)"
  done
else
  log "two processes: not run ($gpus GPU(s), mpirun:" \
    "$(command -v mpirun || echo none))"
fi

"$PY" "$HERE/report.py" "$RESULTS" | tee "$RESULTS/results.md"
