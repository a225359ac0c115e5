"""The OpenBLAS kernel PyTorch's baseline should use on this machine.

Debian's OpenBLAS (0.3.21) picks its kernels by CPU model, and on CPUs newer
than it knows (this project's Xeon, model 207, under KVM) it falls back to
"Prescott", an SSE3 kernel about four times slower than its AVX-512 one.
Comparing against that would flatter Mass, so the benchmarks name the
kernel for the host's vector extensions through OPENBLAS_CORETYPE (unless
the caller already set it).
"""
import os


def host_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def best_core():
    """OPENBLAS_CORETYPE for the host: SkylakeX (AVX-512), Haswell (AVX2),
    or None to let OpenBLAS choose."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    flags = host_flags()
    if "avx512f" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


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
