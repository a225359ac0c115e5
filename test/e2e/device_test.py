"""The device half of the runtime (runtime/lib/Device.h).

On every machine: the host mirror (MASS_DEVICE_MIRROR=1) runs a CPU
program's entry points on copies of its tensors that follow the GPU's copy
rules (parameters and optimizer state stay on the "device" from step to
step; the host sees them only when it fetches them), and must end every mode
bit-identical to the plain CPU run: a missing upload or download shows as a
different checkpoint or log. With the CUDA toolkit: a --target=cuda program
links, and without a GPU exits 1 saying so. With a GPU: its losses match the
CPU build's; without one that test is skipped, and says so."""
import ctypes
import glob
import os
import re
import subprocess
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

SOURCE = """
block conv_bn(x, channels) {
  return conv2d(x, channels, kernel: 3, pad: 1, bias: false) |> batchnorm |> relu
}

model net {
  input image: f32[B, 1, 8, 8]
  label digit: i32[B]
  label parity: i32[B]
  features = image |> conv_bn(4) |> maxpool(2) |> flatten
  h = dense(features, 16) |> relu |> dropout(0.2)
  digits = dense(h, 4)
  odd = dense(h, 2)
  task digit {
    loss = cross_entropy(digits, digit)
    metric accuracy(digits, digit)
  }
  task parity {
    loss = cross_entropy(odd, parity)
    metric accuracy(odd, parity)
  }
}

train net {
  train_data = "data"
  val_data = "data"
  batch = 16
  epochs = 2
  strategy = alternate
  optimizer = adam(lr: 0.01)
  clip_grad_norm = 1.0
  augment = [noise(image, std: 0.05)]
  checkpoint = best(val.digit.accuracy)
  seed = 3
}
"""


def write_data(path, rows=200, seed=5):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((rows, 1, 8, 8)).astype(np.float32)
    digit = (image[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.int32) * 2 + \
        (image[:, 0, 4:].sum(axis=(1, 2)) > 0).astype(np.int32)
    parity = (digit % 2).astype(np.int32)
    masstest.write_npy_dir(path, {"image": image, "digit": digit, "parity": parity})


def files(directory):
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        with open(path, "rb") as f:
            out[os.path.basename(path)] = f.read()
    return out


def without_timing(text):
    """The progress lines less their times and rates."""
    lines = []
    for line in text.splitlines():
        if line.startswith("running on"):
            continue
        lines.append(line.split("  0.")[0].split(" (")[0] if "samples/s" in line else line)
    return lines


class HostMirror(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = masstest.Workdir()
        write_data(cls.work.file("data"))
        cls.exe = masstest.compile_model(SOURCE, cls.work, "net")

    def run_both(self, *args):
        """Runs the program plainly and on the host mirror, each in its own
        directory; returns both outputs and directories."""
        results = []
        for mirror in (False, True):
            d = self.work.file(("mirror-" if mirror else "plain-") + str(abs(hash(args))))
            os.makedirs(d, exist_ok=True)
            # Files the run writes go to its own directory.
            args = tuple(a.replace("{out}", d) for a in args)
            env = dict(os.environ)
            env.pop("MASS_DEVICE_MIRROR", None)
            if mirror:
                env["MASS_DEVICE_MIRROR"] = "1"
            r = subprocess.run([self.exe, "--checkpoint-dir", os.path.join(d, "ckpt"), *args],
                               cwd=self.work.path, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout.startswith("running on the host mirror"), mirror, r.stdout)
            results.append((r.stdout, d))
            args = tuple(a.replace(d, "{out}") for a in args)
        return results

    def test_training_checkpoints_and_logs_match(self):
        (plain, a), (mirror, b) = self.run_both("--log", "log.jsonl")
        self.assertEqual(without_timing(plain), without_timing(mirror))
        ours, theirs = files(os.path.join(b, "ckpt")), files(os.path.join(a, "ckpt"))
        self.assertIn("best.safetensors", ours)
        self.assertIn("last.state.safetensors", ours)
        self.assertEqual(sorted(ours), sorted(theirs))
        for name in theirs:
            self.assertEqual(ours[name], theirs[name], name)
        # Not vacuous: the weights moved from where the seed put them, so a
        # checkpoint written from the host's stale copy would differ.
        (_, short), _ = self.run_both("--steps", "1")
        one = masstest.read_safetensors(os.path.join(short, "ckpt", "last.safetensors"))
        two = masstest.read_safetensors(os.path.join(a, "ckpt", "last.safetensors"))
        self.assertNotEqual(one["digits.weight"].tobytes(), two["digits.weight"].tobytes())

    def test_resume_on_the_mirror_equals_the_whole_run(self):
        """Two epochs in one plain run; one, then one more resumed, on the
        mirror: the resumed state goes up to the device before the first
        step."""
        (_, whole), _ = self.run_both()
        d = self.work.file("resumed")
        env = dict(os.environ, MASS_DEVICE_MIRROR="1")
        run = lambda *args: subprocess.run([self.exe, "--checkpoint-dir", d, *args],
                                           cwd=self.work.path, env=env, check=True,
                                           capture_output=True)
        run("--epochs", "1")
        run("--resume", d)
        for name in ("last.safetensors", "last.state.safetensors"):
            with open(os.path.join(d, name), "rb") as f, \
                    open(os.path.join(whole, "ckpt", name), "rb") as g:
                self.assertEqual(f.read(), g.read(), name)

    def test_other_modes_match(self):
        """--init then --eval-only, --dump-grads, --dump-predictions and
        --ensemble read parameters the host wrote and results the device
        wrote."""
        (_, trained), _ = self.run_both("--epochs", "1")
        weights = os.path.join(trained, "ckpt", "last.safetensors")
        rng = np.random.default_rng(1)
        other = {k: (v + rng.standard_normal(v.shape).astype(np.float32) * 0.1)
                 for k, v in masstest.read_safetensors(weights).items()}
        other_path = self.work.file("other.safetensors")
        masstest.write_safetensors(other_path, other)
        for args, out in ((["--init", weights, "--eval-only"], None),
                          (["--init", weights, "--dump-grads", "{out}/g.safetensors"],
                           "g.safetensors"),
                          (["--init", weights, "--dump-predictions", "{out}/p.safetensors"],
                           "p.safetensors"),
                          (["--ensemble", weights + "," + other_path], None)):
            (plain, a), (mirror, b) = self.run_both(*args)
            self.assertEqual(without_timing(plain), without_timing(mirror), args)
            if out:
                with open(os.path.join(a, out), "rb") as f, open(os.path.join(b, out), "rb") as g:
                    theirs, ours = f.read(), g.read()
                self.assertGreater(len(theirs), 100)
                self.assertEqual(ours, theirs, out)


def cuda_library():
    return os.path.join(masstest.BUILD, "lib", "libmass_cuda.a")


def gpu_present():
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 \
        and count.value > 0


@unittest.skipUnless(os.path.exists(cuda_library()),
                     "Mass was built without the CUDA toolkit")
class CudaTarget(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = masstest.Workdir()
        write_data(cls.work.file("data"))
        cls.gpu = masstest.compile_model(SOURCE, cls.work, "net_gpu", extra=["--target=cuda"])

    def test_without_a_gpu_it_exits_1_and_says_why(self):
        if gpu_present():
            self.skipTest("a GPU is present")
        r = subprocess.run([self.gpu], cwd=self.work.path, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^error: this program runs on an NVIDIA GPU, and this "
                         r"machine has no CUDA driver|^error: this program runs on an NVIDIA "
                         r"GPU, and the CUDA driver found none")

    def test_gpu_losses_match_the_cpu(self):
        if not gpu_present():
            self.skipTest("no GPU here: the GPU run is skipped")
        cpu = masstest.compile_model(SOURCE, self.work, "net_cpu")
        logs = []
        for exe in (cpu, self.gpu):
            log = self.work.file(os.path.basename(exe) + ".jsonl")
            subprocess.run([exe, "--log", log, "--checkpoint-dir", exe + ".ckpt"],
                           cwd=self.work.path, check=True, capture_output=True)
            logs.append([e for e in masstest_log(log) if e.get("event") == "epoch"])
        self.assertEqual(len(logs[0]), len(logs[1]))
        for a, b in zip(*logs):
            for key, value in a.items():
                if isinstance(value, float) and "loss" in key:
                    self.assertLess(abs(b[key] - value), 1e-3 * max(abs(value), 1e-6), key)


@unittest.skipUnless(os.environ.get("MASS_CUDA_ROOT"), "Mass was built without the CUDA toolkit")
class CudaLibraries(unittest.TestCase):
    """The runtime finds the driver's, cuBLAS's, cuBLASLt's and NCCL's
    functions by name when a GPU program starts or first sums over the
    processes (Cuda.cpp): each name must be one the libraries define,
    checked here against the toolkit's copies (for the driver, its
    link-time libcuda.so), since no GPU runs the tests."""

    def test_every_function_the_runtime_looks_up_exists(self):
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "runtime", "lib",
                               "Cuda.cpp")) as f:
            names = re.findall(r'find\(\w+, "(\w+)"', f.read())
        lt = [n for n in names if n.startswith("cublasLt")]
        cublas = [n for n in names if n.startswith("cublas") and n not in lt]
        nccl = [n for n in names if n.startswith("nccl")]
        driver = [n for n in names if not n.startswith(("cublas", "nccl"))]
        self.assertGreaterEqual(len(driver), 15)
        self.assertEqual(len(cublas), 3)
        self.assertEqual(len(lt), 7)
        self.assertEqual(len(nccl), 10)
        root = os.environ["MASS_CUDA_ROOT"]
        for pattern, wanted in (("stubs/libcuda.so", driver), ("libcublas.so.*", cublas),
                                ("libcublasLt.so.*", lt), ("libnccl.so.2", nccl)):
            found = sorted(glob.glob(os.path.join(root, "lib64", pattern)) +
                           glob.glob(os.path.join(root, "targets", "*", "lib", pattern)))
            self.assertTrue(found, f"no {pattern} in {root}")
            library = ctypes.CDLL(found[0])
            missing = [n for n in wanted if not hasattr(library, n)]
            self.assertEqual(missing, [], f"{found[0]} lacks them")


def masstest_log(path):
    import json
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


if __name__ == "__main__":
    unittest.main(verbosity=2)
