"""The OpenBLAS kernel PyTorch's baseline should use on this machine.

Debian's OpenBLAS (0.3.21) picks its kernels by CPU model, and on CPUs newer
than it knows (this project's Xeon, model 207, under KVM) it falls back to
"Prescott", an SSE3 kernel about four times slower than its AVX-512 one.
Comparing against that would flatter Mass, so the benchmarks name the
kernel through OPENBLAS_CORETYPE (unless the caller already set it): the
fastest, on a 512 x 512 single-threaded torch.matmul, of the kernels the
host's vector extensions allow. On the Xeons that is SkylakeX (AVX-512);
on an AMD EPYC (Zen 4, whose AVX-512 runs on 256-bit units) Haswell's AVX2
kernel is faster (112 against 107 GFLOP/s).
"""
import functools
import os
import subprocess
import sys


def host_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


MATMUL_GFLOPS = """
import time, torch
torch.set_num_threads(1)
n = 512
a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
torch.matmul(a, b, out=c)
best = 1e9
for _ in range(7):
    t = time.perf_counter()
    torch.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t)
print(2 * n ** 3 / best / 1e9)
"""

def candidates():
    """The OpenBLAS kernels the host's vector extensions can run, widest
    first."""
    flags = host_flags()
    found = []
    if "avx512f" in flags:
        found.append("SkylakeX")
    if "avx2" in flags and "fma" in flags:
        found.append("Haswell")
    return found


def matmul_gflops(core):
    """torch.matmul's GFLOP/s at one thread with OpenBLAS on `core`."""
    env = dict(os.environ, OPENBLAS_CORETYPE=core, OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", MATMUL_GFLOPS], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out)


@functools.lru_cache(maxsize=None)
def fastest_core():
    """The faster of the kernels the host runs (timed once per process, in
    a few seconds), or None when it runs neither."""
    cores = candidates()
    if len(cores) < 2:
        return cores[0] if cores else None
    # Each kernel's best of three turns, taken alternately, so that a busy
    # moment of the machine does not decide.
    best = {core: 0.0 for core in cores}
    for _ in range(3):
        for core in cores:
            best[core] = max(best[core], matmul_gflops(core))
    return max(cores, key=best.get)


def best_core():
    """OPENBLAS_CORETYPE for the host: the caller's, or the faster of
    SkylakeX (AVX-512) and Haswell (AVX2) where both run, the one that runs,
    or None to let OpenBLAS choose."""
    return os.environ.get("OPENBLAS_CORETYPE") or fastest_core()


def torch_env(threads, base=None, blas_threads=None):
    """The environment for a PyTorch process: its OpenMP pool at `threads`,
    its OpenBLAS (which ignores torch.set_num_threads) at `blas_threads`
    (default: `threads`), and OpenBLAS on the host's kernel."""
    env = dict(base if base is not None else os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads if blas_threads is None else blas_threads)
    env["OMP_NUM_THREADS"] = str(threads)
    core = best_core()
    if core:
        env["OPENBLAS_CORETYPE"] = core
    return env
