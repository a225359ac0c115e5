"""Whole epochs, data loading included: Mass against PyTorch's training loop.

Spec 01 (an MLP) and spec 02 (a CNN with batch norm, dropout, random crops
and noise) train one epoch on 32,000 generated 28x28 images (100 MB of
float32 .npy) and validate on 4,000, as written in their spec files
(optimizer, schedule, clipping, augmentation), at 1 and 2 threads. Mass runs
with a background thread drawing the next batch (--prefetch) and without
it (--no-prefetch); by default it uses the thread when --threads leaves a
core free (the table marks the default's column with *). PyTorch's twin runs the loop a PyTorch user
writes: the arrays loaded with numpy, a shuffled index per epoch, each
batch gathered and augmented with tensor operations on the training
thread, then validation under no_grad. Both time the epoch as a whole
(training and validation, from the first step to the last validation
batch): samples/s are training rows over that time.

Besides speed, for Mass: the time from the program's start to its first
step (the log's "ready" event: data mapped and checked, model initialised)
and the peak resident memory (the data is mapped, not copied), against the
data's size.

usage: /usr/bin/python3 bench/epoch.py [--quick]   (about 10 minutes)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MASSC = os.path.join(ROOT, "build", "bin", "massc")
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")
QUICK = "--quick" in sys.argv
TRAIN_ROWS = 4000 if QUICK else 32000
VAL_ROWS = 500 if QUICK else 4000
REPEATS = 1 if QUICK else 2
CORES = len(os.sched_getaffinity(0))

TWIN = r"""
import json, sys, time
import numpy as np
import torch
import torch.nn.functional as F
kind, data, threads, bench = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
torch.manual_seed(0)
start = time.perf_counter()
def load(split):
    x = torch.from_numpy(np.load(f"{data}/{split}/image.npy"))
    y = torch.from_numpy(np.load(f"{data}/{split}/digit.npy")).long()
    return x, y
(x, y), (vx, vy) = load("train"), load("val")
sys.path.insert(0, bench)
from twins import build, train_step
model, opt, _, smoothing, clip = build(kind)
batch = 128 if kind == "mlp" else 64
sched = None
if kind == "cnn":  # cosine(warmup: 100) over the epoch's steps
    import math
    steps = (len(x) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / 100 if s < 100 else
        0.5 * (1 + math.cos(math.pi * (s - 100) / max(1, steps - 100))))
def augment(b):
    # random_crop(pad: 2): one offset per sample, as RandomCrop draws it;
    # noise(std: 0.05).
    n, _, h, w = b.shape
    padded = F.pad(b, (2, 2, 2, 2))
    dy = torch.randint(0, 5, (n, 1, 1)); dx = torch.randint(0, 5, (n, 1, 1))
    rows = (torch.arange(h).view(1, h, 1) + dy).expand(n, h, w)
    cols = (torch.arange(w).view(1, 1, w) + dx).expand(n, h, w)
    idx = torch.arange(n).view(n, 1, 1).expand(n, h, w)
    out = padded[idx, 0, rows, cols].unsqueeze(1)
    return out + 0.05 * torch.randn_like(out)
ready = time.perf_counter() - start
begin = time.perf_counter()
model.train()
order = torch.randperm(len(x))
for s in range(0, len(x), batch):
    idx = order[s:s + batch]
    xb, yb = x[idx], y[idx]
    if kind == "cnn":
        xb = augment(xb)
    train_step(model, opt, xb, yb, smoothing, clip)
    if sched:
        sched.step()
model.eval()
correct = 0
with torch.no_grad():
    for s in range(0, len(vx), batch):
        out = model(vx[s:s + batch])
        F.cross_entropy(out, vy[s:s + batch])
        correct += (out.argmax(1) == vy[s:s + batch]).sum().item()
seconds = time.perf_counter() - begin
print(json.dumps({"seconds": seconds, "ready": ready, "rows": len(x)}))
"""


def wait_rss(args, env=None):
    """Runs `args`; returns (stdout, peak resident MB)."""
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, env=env, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read()
        if p.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {err}")
        out.seek(0)
        return out.read(), usage.ru_maxrss / 1024


def mass_epoch(exe, data, threads, prefetch, work):
    log = os.path.join(work, "epoch.jsonl")
    if os.path.exists(log):
        os.remove(log)
    args = [exe, "--train", f"{data}/train", "--val", f"{data}/val", "--epochs", "1",
            "--threads", str(threads), "--log", log, "--checkpoint-dir", os.path.join(work, "ckpt")]
    args.append("--prefetch" if prefetch else "--no-prefetch")
    out, rss = wait_rss(args)
    with open(log) as f:
        events = [json.loads(line) for line in f]
    ready = [e["seconds"] for e in events if e["event"] == "ready"][0]
    seconds = [e["seconds"] for e in events if e.get("split") == "train"][0]
    printed = float(re.search(r"\(([0-9.]+) samples/s\)", out).group(1))
    return {"seconds": seconds, "ready": ready, "rss": rss, "printed": printed}


def twin_epoch(kind, data, threads, aten=None):
    """The twin's fastest epoch over its thread settings (its pool, or
    OpenBLAS's, at `threads`)."""
    best = None
    for pool, blas in ([(threads, 1)] + ([(1, threads)] if threads > 1 else [])):
        env = openblas.torch_env(pool, blas_threads=blas, aten=aten)
        out, rss = wait_rss(["/usr/bin/python3", "-c", TWIN, kind, data, str(pool),
                             os.path.dirname(os.path.abspath(__file__))], env)
        r = json.loads(out)
        r["rss"] = rss
        r["setting"] = f"pool {pool}, OpenBLAS {blas}" + (f", ATen {aten}" if aten else "")
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def twin_aten(kind, small):
    """PyTorch's faster ATEN_CPU_CAPABILITY for `kind` (see openblas.py),
    from one epoch on the small data set at one thread."""
    choices = openblas.aten_capabilities()
    if len(choices) < 2:
        return choices[0]
    return min(choices, key=lambda aten: twin_epoch(kind, small, 1, aten)["seconds"])


def main():
    work = tempfile.mkdtemp(prefix="mass-epoch-")
    rng = np.random.default_rng(0)
    data = os.path.join(work, "data")
    small = os.path.join(work, "small")
    for where, scale in ((data, 1), (small, 16)):
        for split, rows in (("train", TRAIN_ROWS // scale), ("val", VAL_ROWS // scale)):
            os.makedirs(f"{where}/{split}")
            np.save(f"{where}/{split}/image.npy",
                    rng.random((rows, 1, 28, 28), dtype=np.float32))
            np.save(f"{where}/{split}/digit.npy", rng.integers(0, 10, rows))
    data_mb = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(data) for f in fs) / 2**20
    print(f"data: {TRAIN_ROWS} + {VAL_ROWS} rows of 1x28x28 float32, {data_mb:.0f} MB of .npy; "
          f"{CORES} cores\n")
    print("| model | threads | Mass samples/s (prefetch) | Mass (no prefetch) | PyTorch samples/s "
          "(best setting) | ratio | ratio, no prefetch | Mass to first step | Mass peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec, kind in (("01_mlp.mass", "mlp"), ("02_cnn.mass", "cnn")):
        exe = os.path.join(work, kind)
        subprocess.run([MASSC, "-O3", os.path.join(SPEC, spec), "-o", exe], check=True)
        aten = twin_aten(kind, small)
        for threads in (1, 2):
            runs = {p: min((mass_epoch(exe, data, threads, p, work) for _ in range(REPEATS)),
                           key=lambda r: r["seconds"]) for p in (True, False)}
            twin = min((twin_epoch(kind, data, threads, aten) for _ in range(REPEATS)),
                       key=lambda r: r["seconds"])
            rate = {p: TRAIN_ROWS / runs[p]["seconds"] for p in runs}
            theirs = TRAIN_ROWS / twin["seconds"]
            star = {p: "*" if p == (threads < CORES) else "" for p in runs}
            print(f"| spec {spec[:2]} {kind} | {threads} | {rate[True]:.0f}{star[True]} | "
                  f"{rate[False]:.0f}{star[False]} | {theirs:.0f} ({twin['setting']}) | "
                  f"{rate[True] / theirs:.2f} | {rate[False] / theirs:.2f} | "
                  f"{runs[True]['ready'] * 1000:.0f} ms | {runs[True]['rss']:.0f} MB |", flush=True)
    print(f"\n(PyTorch's twin: {twin['ready'] * 1000:.0f} ms to its first step, "
          f"peak RSS {twin['rss']:.0f} MB, on the last row's run)")


if __name__ == "__main__":
    main()
