"""Spec 09 against llm.c's CPU trainer (train_gpt2.c) on the same machine.

llm.c trains GPT-2 in plain C with OpenMP; its model is spec 09's (token and
position embeddings, pre-norm blocks, causal self-attention, tanh GELU, a
tied output layer, AdamW). This script takes a checkout of llm.c (it is not
part of Mass and is not fetched), copies train_gpt2.c and its headers into
a temporary directory, and changes only what main() fixes: the batch (B =
32), the number of steps, the checkpoint and data paths, and it turns off
main()'s validation and sampling between steps (they are not timed there
either). The checkpoint is written here in llm.c's format (header 20240326,
version 3) with spec 09's sizes (T = 64, V = 256, 4 layers, 6 heads, 192
channels) and GPT-2's initialisation scales; the tokens are a random byte
stream in llm.c's .bin format. It is built with llm.c's own flags (-Ofast
-march=native -fopenmp). Both programs run at 1 and 2 threads; each figure
is the median of the timed steps after a warm-up, best of three runs.

Differences that favour llm.c: its update has no gradient clipping and no
weight decay here (spec 09 clips at 1.0 and decays by 0.1).

usage: /usr/bin/python3 bench/llmc.py PATH_TO_LLM_C [--steps N]
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MASSC = os.path.join(ROOT, "build", "bin", "massc")
SPEC09 = os.path.join(ROOT, "test", "lit", "spec", "fixtures", "09_gpt.mass")
B, T, V, L, NH, C = 32, 64, 256, 4, 6, 192


def write_checkpoint(path, rng):
    header = np.zeros(256, dtype="<i4")
    header[:8] = (20240326, 3, T, V, L, NH, C, V)
    normal = lambda *shape: rng.normal(0.0, 0.02, shape).astype("<f4")
    ones, zeros = (lambda *s: np.ones(s, "<f4")), (lambda *s: np.zeros(s, "<f4"))
    proj = lambda *shape: (normal(*shape) / np.sqrt(2 * L)).astype("<f4")
    # llm.c's parameter order: wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw,
    # attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw, lnfb.
    tensors = [normal(V, C), normal(T, C), ones(L, C), zeros(L, C),
               normal(L, 3 * C, C), zeros(L, 3 * C), proj(L, C, C), zeros(L, C),
               ones(L, C), zeros(L, C), normal(L, 4 * C, C), zeros(L, 4 * C),
               proj(L, C, 4 * C), zeros(L, C), ones(C), zeros(C)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for t in tensors:
            f.write(t.tobytes())


def write_tokens(path, rng, count):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, count)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(rng.integers(0, V, count).astype("<u2").tobytes())


def patch(source, work, steps):
    """train_gpt2.c's main() with this benchmark's batch, steps and files."""
    subs = [(r"int B = 4;", f"int B = {B};"),
            (r'"gpt2_124M\.bin"', f'"{work}/model.bin"'),
            (r'"dev/data/tinyshakespeare/tiny_shakespeare_train\.bin"', f'"{work}/tokens.bin"'),
            (r'"dev/data/tinyshakespeare/tiny_shakespeare_val\.bin"', f'"{work}/tokens.bin"'),
            (r"step <= 40;", f"step < {steps};"),
            (r"if \(step % 10 == 0\)", "if (0)"),
            (r"if \(step > 0 && step % 20 == 0\)", "if (0)")]
    for pattern, replacement in subs:
        source, n = re.subn(pattern, replacement, source)
        if n != 1:
            sys.exit(f"llmc.py: train_gpt2.c has changed: '{pattern}' matched {n} times")
    return source


def median_step_ms(cmd, env, pattern, warmup):
    times = [float(m) for m in re.findall(pattern, subprocess.run(
        cmd, env=env, check=True, capture_output=True, text=True).stdout)]
    return statistics.median(times[warmup:])


def main():
    if len(sys.argv) < 2 or not os.path.isfile(os.path.join(sys.argv[1], "train_gpt2.c")):
        sys.exit(__doc__)
    llmc = sys.argv[1]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 12
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as work:
        shutil.copytree(os.path.join(llmc, "llmc"), os.path.join(work, "llmc"))
        with open(os.path.join(llmc, "train_gpt2.c")) as f:
            source = patch(f.read(), work, steps)
        with open(os.path.join(work, "train_gpt2.c"), "w") as f:
            f.write(source)
        write_checkpoint(os.path.join(work, "model.bin"), rng)
        write_tokens(os.path.join(work, "tokens.bin"), rng, B * T * (steps + 2) + 1)
        subprocess.run(["gcc", "-Ofast", "-march=native", "-fopenmp", "-DOMP", "-I", work,
                        "-Wno-unused-result", os.path.join(work, "train_gpt2.c"), "-lm",
                        "-o", os.path.join(work, "train_gpt2")], check=True)
        subprocess.run([MASSC, "-O3", SPEC09, "-o", os.path.join(work, "mass")], check=True)
        print(f"spec 09 (batch {B}, {T} positions) against llm.c's train_gpt2.c, "
              f"median ms per training step (best of three runs)\n")
        print("| threads | Mass ms/step | llm.c ms/step | time ratio (Mass/llm.c) |")
        print("| --- | --- | --- | --- |")
        for threads in (1, 2):
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            theirs = min(median_step_ms([os.path.join(work, "train_gpt2")], env,
                                        r"took ([0-9.]+) ms", 2) for _ in range(3))
            ours = min(median_step_ms(
                [os.path.join(work, "mass"), "--train", os.path.join(work, "tokens.bin"),
                 "--batch", str(B), "--benchmark", str(steps), "--threads", str(threads)],
                env, r'"train_step_ms":([0-9.]+)', 0) for _ in range(3))
            print(f"| {threads} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
