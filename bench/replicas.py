"""What --replicas costs on this machine: spec 01 (an MLP) and spec 02 (a
CNN with batch norm) on MNIST, one process and `mpirun -np 2`, without and
with `--replicas 4`: samples/s of the second of two rounds of training
(the first warms up), the best of three runs, and the ratios.

With replicas each process runs its share of 4 fixed parts of the batch
and the sums over the batch add in one tree, so that any N gives the same
bits (README, "many processes"); this measures the price.

usage: /usr/bin/python3 bench/replicas.py [--steps N]
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MASSC = os.path.join(ROOT, "build", "bin", "massc")
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")
MNIST = os.path.join(ROOT, "examples", "data", "mnist")
STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 60
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def samples_per_s(exe, work, n, batch, extra):
    log = os.path.join(work, "log.jsonl")
    if os.path.exists(log):
        os.remove(log)
    args = [exe, "--train", os.path.join(MNIST, "train"), "--val", os.path.join(MNIST, "val"),
            "--batch", str(batch), "--steps", str(2 * STEPS), "--val-every", str(STEPS),
            "--log", log, "--checkpoint-dir", os.path.join(work, "ckpt"), *extra]
    cmd = args if n == 1 else ["mpirun", "-np", str(n), "--oversubscribe", *args]
    subprocess.run(cmd, cwd=work, env=ENV, check=True, capture_output=True)
    with open(log) as f:
        events = [json.loads(line) for line in f]
    last = [e for e in events if e.get("event") == "step" and e.get("split") == "train"][-1]
    return STEPS * batch / last["seconds"]


def main():
    subprocess.run(["bash", os.path.join(ROOT, "examples", "data", "fetch_mnist.sh")], check=True,
                   capture_output=True)
    work = tempfile.mkdtemp(prefix="mass-bench-replicas-")
    print("| model | processes | samples/s | with --replicas 4 | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for file, title, batch in (("01_mlp.mass", "spec 01 (MLP, batch 128)", 128),
                               ("02_cnn.mass", "spec 02 (CNN, batch norm, batch 64)", 64)):
        exe = os.path.join(work, file.split(".")[0])
        subprocess.run([MASSC, os.path.join(SPEC, file), "-o", exe, "-O3"], check=True)
        for n in (1, 2):
            plain = max(samples_per_s(exe, work, n, batch, []) for _ in range(3))
            split = max(samples_per_s(exe, work, n, batch, ["--replicas", "4"]) for _ in range(3))
            print(f"| {title} | {n} | {plain:,.0f} | {split:,.0f} | {split / plain:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
