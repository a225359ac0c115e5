"""The OpenBLAS kernel PyTorch's baseline should use on this machine.

Debian's OpenBLAS (0.3.21) picks its kernels by CPU model, and on CPUs newer
than it knows (this project's Xeon, model 207, under KVM) it falls back to
"Prescott", an SSE3 kernel about four times slower than its AVX-512 one.
Comparing against that would flatter Mass, so the benchmarks name the
kernel through OPENBLAS_CORETYPE: the fastest, on a 512 x 512
single-threaded torch.matmul, of the kernels the host's vector extensions
allow that compute correct products there. An OPENBLAS_CORETYPE the
environment inherited is not kept (MASS_BENCH_OPENBLAS_CORETYPE names one
on purpose). On the Xeons that is SkylakeX (AVX-512); on an AMD EPYC Zen 4
(AVX-512 on 256-bit units) Haswell's AVX2 kernel (112 against 107
GFLOP/s); on an AMD EPYC Zen 5 SkylakeX again (210 against 105).
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
# A kernel that is fast but wrong on this CPU (the reason some machines set
# OPENBLAS_CORETYPE) must not be chosen: check odd shapes against float64.
err = 0.0
for n in (7, 64, 255, 513):
    a, b = torch.randn(n, n + 3), torch.randn(n + 3, n - 1)
    ref = a.double() @ b.double()
    err = max(err, float(((a @ b).double() - ref).abs().max() / ref.abs().max()))
n = 512
a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
torch.matmul(a, b, out=c)
best = 1e9
for _ in range(7):
    t = time.perf_counter()
    torch.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t)
print(2 * n ** 3 / best / 1e9 if err < 1e-4 else 0.0)
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


def kernel_env(core, base=None):
    """`base` (default: this process's environment) with OpenBLAS on `core`.
    OPENBLAS_L2_SIZE goes with an inherited OPENBLAS_CORETYPE (some machines
    set both); the kernel named here reads the cache size itself."""
    env = dict(base if base is not None else os.environ)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_CORETYPE"] = core
    return env


def matmul_gflops(core):
    """torch.matmul's GFLOP/s at one thread with OpenBLAS on `core`, or 0
    when that kernel computes wrong products here."""
    env = dict(kernel_env(core), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", MATMUL_GFLOPS], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out)


@functools.lru_cache(maxsize=None)
def fastest_core():
    """The fastest correct kernel of those the host runs (timed once per
    process, in a few seconds), or None when it runs none of them."""
    cores = candidates()
    if not cores:
        return None
    # Each kernel's best of three turns, taken alternately, so that a busy
    # moment of the machine does not decide.
    best = {core: 0.0 for core in cores}
    for _ in range(3):
        for core in cores:
            best[core] = max(best[core], matmul_gflops(core))
    core = max(cores, key=best.get)
    return core if best[core] > 0 else None


def best_core():
    """OPENBLAS_CORETYPE for PyTorch's baseline: MASS_BENCH_OPENBLAS_CORETYPE
    when the caller names one, else the fastest correct kernel the host runs,
    whatever OPENBLAS_CORETYPE the environment inherited (some machines pin
    an older kernel for every program: on this project's AMD EPYC Zen 5,
    Haswell's AVX2 kernel at half the speed of SkylakeX's AVX-512 one, which
    would flatter Mass); None lets OpenBLAS choose."""
    return os.environ.get("MASS_BENCH_OPENBLAS_CORETYPE") or fastest_core()


def aten_capabilities():
    """ATEN_CPU_CAPABILITY values worth timing: PyTorch 1.13 runs its own
    (non-BLAS) kernels at AVX2 even where AVX-512 is there (on purpose: it
    lowers the clock on older Xeons), and on some CPUs its AVX-512 kernels
    are faster (spec 09 on an AMD EPYC Zen 5: 303 against 340 ms). None
    leaves PyTorch's own choice."""
    flags = host_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return [None, "avx512"]
    return [None]


def torch_env(threads, base=None, blas_threads=None, aten=None):
    """The environment for a PyTorch process: its OpenMP pool at `threads`,
    its OpenBLAS (which ignores torch.set_num_threads) at `blas_threads`
    (default: `threads`), OpenBLAS on the host's kernel, and PyTorch's own
    kernels at ATEN_CPU_CAPABILITY `aten` (None: PyTorch's choice)."""
    env = dict(base if base is not None else os.environ)
    if aten:
        env["ATEN_CPU_CAPABILITY"] = aten
    env["OPENBLAS_NUM_THREADS"] = str(threads if blas_threads is None else blas_threads)
    env["OMP_NUM_THREADS"] = str(threads)
    core = best_core()
    return kernel_env(core, env) if core else env
