"""Side-by-side benchmark of Mass and PyTorch on the same machine, in one run.

For each model, massc -O3 builds the training program, which times training
steps (train_step + update) on one batch with --benchmark; its PyTorch twin
(same layers, loss, optimizer and batch) times the same steps after a
warm-up. Both run at 1 and 2 threads. At N threads PyTorch gets its best
time over every thread setting up to N: its own pool (OMP_NUM_THREADS and
torch.set_num_threads) at 1..N threads with OpenBLAS pinned to one, and its
pool at one thread with OpenBLAS at 1..N (two pools of N threads on N cores
slow each other down), always with OpenBLAS's kernel for the host's vectors
(see openblas.py) and, where AVX-512 runs, PyTorch's own kernels at the
faster of its AVX2 default and AVX-512 (ATEN_CPU_CAPABILITY, chosen per
model); the table names the setting that won. A GEMM
micro-benchmark times the generated matmul (a model whose forward is one
matmul and a mean) against torch.matmul writing into a preallocated `out=`. Spec 02 and spec 03 run as
written (their train blocks' optimizers; no augmentation in either) against
PyTorch twins (torchvision's resnet18 for spec 03), whose convolutions run
on oneDNN. Each figure is the best of three runs.

Spec 09 (a GPT) runs against bench/gpt_torch.py's twin; its rows add
tokens/s and the share of the GEMM kernel's own GFLOP/s (1024, one thread,
from the GEMM table) that the whole step reaches.

usage: /usr/bin/python3 bench/run.py [--quick] [--only TEXT] [--no-gemm]
                                    [--baseline DIR]
  --only TEXT     only the models whose title contains TEXT
  --no-gemm       skip the GEMM table (and spec 09's share of it)
  --baseline DIR  also time the programs that another build's massc
                  (DIR/bin/massc, with its runtime in DIR/lib: a copy of
                  build/ from an earlier commit) makes, in the same run:
                  a before-and-after column
"""
import functools
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MASSC = os.path.join(ROOT, "build", "bin", "massc")
QUICK = "--quick" in sys.argv
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
BASELINE = (os.path.join(sys.argv[sys.argv.index("--baseline") + 1], "bin", "massc")
            if "--baseline" in sys.argv else None)

MODELS = {
    # name: (source, batch, steps, torch twin builder)
    "spec01 mlp 784-256-256-10": ("""
model mlp {
  input image: f32[B, 1, 28, 28]
  label digit: i32[B]
  fc1 = dense(flatten(image), 256)
  fc2 = dense(relu(fc1), 256)
  out = dense(relu(fc2), 10)
  task classify {
    loss = cross_entropy(out, digit)
    metric accuracy(out, digit)
  }
}
train mlp { optimizer = adam(lr: 1e-3) }
""", 128, 100, "mlp"),
    "wide mlp 1024-2048-2048-10": ("""
model wide {
  input image: f32[B, 1024]
  label digit: i32[B]
  fc1 = dense(image, 2048)
  fc2 = dense(relu(fc1), 2048)
  out = dense(relu(fc2), 10)
  task classify {
    loss = cross_entropy(out, digit)
    metric accuracy(out, digit)
  }
}
train wide { optimizer = adam(lr: 1e-3) }
""", 256, 5, "wide"),
    # The spec files themselves (their train blocks set the optimizers).
    "spec02 cnn (conv, batch norm, dropout)": (
        open(os.path.join(SPEC, "02_cnn.mass")).read(), 64, 20, "cnn"),
    "spec03 resnet-18, 32x32": (
        open(os.path.join(SPEC, "03_resnet18.mass")).read(), 32, 5, "resnet18"),
    # Spec 09 against bench/gpt_torch.py's twin (nn.MultiheadAttention).
    "spec09 gpt, 4 blocks of 192, 64 bytes": (
        open(os.path.join(SPEC, "09_gpt.mass")).read(), 32, 5, "gpt"),
}

# Spec 09's training FLOPs per token: three times the forward pass's
# multiply-adds, counted as 2 each, of its matrix products (per block the
# q, k, v and output projections, 4 D^2, and the MLP, 8 D^2; attention's
# two products over (T + 1) / 2 keys on average, causal; the tied output
# layer, D V).
GPT_D, GPT_T, GPT_V, GPT_BLOCKS = 192, 64, 256, 4
GPT_FLOPS_PER_TOKEN = 3 * (GPT_BLOCKS * (2 * 12 * GPT_D ** 2 + 2 * 2 * (GPT_T + 1) / 2 * GPT_D)
                           + 2 * GPT_D * GPT_V)

TORCH = r"""
import json, os, sys, time
import torch
import torch.nn.functional as F
threads = int(sys.argv[1]); kind = sys.argv[2]; batch = int(sys.argv[3]); steps = int(sys.argv[4])
# threads: PyTorch's own pool; OpenBLAS's comes from the environment.
torch.set_num_threads(threads)
torch.manual_seed(0)
sys.path.insert(0, os.environ["MASS_BENCH_DIR"])
if kind in ("mlp", "wide", "cnn", "resnet18"):
    from twins import build, train_step
    model, opt, shape, smoothing, clip = build(kind)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    def step():
        train_step(model, opt, x, y, smoothing, clip)
elif kind == "gpt":  # spec 09
    from gpt_torch import GPT, T, VOCAB
    model = GPT()
    x = torch.randint(0, VOCAB, (batch, T)); y = torch.randint(0, VOCAB, (batch, T))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    def step():
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
else:  # gemm N
    n = int(kind[4:])
    a = torch.rand(n, n); b = torch.rand(n, n); c = torch.empty(n, n)
    def step():
        torch.matmul(a, b, out=c)
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"ms": (time.perf_counter() - start) * 1000 / steps}))
"""


REPEATS = 3  # the machines are shared: each figure is the best of three runs


def best(measure):
    return min(measure() for _ in range(REPEATS))


def torch_settings(threads):
    """(PyTorch's pool, OpenBLAS's threads) pairs up to `threads`: never both
    above one."""
    settings = [(t, 1) for t in range(1, threads + 1)]
    return settings + [(1, b) for b in range(2, threads + 1)]


def torch_ms(kind, batch, steps, pool, blas, aten=None):
    env = openblas.torch_env(pool, blas_threads=blas, aten=aten)
    env["MASS_BENCH_DIR"] = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(["/usr/bin/python3", "-c", TORCH, str(pool), kind, str(batch), str(steps)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ms"]


@functools.lru_cache(maxsize=None)
def torch_aten(kind, batch, steps):
    """The faster ATEN_CPU_CAPABILITY for a model (see openblas.py), timed
    once per model at one thread, best of two runs each; None for
    PyTorch's own choice."""
    choices = openblas.aten_capabilities()
    if len(choices) < 2:
        return choices[0]
    times = {aten: min(torch_ms(kind, batch, steps, 1, 1, aten) for _ in range(2))
             for aten in choices}
    return min(choices, key=times.get)


def torch_best(kind, batch, steps, threads):
    """PyTorch's best time (best of three runs each) over its thread settings
    up to `threads`, with its kernels at the faster capability, and the
    setting, as "pool P, OpenBLAS B[, ATen CAPABILITY]"."""
    aten = torch_aten(kind, batch, steps)
    times = {(pool, blas): best(lambda: torch_ms(kind, batch, steps, pool, blas, aten))
             for pool, blas in torch_settings(threads)}
    (pool, blas), ms = min(times.items(), key=lambda item: item[1])
    return ms, f"pool {pool}, OpenBLAS {blas}" + (f", ATen {aten}" if aten else "")


def mass_ms(exe, data, batch, steps, threads, key):
    mode = "--benchmark-forward" if key == "forward_ms" else "--benchmark"
    out = subprocess.run([exe, "--train", data, "--batch", str(batch), mode, str(steps),
                          "--threads", str(threads)], check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("benchmark ")][0]
    return json.loads(line[len("benchmark "):])[key]


def torch_version():
    return subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def cpu_model():
    """The CPU's name and family/model, as /proc/cpuinfo gives them: the
    ratios depend on the machine kind."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "CPU unknown"
    return (f"{fields.get('model name', 'CPU')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')}), {os.cpu_count()} cores")


def compile_model(source, work, name, massc=MASSC):
    src = os.path.join(work, name + ".mass")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(work, name)
    subprocess.run([massc, "-O3", src, "-o", exe], check=True)
    return exe


def data_dir(work, name, arrays):
    d = os.path.join(work, name + "-data")
    os.makedirs(d, exist_ok=True)
    for k, v in arrays.items():
        np.save(os.path.join(d, k + ".npy"), v)
    return d


def token_stream(work, ids):
    """A token stream in llm.c's .bin format."""
    path = os.path.join(work, "tokens.bin")
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(ids))
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(ids, dtype="<u2").tobytes())
    return path


def main():
    work = tempfile.mkdtemp(prefix="mass-bench-")
    rng = np.random.default_rng(0)
    gpt_rows = []
    print(f"{cpu_model()}; PyTorch {torch_version()}, OpenBLAS kernel {openblas.best_core() or 'chosen by OpenBLAS'}"
          " (OPENBLAS_CORETYPE)\n")
    if BASELINE:
        print(f"Baseline: {BASELINE}\n")
    extra = " baseline ms/step | Mass/baseline |" if BASELINE else ""
    print("| model | batch | threads | Mass ms/step | PyTorch ms/step (best setting) | "
          "time ratio (Mass/PyTorch) |" + extra)
    print("| --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if BASELINE else ""))
    for title, (source, batch, steps, kind) in MODELS.items():
        if ONLY not in title:
            continue
        if QUICK:
            steps = max(2, steps // 10)
        exe = compile_model(source, work, kind)
        base_exe = compile_model(source, work, kind + "-baseline", BASELINE) if BASELINE else None
        if kind == "gpt":
            data = token_stream(work, rng.integers(0, 256, batch * GPT_T * 2 + 1))
        else:
            shape = {"mlp": (batch, 1, 28, 28), "cnn": (batch, 1, 28, 28),
                     "resnet18": (batch, 3, 32, 32)}.get(kind, (batch, 1024))
            label = "class" if kind == "resnet18" else "digit"
            data = data_dir(work, kind, {"image": rng.random(shape, dtype=np.float32),
                                         label: rng.integers(0, 10, batch).astype(np.int32)})
        for threads in (1, 2):
            ours = best(lambda: mass_ms(exe, data, batch, steps, threads, "train_step_ms"))
            theirs, setting = torch_best(kind, batch, steps, threads)
            row = (f"| {title} | {batch} | {threads} | {ours:.2f} | {theirs:.2f} ({setting}) | "
                   f"{ours / theirs:.2f} |")
            if base_exe:
                base = best(lambda: mass_ms(base_exe, data, batch, steps, threads, "train_step_ms"))
                row += f" {base:.2f} | {ours / base:.2f} |"
            print(row, flush=True)
            if kind == "gpt":
                gpt_rows.append((threads, ours, theirs, batch * GPT_T))
    if "--no-gemm" in sys.argv:
        return
    print()
    gemm_gflops = {}
    print("| GEMM n×n×n | threads | Mass GFLOP/s | torch.matmul GFLOP/s | ratio (Mass/PyTorch) |"
          + (" baseline GFLOP/s |" if BASELINE else ""))
    print("| --- | --- | --- | --- | --- |" + (" --- |" if BASELINE else ""))
    for n in (256, 512, 1024, 2048):
        reps = 3 if n >= 2048 or QUICK else 10
        source = f"""
model gemm{n} {{
  input a: f32[B, {n}]
  label y: f32[B, {n}]
  w = param(f32[{n}, {n}], init: normal(std: 0.01))
  task t {{ loss = mean(matmul(a, w)) }}
}}
"""
        exe = compile_model(source, work, f"gemm{n}")
        data = data_dir(work, f"gemm{n}", {"a": rng.random((n, n), dtype=np.float32),
                                           "y": np.zeros((n, n), np.float32)})
        flops = 2.0 * n ** 3
        for threads in (1,):
            ours = best(lambda: mass_ms(exe, data, n, reps, threads, "forward_ms"))
            theirs, _ = torch_best(f"gemm{n}", n, reps, threads)
            row = (f"| {n} | {threads} | {flops / ours / 1e6:.1f} | {flops / theirs / 1e6:.1f} | "
                   f"{theirs / ours:.2f} |")
            if BASELINE:
                base_exe = compile_model(source, work, f"gemm{n}-baseline", BASELINE)
                base = best(lambda: mass_ms(base_exe, data, n, reps, threads, "forward_ms"))
                row += f" {flops / base / 1e6:.1f} |"
            print(row, flush=True)
            gemm_gflops[n] = flops / ours / 1e6
    if gpt_rows:
        # Spec 09's whole step against the GEMM kernel alone (at 1024, one
        # thread; twice that at two threads).
        print()
        print("| spec09 gpt | threads | Mass tokens/s | PyTorch tokens/s | Mass GFLOP/s | "
              "share of the GEMM kernel's GFLOP/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        for threads, ours, theirs, tokens in gpt_rows:
            gflops = GPT_FLOPS_PER_TOKEN * tokens / ours / 1e6
            print(f"| {GPT_FLOPS_PER_TOKEN * tokens / 1e9:.1f} GFLOP/step | {threads} | "
                  f"{tokens / ours * 1000:.0f} | {tokens / theirs * 1000:.0f} | {gflops:.1f} | "
                  f"{gflops / (gemm_gflops[1024] * threads):.2f} |", flush=True)


if __name__ == "__main__":
    main()
