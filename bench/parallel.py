"""Data-parallel training on this machine, and a model of its scaling.

For each model, massc -O3 builds the training program, which trains on
synthetic MNIST-shaped data on one process (both cores' threads) and under
`mpirun -np 2` (one thread per process): samples/s of the second of two
rounds (the first warms up), the bytes each step's all-reduce sums
(gradients and the step's outputs, from the log) and the seconds it adds per
step (rank 0's time in it, waiting for the other rank included).

Then MPI's all-reduce alone (bench/allreduce.c, built with mpicc) at sizes
from 4 bytes to 64 MiB on 2 processes gives this machine's latency alpha and
bandwidth beta: a ring all-reduce of S bytes over N processes takes
2 (N - 1) alpha + 2 (N - 1) / N * S / beta. With each model's compute per
sample from the one-process run, the model predicts the step time and
samples/s at N = 2, 8 and 64 processes, each on a machine like this one: the
global batch of 128 fixed (strong scaling) and 128 per process (weak
scaling). These are shared-memory figures: processes on other machines
would see a network's alpha and beta.

Last, the gradients' buckets (--bucket-mb): the 2-process run again with
every sum after the step (0), in the default buckets of 25 MiB and in
buckets of 1 MiB, each started as the backward pass finishes it; the
all-reduce seconds are then the wait after the step, what the backward pass
did not hide.

And the sharded optimizer (--shard-optimizer, ZeRO stage 1): the 2-process
run with each process holding and updating the Adam moments of half the
flat parameters: samples/s, and each process's optimizer bytes from the
log against the unsharded run's.

usage: /usr/bin/python3 bench/parallel.py [--steps N]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MASSC = os.path.join(ROOT, "build", "bin", "massc")
STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 100
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

MLP = """
model mlp {
  input image: f32[B, 1, 28, 28]
  label digit: i32[B]
  h1 = dense(flatten(image), WIDTH) |> relu
  h2 = dense(h1, WIDTH) |> relu
  task classify {
    logits = dense(h2, 10)
    loss = cross_entropy(logits, digit)
    metric accuracy(logits, digit)
  }
}
train mlp {
  train_data = "data"
  batch      = 128
  optimizer  = adam(lr: 1e-3)
  seed       = 1
}
"""

MODELS = {
    "spec01 mlp 784-256-256-10": MLP.replace("WIDTH", "256"),
    "wide mlp 784-2048-2048-10": MLP.replace("WIDTH", "2048"),
}


def train(exe, work, n, *flags):
    """samples/s, all-reduce bytes per step and seconds per step of the
    second round."""
    log = os.path.join(work, f"log{n}.jsonl")
    if os.path.exists(log):
        os.remove(log)
    args = [exe, "--steps", str(2 * STEPS), "--val-every", str(STEPS), "--log", log, *flags]
    cmd = args if n == 1 else ["mpirun", "-np", str(n), *args]
    subprocess.run(cmd, cwd=work, env=ENV, check=True, capture_output=True)
    with open(log) as f:
        events = [json.loads(line) for line in f]
    last = [e for e in events if e.get("event") == "step" and e.get("split") == "train"][-1]
    samples = STEPS * 128
    return (samples / last["seconds"], last.get("allreduce_bytes", 0),
            last.get("allreduce_seconds", 0.0) / STEPS)


def optimizer_bytes(work, n):
    """Each process's optimizer bytes in the last run's log on `n`."""
    with open(os.path.join(work, f"log{n}.jsonl")) as f:
        ready = [e for e in map(json.loads, f) if e.get("event") == "ready"][0]
    return ready.get("optimizer_bytes_per_rank") or ready["optimizer_bytes_each"]


def allreduce_fit(work):
    """alpha (s) and beta (bytes/s) fitted to MPI's all-reduce on 2
    processes, and the measured points."""
    exe = os.path.join(work, "allreduce")
    subprocess.run(["mpicc", "-O2", os.path.join(ROOT, "bench", "allreduce.c"), "-o", exe], check=True)
    out = subprocess.run(["mpirun", "-np", "2", exe], env=ENV, check=True,
                         capture_output=True, text=True).stdout
    points = [(int(b), float(t)) for b, t in (line.split() for line in out.splitlines())]
    # Latency: the smallest messages; bandwidth: a least-squares slope over
    # 1 to 16 MiB (N = 2: 2 alpha + S / beta), the sizes of these models'
    # gradients. (Beyond, Open MPI changes its algorithm here: see the
    # table.)
    alpha = min(t for b, t in points if b <= 256) / 2
    big = [(b, t) for b, t in points if (1 << 20) <= b <= (16 << 20)]
    slope = np.polyfit([b for b, _ in big], [t for _, t in big], 1)[0]
    return alpha, 1.0 / slope, points


def ring(n, size, alpha, beta):
    return 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * size / beta


def main():
    work = tempfile.mkdtemp(prefix="mass-bench-parallel-")
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(work, "data"))
    np.save(os.path.join(work, "data", "image.npy"), rng.random((8192, 1, 28, 28), dtype=np.float32))
    np.save(os.path.join(work, "data", "digit.npy"), rng.integers(0, 10, 8192).astype(np.int32))
    alpha, beta, points = allreduce_fit(work)
    print("MPI all-reduce on 2 processes (bench/allreduce.c):")
    print("| bytes | us per call |")
    print("| ---: | ---: |")
    for b, t in points:
        print(f"| {b} | {t * 1e6:.1f} |")
    print(f"\nfit: alpha = {alpha * 1e6:.2f} us, beta = {beta / 1e9:.2f} GB/s\n")

    rows, model_rows, bucket_rows, shard_rows = [], [], [], []
    for title, source in MODELS.items():
        src = os.path.join(work, "m.mass")
        with open(src, "w") as f:
            f.write(source)
        exe = os.path.join(work, title.split()[0])
        subprocess.run([MASSC, src, "-o", exe, "-O3"], check=True)
        one, _, _ = max(train(exe, work, 1) for _ in range(3))
        two, size, reduce_s = max(train(exe, work, 2) for _ in range(3))
        rows.append(f"| {title} | {one:,.0f} | {two:,.0f} | {two / one:.2f} | "
                    f"{size / 1e6:.2f} | {reduce_s * 1e3:.2f} |")
        cells = []
        for mb in ("0", "25", "1"):
            speed, _, wait = max(train(exe, work, 2, "--bucket-mb", mb) for _ in range(3))
            cells.append(f"{speed:,.0f} | {wait * 1e3:.2f}")
        bucket_rows.append(f"| {title} | " + " | ".join(cells) + " |")
        whole = optimizer_bytes(work, 2)
        sharded, _, wait = max(train(exe, work, 2, "--shard-optimizer") for _ in range(3))
        shares = optimizer_bytes(work, 2)
        shard_rows.append(f"| {title} | {two:,.0f} | {whole[0] / 1e6:.2f} | {sharded:,.0f} | "
                          f"{sharded / two:.2f} | {' + '.join(f'{b / 1e6:.2f}' for b in shares)} | "
                          f"{wait * 1e3:.2f} |")
        # The model: each process has a machine like this one, computing
        # at the one-process run's seconds per sample.
        per_sample = 1.0 / one
        for n in (2, 8, 64):
            reduce_model = ring(n, size, alpha, beta)
            strong = 128 / n * per_sample + reduce_model
            weak = 128 * per_sample + reduce_model
            model_rows.append(
                f"| {title} | {n} | {reduce_model * 1e3:.2f} | {128 / strong:,.0f} | "
                f"{128 * per_sample / (n * strong):.2f} | {128 * n / weak:,.0f} | "
                f"{128 * per_sample / weak:.2f} |")
    print("| model | samples/s, 1 process | samples/s, 2 processes | ratio | "
          "all-reduce MB per step | all-reduce ms per step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print()
    print("| model | N | all-reduce ms (model) | strong: samples/s | strong: "
          "efficiency | weak: samples/s | weak: efficiency |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(model_rows))
    print()
    print("| model (2 processes) | after the step: samples/s | ms | 25 MiB buckets: "
          "samples/s | ms | 1 MiB buckets: samples/s | ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(bucket_rows))
    print()
    print("| model (2 processes) | unsharded: samples/s | optimizer MB per process | "
          "sharded: samples/s | ratio | optimizer MB per process | reduce-scatter + "
          "outputs ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(shard_rows))


if __name__ == "__main__":
    main()
