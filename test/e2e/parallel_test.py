"""Data-parallel training under mpirun: N = 1, 2 and 4 processes (this
machine's two cores oversubscribed) end with the same parameters and the
same validation metrics for the same seed and global batch; rank 0 alone
logs and checkpoints; a run resumes with another N; a rank that dies or
hangs ends the job with a message; what is not supported yet says so."""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")
MNIST = os.path.join(ROOT, "examples", "data", "mnist")

# mpirun refuses root unless told (CI runs as root); the ranks may share
# this machine's cores.
MPI_ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def launch(n, exe, *args):
    """The command that runs `exe` on n processes (n = 1: on its own, as
    a user runs it without mpirun)."""
    if n == 1:
        return [exe, *args]
    return ["mpirun", "-np", str(n), "--oversubscribe", exe, *args]


def same_params(test, ours, theirs, what, element=1e-4):
    """Parameters equal within 1e-5 relative, per tensor in norm. (An
    element whose gradient nearly cancels over the batch is summed in
    another order on N processes, and Adam divides by its size: a few such
    elements of MNIST's fc1.weight differ by 2e-6, 2e-5 of the tensor's
    largest. Every element stays within `element` of that.)"""
    test.assertEqual(sorted(ours), sorted(theirs))
    for name, value in theirs.items():
        test.assertLess(masstest.rel_error(ours[name], value), 1e-5, f"{what}: {name}")
        test.assertLessEqual(np.abs(ours[name] - value).max(), element * np.abs(value).max(),
                             f"{what}: {name}")


TWO_TASKS = """
model two {
  input image: f32[B, 1, 28, 28]
  label digit: i32[B]
  label parity: i32[B]
  trunk = image |> flatten |> dense(64, bias: false) |> batchnorm |> relu |> dropout(0.3)
  task digit(weight: 1.0) {
    logits = dense(trunk, 10)
    loss = cross_entropy(logits, digit)
    metric accuracy(logits, digit)
  }
  task parity(weight: 0.5) {
    logits = dense(trunk, 2)
    loss = cross_entropy(logits, parity)
    metric accuracy(logits, parity)
  }
}
train two {
  train_data = "train"
  val_data   = "val"
  batch      = 30
  epochs     = 2
  optimizer  = adam(lr: 1e-3)
  clip_grad_norm = 1.0
  augment    = [flip(image)]
  seed       = 5
}
"""


def val_metrics(log):
    return [(e["step"], e["task"], {k: v for k, v in e.items() if k in ("loss", "accuracy")})
            for e in masstest.log_events(log) if e.get("split") == "val"]


class Runs(unittest.TestCase):
    """Trains one program on N processes and compares with one (no tests
    of its own)."""

    @classmethod
    def setUpClass(cls):
        subprocess.run(["bash", os.path.join(ROOT, "examples", "data", "fetch_mnist.sh")], check=True)

    def setUp(self):
        self.work = masstest.Workdir("mass-parallel-")

    # massc's flags for the programs (the emulated GPU's in EmulatedGpu).
    TARGET = ()
    # Each element's bound, relative to its tensor's largest (same_params).
    ELEMENT = 1e-4

    def spec(self, file, name):
        with open(os.path.join(SPEC, file)) as f:
            return masstest.compile_model(f.read(), self.work, name, extra=self.TARGET)

    def train(self, exe, n, name, *extra):
        ckpt, log = self.work.file(name), self.work.file(name + ".jsonl")
        r = subprocess.run(launch(n, exe, "--checkpoint-dir", ckpt, "--log", log, *extra),
                           cwd=self.work.path, env=MPI_ENV, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout, masstest.read_safetensors(os.path.join(ckpt, "last.safetensors")), log

    def check_equivalent(self, exe, *args, flags=()):
        """N = 2 and 4 (with `flags`) against one process."""
        out1, params1, log1 = self.train(exe, 1, "n1", *args)
        for n in (2, 4):
            out, params, log = self.train(exe, n, f"n{n}", *args, *flags)
            same_params(self, params, params1, f"N={n}", self.ELEMENT)
            # Rank 0 alone prints and logs: the lines of one process.
            self.assertEqual(len(out.splitlines()), len(out1.splitlines()), out)
            ours, theirs = val_metrics(log), val_metrics(log1)
            self.assertEqual([(s, t) for s, t, _ in ours], [(s, t) for s, t, _ in theirs])
            for (_, _, a), (_, _, b) in zip(ours, theirs):
                for k in b:
                    self.assertAlmostEqual(a[k], b[k], delta=1e-5 * max(1.0, abs(b[k])), msg=f"N={n} {k}")
        return params1

    def smooth(self, file, name):
        """`file` with tanh for ReLU and average for max pooling (see
        Equivalence)."""
        with open(os.path.join(SPEC, file)) as f:
            source = re.sub(r"\bmaxpool\b", "avgpool", re.sub(r"\brelu\b", "tanh", f.read()))
        self.assertIn("avgpool", source)
        return masstest.compile_model(source, self.work, name, extra=self.TARGET)

    def mnist(self, steps, every):
        return ["--train", os.path.join(MNIST, "train"), "--val", os.path.join(MNIST, "val"),
                "--steps", str(steps), "--val-every", str(every)]

    def two_tasks(self, batch_norm=True):
        """A program of two tasks whose labels are partly -1, with dropout,
        flips and batch norm over [B, C] (or without: a rank with no rows
        then skips the step), batches of 30 rows and a last batch of 2
        (512 rows: 17 batches of 30, then 2), its data written."""
        rng = np.random.default_rng(3)
        for split, rows in (("train", 512), ("val", 300)):
            image = np.load(os.path.join(MNIST, split, "image.npy"))[:rows]
            digit = np.load(os.path.join(MNIST, split, "digit.npy"))[:rows].copy()
            parity = digit % 2
            digit[rng.random(rows) < 0.3] = -1
            parity[rng.random(rows) < 0.6] = -1
            masstest.write_npy_dir(self.work.file(split), {"image": image, "digit": digit,
                                                            "parity": parity.astype(np.int32)})
        source = TWO_TASKS if batch_norm else TWO_TASKS.replace(" |> batchnorm", "")
        self.assertEqual(batch_norm, "batchnorm" in source)
        return masstest.compile_model(source, self.work, "two" if batch_norm else "two_nobn",
                                      extra=self.TARGET)


class Equivalence(Runs):
    """The same 50 steps on 1, 2 and 4 processes."""

    def test_spec01(self):
        self.check_equivalent(self.spec("01_mlp.mass", "mlp"), *self.mnist(50, 25))

    # Batch norm's statistics span the global batch (as SyncBatchNorm), so
    # N processes compute one process's step up to rounding (1e-7): sums
    # over the batch add in another order. A ReLU or a max pool turns
    # such a difference into a different gradient whenever a value sits
    # within it of the kink or of a tie, and spec 02's and spec 05's
    # convolutions hold about a million values per step, so after some
    # steps one does (measured: spec 02's bias of its first batch norm
    # 1e-4 apart after step 10 on 2 processes, a few percent after 50, the
    # same with SGD). Their layers as written are compared over the first
    # steps; over 50 steps, with tanh for ReLU and average for max pooling
    # (batch norm, dropout, augmentation, smoothing, the schedule and
    # clipping unchanged), where the rounding stays rounding. With
    # --replicas the sums add in one order for any N, and the layers as
    # written agree bit for bit over 50 steps (Replicas, below).

    def test_spec02(self):
        self.check_equivalent(self.spec("02_cnn.mass", "cnn"), *self.mnist(3, 3))
        self.check_equivalent(self.smooth("02_cnn.mass", "smooth_cnn"), *self.mnist(50, 25))

    def test_spec05(self):
        """Two tasks on a trunk with batch norm and dropout, balanced
        sampling, a schedule and clipping."""
        params = self.check_equivalent(self.spec("05_multitask.mass", "multitask"),
                                       *self.mnist(3, 3))
        self.assertIn("parity.logits.weight", params)
        self.check_equivalent(self.smooth("05_multitask.mass", "smooth_multitask"),
                              *self.mnist(50, 25))

    def test_two_tasks_with_unlabelled_rows(self):
        """Two tasks whose labels are partly -1 (a rank's share of a task is
        its labelled rows), dropout (a sample draws its mask by its row in
        the global batch), batch norm over [B, C], a batch of 30 that 4 does
        not divide, and a last batch of 2 rows (two of 4 ranks hold none:
        they still run the step, for batch norm's sums)."""
        exe = self.two_tasks()
        # 512 rows: 17 batches of 30, then 2 rows.
        self.check_equivalent(exe, "--steps", "36", "--val-every", "18")
        # The same with the optimizer's state sharded: its clipping takes
        # the norm of every rank's gradients.
        self.check_equivalent(exe, "--steps", "36", "--val-every", "18",
                              flags=("--shard-optimizer",))

    def test_sharded_optimizer(self):
        """--shard-optimizer (ZeRO stage 1): each rank holds and updates the
        Adam moments of its exact 1/N of the flat parameters (a parameter
        may be cut between ranks); gradients are reduce-scattered and
        parameters all-gathered. The same weights as one process; the log
        gives each rank's optimizer bytes."""
        exe = self.spec("01_mlp.mass", "mlp")
        self.check_equivalent(exe, *self.mnist(50, 25), flags=("--shard-optimizer",))
        self.check_equivalent(self.smooth("02_cnn.mass", "smooth_cnn"), *self.mnist(50, 25),
                              flags=("--shard-optimizer",))
        _, _, log = self.train(exe, 2, "bytes", *self.mnist(2, 2), "--shard-optimizer")
        ready = [e for e in masstest.log_events(log, program=True) if e["event"] == "ready"][0]
        # Adam's two moments of 269,322 parameters, split exactly between 2
        # ranks (fc1.weight, 200,704 values, is cut between them).
        self.assertEqual(ready["optimizer_bytes_per_rank"], [2 * 4 * 134661] * 2)
        # 4 ranks: 269,322 = 4 * 67,330 + 2, so the first two hold one more.
        _, _, log = self.train(exe, 4, "bytes4", *self.mnist(2, 2), "--shard-optimizer")
        ready = [e for e in masstest.log_events(log, program=True) if e["event"] == "ready"][0]
        self.assertEqual(ready["optimizer_bytes_per_rank"],
                         [2 * 4 * 67331] * 2 + [2 * 4 * 67330] * 2)
        _, _, log = self.train(exe, 2, "whole_state", *self.mnist(2, 2))
        ready = [e for e in masstest.log_events(log, program=True) if e["event"] == "ready"][0]
        self.assertEqual(ready["optimizer_bytes_each"], [2 * 4 * 269322] * 2)

    def test_sharded_rates_frozen_and_clipping(self):
        """Spec 01 with two learning-rate scales (the share is laid out
        rate by rate, a run of each), a frozen parameter (not in the flat
        vector) and clipping (the squares of every share, summed): N = 2, 3
        and 4 processes against one, 3 owning 89,689 or 89,688 values."""
        with open(os.path.join(SPEC, "01_mlp.mass")) as f:
            source = f.read()
        source = source.replace("  seed       = 1\n", "  seed       = 1\n"
                                "  lr_scale   = [(\"fc2.*\", 0.5), (\"out.bias\", 3)]\n"
                                "  freeze     = [\"fc1.bias\"]\n"
                                "  clip_grad_norm = 0.5\n")
        exe = masstest.compile_model(source, self.work, "rates", extra=self.TARGET)
        data = self.mnist(30, 15)
        one = self.check_equivalent(exe, *data, flags=("--shard-optimizer",))
        _, three, log = self.train(exe, 3, "n3", *data, "--shard-optimizer")
        same_params(self, three, one, "N=3", self.ELEMENT)
        ready = [e for e in masstest.log_events(log, program=True) if e["event"] == "ready"][0]
        # 269,322 values less fc1.bias's 256: 269,066 = 3 * 89,688 + 2.
        self.assertEqual(ready["optimizer_bytes_per_rank"],
                         [2 * 4 * 89689] * 2 + [2 * 4 * 89688])

    def test_sharded_resume_with_another_n(self):
        """A sharded run's checkpoint holds every rank's moments: it
        resumes on another N, sharded or not."""
        exe = self.spec("01_mlp.mass", "mlp")
        data = self.mnist(40, 20)[:-4] + ["--val-every", "20"]
        _, whole, _ = self.train(exe, 1, "whole", *data, "--steps", "40")
        _, _, _ = self.train(exe, 2, "split", *data, "--steps", "20", "--shard-optimizer")
        state = masstest.read_safetensors(self.work.file("split/last.state.safetensors"))
        self.assertIn("fc1.weight.exp_avg_sq", state)
        self.assertGreater(np.abs(state["out.weight.exp_avg"]).max(), 0)
        _, resumed, _ = self.train(exe, 4, "split", *data, "--steps", "40",
                                   "--resume", self.work.file("split"), "--shard-optimizer")
        same_params(self, resumed, whole, "resumed")

    def test_resume_with_another_n(self):
        """Half the steps on 2 processes, the rest resumed on 4: the
        weights of one process's uninterrupted run."""
        exe = self.spec("01_mlp.mass", "mlp")
        data = ["--train", os.path.join(MNIST, "train"), "--val", os.path.join(MNIST, "val"),
                "--val-every", "20"]
        _, whole, _ = self.train(exe, 1, "whole", *data, "--steps", "40")
        _, half, _ = self.train(exe, 2, "split", *data, "--steps", "20")
        _, resumed, _ = self.train(exe, 4, "split", *data, "--steps", "40",
                                   "--resume", self.work.file("split"))
        same_params(self, resumed, whole, "resumed")
        self.assertGreater(masstest.rel_error(half["fc1.weight"], whole["fc1.weight"]), 1e-4)


class Buckets(Runs):
    """The gradients' sums start in buckets during the backward pass: the
    step reports each gradient as soon as its last write is done (massc's
    mass-grad-ready), and a bucket's sum starts with the report of its last
    gradient, in the order the descriptor gives every rank. Buckets of 1 kB
    (--bucket-mb 0.001) put spec 01's weights and biases in five."""

    SMALL = ("--bucket-mb", "0.001")

    def buckets(self, log):
        """(buckets, starts during steps) from the run's end event."""
        end = [e for e in masstest.log_events(log, program=True) if e["event"] == "end"][0]
        return end.get("gradient_buckets"), end.get("buckets_started_during_steps")

    def test_same_bits_as_after_the_step(self):
        """Two processes add a + b, however the vector is split: summing in
        buckets during the step gives the bits of one sum after it
        (--bucket-mb 0), and every bucket of every step starts inside it."""
        exe = self.spec("01_mlp.mass", "mlp")
        data = self.mnist(50, 25)
        _, after, log = self.train(exe, 2, "after", *data, "--bucket-mb", "0")
        self.assertEqual(self.buckets(log), (None, None))
        _, during, log = self.train(exe, 2, "during", *data, *self.SMALL)
        buckets, started = self.buckets(log)
        self.assertGreaterEqual(buckets, 5)
        self.assertEqual(started, 50 * buckets)
        self.assertEqual(sorted(during), sorted(after))
        for name, value in after.items():
            self.assertTrue(np.array_equal(during[name], value), name)
        # The default, 25 MiB: one bucket, started by the last report.
        _, _, log = self.train(exe, 2, "default", *data)
        self.assertEqual(self.buckets(log), (1, 50))
        self.check_equivalent(exe, *data, flags=self.SMALL)

    def test_ranks_without_rows(self):
        """The two-task model's last batch of 2 rows leaves two of 4 ranks
        none: with batch norm they run the step and report zeros; without,
        they skip it and start every bucket, with zeros, after it."""
        for batch_norm in (True, False):
            self.check_equivalent(self.two_tasks(batch_norm), "--steps", "36",
                                  "--val-every", "18", flags=self.SMALL)

    def test_not_with_sharding_or_replicas(self):
        """The sharded optimizer reduces each gradient to its owner, and
        replicas add in their tree, after the step: no buckets."""
        exe = self.spec("01_mlp.mass", "mlp")
        for flags in (("--shard-optimizer",), ("--replicas", "2")):
            _, _, log = self.train(exe, 2, "other", *self.mnist(4, 4), *self.SMALL, *flags)
            self.assertEqual(self.buckets(log), (None, None), flags)


class Replicas(Runs):
    """--replicas=4: the batch split into 4 fixed parts whose sums (the
    gradients, batch norm's statistics inside the step) add in one tree,
    whatever the processes: 1, 2 and 4 processes end with the same bits,
    even for ReLU and max pooling over 50 steps (see Equivalence)."""

    def check_identical(self, exe, *args):
        """The same run on N = 1, 2 and 4: every parameter bit-identical,
        the same validation metrics."""
        _, params1, log1 = self.train(exe, 1, "n1", *args)
        for n in (2, 4):
            _, params, log = self.train(exe, n, f"n{n}", *args)
            self.assertEqual(sorted(params), sorted(params1))
            for name, value in params1.items():
                self.assertTrue(np.array_equal(params[name], value),
                                f"N={n}: {name} {masstest.rel_error(params[name], value)}")
            ours, theirs = val_metrics(log), val_metrics(log1)
            self.assertEqual([(s, t) for s, t, _ in ours], [(s, t) for s, t, _ in theirs])
            for (_, _, a), (_, _, b) in zip(ours, theirs):
                for k in b:
                    self.assertAlmostEqual(a[k], b[k], delta=1e-6 * max(1.0, abs(b[k])),
                                           msg=f"N={n} {k}")
        return params1, log1

    def test_spec02_and_spec05_as_written(self):
        """Batch norm over convolutions, ReLU, max pooling, dropout,
        clipping, 50 steps; spec 05's trunk is also trained with the
        optimizer's state sharded."""
        data = self.mnist(50, 25)
        _, log = self.check_identical(self.spec("02_cnn.mass", "cnn"), *data, "--replicas", "4")
        ready = [e for e in masstest.log_events(log, program=True) if e["event"] == "ready"][0]
        self.assertEqual(ready["replicas"], 4)
        exe = self.spec("05_multitask.mass", "multitask")
        self.check_identical(exe, *data, "--replicas", "4")
        self.check_identical(exe, *data, "--replicas", "4", "--shard-optimizer")

    def test_two_tasks_and_empty_replicas(self):
        """Labels partly -1 (each replica's share is its labelled rows),
        dropout, flips, batch norm over [B, C], batches of 30 (7 and 8
        rows a replica) and a last batch of 2 rows: two of 8 replicas hold
        none and still run the step, for batch norm's sums."""
        exe = self.two_tasks()
        self.check_identical(exe, "--steps", "36", "--val-every", "18", "--replicas", "8")
        self.check_identical(exe, "--steps", "36", "--val-every", "18", "--replicas", "8",
                             "--shard-optimizer")

    def test_token_streams(self):
        """A small GPT on a token stream (a sequence loss over [B, 16]
        labels: each replica's share is its labelled tokens), 30 steps of
        AdamW: bit-identical on 1, 2 and 4 processes with replicas. Without,
        the biases added to every key drift: softmax ignores them, so their
        true gradient is 0, and AdamW turns the rounding left there into
        steps of the learning rate's size in either direction; the other
        parameters agree within 1e-5, with the optimizer sharded too."""
        from sequence_test import TEXT, TINY, TRAIN, write_bin
        ids = np.frombuffer(TEXT, dtype=np.uint8)
        write_bin(self.work.file("train.bin"), ids[:TRAIN])
        write_bin(self.work.file("val.bin"), ids[TRAIN:])
        exe = masstest.compile_model(TINY, self.work, "tiny")
        self.check_identical(exe, "--steps", "30", "--val-every", "15", "--replicas", "4")
        _, one, _ = self.train(exe, 1, "plain1", "--steps", "30", "--val-every", "15")
        _, two, _ = self.train(exe, 2, "plain2", "--steps", "30", "--val-every", "15")
        # And with AdamW's moments sharded over 3 processes.
        _, three, _ = self.train(exe, 3, "sharded3", "--steps", "30", "--val-every", "15",
                                 "--shard-optimizer")
        for name, value in one.items():
            # The keys' layer norm bias (a.1) and the keys' third of the
            # projection's bias (a.3.in_proj_bias) have no gradient.
            if name not in ("a.1.bias", "a.3.in_proj_bias"):
                self.assertLess(masstest.rel_error(two[name], value), 1e-5, name)
                self.assertLess(masstest.rel_error(three[name], value), 1e-5, name)

    def test_three_processes(self):
        """Over a number of processes that is no power of two the replicas'
        sums are all-gathered, then added in the same tree: 6 replicas on 3
        processes, spec 02 as written, give one process's bits."""
        exe = self.spec("02_cnn.mass", "cnn")
        data = self.mnist(20, 20) + ["--replicas", "6"]
        _, one, _ = self.train(exe, 1, "n1", *data)
        _, three, _ = self.train(exe, 3, "n3", *data)
        for name, value in one.items():
            self.assertTrue(np.array_equal(three[name], value), name)

    def test_resume_with_another_n(self):
        """Spec 02 as written: 20 steps on 2 processes, resumed on 4 for 20
        more, sharded, ends with the bits of one process's 40 steps."""
        exe = self.spec("02_cnn.mass", "cnn")
        data = self.mnist(40, 20)[:-4] + ["--val-every", "20", "--replicas", "4"]
        _, whole, _ = self.train(exe, 1, "whole", *data, "--steps", "40")
        self.train(exe, 2, "split", *data, "--steps", "20")
        _, resumed, _ = self.train(exe, 4, "split", *data, "--steps", "40",
                                   "--resume", self.work.file("split"), "--shard-optimizer")
        for name, value in whole.items():
            self.assertTrue(np.array_equal(resumed[name], value), name)

    def test_close_to_no_replicas(self):
        """On one process, 4 replicas of a batch train the model one batch
        does: spec 01's 50 steps agree within rounding, and so do the
        gradients --dump-grads writes."""
        exe = self.spec("01_mlp.mass", "mlp")
        _, whole, _ = self.train(exe, 1, "whole", *self.mnist(50, 25))
        _, split, _ = self.train(exe, 1, "split", *self.mnist(50, 25), "--replicas", "4")
        same_params(self, split, whole, "4 replicas")
        grads = []
        for extra in ((), ("--replicas", "4")):
            out = self.work.file(f"grads{len(extra)}.safetensors")
            r = subprocess.run([exe, *self.mnist(1, 1), "--dump-grads", out, *extra],
                               cwd=self.work.path, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            grads.append(masstest.read_safetensors(out))
        self.assertEqual(sorted(grads[0]), sorted(grads[1]))
        for name, value in grads[0].items():
            self.assertLess(masstest.rel_error(grads[1][name], value), 1e-5, name)


class EmulatedGpu(Runs):
    """The GPU target under mpirun, its device half emulated on the host
    (`massc --emulate-gpu`): the gradients are summed where they lie, in
    device memory (NCCL on a GPU; here MPI on the host memory standing in
    for it), and so are batch norm's statistics inside the step; each rank
    uploads its slice of the batch. One process's weights, as on the CPU."""

    TARGET = ("--target=cuda", "--emulate-gpu")
    # The emulated kernels add a product's terms one after another, not in
    # the CPU kernels' vector lanes: rounding grows faster, and spec 01's
    # one most cancelling fc1.weight element ends 30 steps 1.2e-4 of the
    # tensor's largest apart on 2 processes (the next 3e-5; the norm
    # 8e-7 relative).
    ELEMENT = 2e-4

    def subset(self, rows):
        """The first rows of MNIST (the emulated GPU runs one thread at a
        time)."""
        for split, n in (("train", rows), ("val", 200)):
            masstest.write_npy_dir(self.work.file("mnist/" + split), {
                k: np.load(os.path.join(MNIST, split, k + ".npy"))[:n] for k in ("image", "digit")})
        return ["--train", self.work.file("mnist/train"), "--val", self.work.file("mnist/val")]

    def test_spec01(self):
        out, _, _ = self.train(self.spec("01_mlp.mass", "mlp"), 2, "first", *self.mnist(2, 2))
        self.assertTrue(out.startswith("running on an emulated GPU"), out)
        self.check_equivalent(self.spec("01_mlp.mass", "mlp"), *self.mnist(30, 15))
        # Replicas stay on the CPU for now, and say so.
        r = subprocess.run(launch(2, self.work.file("mlp"), *self.mnist(2, 2), "--replicas", "2"),
                           cwd=self.work.path, env=MPI_ENV, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, "error: rank [01]: --replicas=2 is not supported on a GPU yet")

    def test_batch_norm_and_empty_slices(self):
        """The two-task model (its last batch leaves two of 4 ranks no
        rows: they sum zeros, and still run the step for batch norm) and
        spec 02 with tanh and average pooling: its convolutions' batch norm
        sums over the ranks on the device."""
        self.check_equivalent(self.two_tasks(), "--steps", "36", "--val-every", "18")
        self.check_equivalent(self.smooth("02_cnn.mass", "smooth_cnn"), *self.subset(600),
                              "--batch", "30", "--steps", "6", "--val-every", "3")

    def test_buckets(self):
        """Small buckets on the device: each is summed where it lies as
        the step reports it (NCCL on the device's stream on a GPU), and a
        rank with no rows zeroes its gradients there first, whether it
        runs the step (batch norm) or not."""
        self.check_equivalent(self.spec("01_mlp.mass", "mlp"), *self.mnist(30, 15),
                              flags=("--bucket-mb", "0.001"))
        for batch_norm in (True, False):
            self.check_equivalent(self.two_tasks(batch_norm), "--steps", "36",
                                  "--val-every", "18", flags=("--bucket-mb", "0.001"))

    def test_sharded_optimizer(self):
        """--shard-optimizer on the device: each owner receives its
        gradients' sums (NCCL's reduce on a GPU), the others' are zeroed
        there, a kernel adds the owner's squares for the clipping norm in
        a fixed order, and the owners' parameters go to every rank (NCCL's
        broadcast). Spec 01, and the two-task model with clipping and a
        checkpoint that gathers the moments from the devices, resumed on
        another N."""
        self.check_equivalent(self.spec("01_mlp.mass", "mlp"), *self.mnist(30, 15),
                              flags=("--shard-optimizer",))
        exe = self.two_tasks()
        self.check_equivalent(exe, "--steps", "36", "--val-every", "18",
                              flags=("--shard-optimizer",))
        _, whole, _ = self.train(exe, 1, "whole", "--steps", "24", "--val-every", "12")
        self.train(exe, 2, "split", "--steps", "12", "--val-every", "12", "--shard-optimizer")
        state = masstest.read_safetensors(self.work.file("split/last.state.safetensors"))
        self.assertGreater(np.abs(state["digit.logits.weight.exp_avg"]).max(), 0)
        _, resumed, _ = self.train(exe, 4, "split", "--steps", "24", "--val-every", "12",
                                   "--resume", self.work.file("split"), "--shard-optimizer")
        same_params(self, resumed, whole, "resumed", self.ELEMENT)


class Limits(unittest.TestCase):
    """What under mpirun fails, and how."""

    SOURCE = """
model m {
  input x: f32[B, 6]
  label y: i32[B]
  h = dense(x, 16) |> relu
  task t {
    logits = dense(h, 3)
    loss = cross_entropy(logits, y)
    metric accuracy(logits, y)
  }
}
train m {
  train_data = "data"
  batch      = 16
  epochs     = 1
  optimizer  = sgd(lr: 0.1)
}
"""

    def setUp(self):
        self.work = masstest.Workdir("mass-parallel-")
        rng = np.random.default_rng(1)
        x = rng.standard_normal((4000, 6)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
        masstest.write_npy_dir(self.work.file("data"), {"x": x, "y": y})

    def run_n(self, n, exe, *args, timeout=120):
        return subprocess.run(launch(n, exe, *args), cwd=self.work.path, env=MPI_ENV,
                              capture_output=True, text=True, timeout=timeout)

    def test_unsupported_yet(self):
        exe = masstest.compile_model(self.SOURCE, self.work, "m")
        r = self.run_n(2, exe, "--eval-only")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("under mpirun only training runs on 2 processes", r.stderr)
        r = self.run_n(1, exe, "--comm-timeout", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--comm-timeout expects seconds", r.stderr)
        for bad in ("-1", "x", "1e7", "nan"):
            r = self.run_n(1, exe, "--bucket-mb", bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("--bucket-mb expects MiB in [0, 1e6]", r.stderr)
        # Each process runs a power of two of the replicas.
        for n, replicas in ((2, "3"), (2, "6")):
            r = self.run_n(n, exe, "--replicas", replicas)
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr, f"error: rank [01]: --replicas={replicas} over {n} "
                             "processes: each process runs a power of two of the replicas")
        r = self.run_n(1, exe, "--replicas", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--replicas expects an integer in [1, 4096]", r.stderr)
        # Each replica is a thread with its own gradients: bounded.
        r = self.run_n(1, exe, "--replicas", "17")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("error: --replicas=17 splits a batch of 16 rows: at most one replica per row",
                      r.stderr)
        r = self.run_n(1, exe, "--replicas", "512", "--batch", "1024")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("error: --replicas=512 over 1 process runs 512 replicas on each, more than 256",
                      r.stderr)

    def test_one_process_opens_no_mpi(self):
        """Without mpirun (or with one process) the program does not load
        MPI: it needs no MPI library and pays nothing for it."""
        exe = masstest.compile_model(self.SOURCE, self.work, "m")
        self.assertNotIn("libmpi", subprocess.run(["ldd", exe], capture_output=True, text=True).stdout)
        env = {**MPI_ENV, "LD_DEBUG": "files"}
        alone = subprocess.run([exe], cwd=self.work.path, env=env, capture_output=True, text=True)
        self.assertEqual(alone.returncode, 0, alone.stderr)
        self.assertIn("file=libc.so", alone.stderr)  # LD_DEBUG names what is loaded
        self.assertNotIn("libmpi", alone.stderr)
        two = subprocess.run(launch(2, exe), cwd=self.work.path, env=env, capture_output=True, text=True)
        self.assertEqual(two.returncode, 0, two.stderr)
        self.assertIn("file=libmpi.so", two.stderr)

    def rank_pid(self, mpirun, rank):
        """The pid of one rank of a running mpirun (from its environment)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        env = f.read().split(b"\0")
                    with open(f"/proc/{pid}/stat") as f:
                        parent = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if parent == mpirun.pid and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
                    return int(pid)
            time.sleep(0.1)
        self.fail("no rank %d under mpirun" % rank)

    def faulty_run(self, signum):
        exe = masstest.compile_model(self.SOURCE, self.work, "m")
        log = self.work.file("log.jsonl")
        p = subprocess.Popen(launch(2, exe, "--epochs", "100000", "--comm-timeout", "5",
                                    "--log", log, "--checkpoint-dir", "ckpt"),
                             cwd=self.work.path, env=MPI_ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        # Wait for the first round's checkpoint, then strike rank 1.
        deadline = time.time() + 60
        while not os.path.exists(self.work.file("ckpt/last.state.safetensors")):
            self.assertLess(time.time(), deadline, "no checkpoint")
            time.sleep(0.05)
        os.kill(self.rank_pid(p, 1), signum)
        start = time.time()
        out, _ = p.communicate(timeout=60)
        took = time.time() - start
        self.assertNotEqual(p.returncode, 0)
        # Every rank is gone.
        self.assertEqual(subprocess.run(["pgrep", "-f", exe], capture_output=True).stdout, b"")
        return out, took

    def test_killed_rank(self):
        out, took = self.faulty_run(signal.SIGKILL)
        self.assertLess(took, 30)
        self.assertRegex(out, r"rank 1 .*exited on signal 9")
        # The job resumes from the last checkpoint (here on one process).
        r = self.run_n(1, self.work.file("m"), "--checkpoint-dir", "ckpt", "--resume", "ckpt",
                       "--epochs", "1", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_hung_rank(self):
        out, took = self.faulty_run(signal.SIGSTOP)
        # The timeout (5 s), as long again to hear from the live ranks, and
        # the job's teardown.
        self.assertLess(took, 40)
        self.assertRegex(out, r"error: rank 0: no answer from the other ranks within 5 s while "
                              r"waiting for the gradients of step \d+: rank 1 died or hangs")


if __name__ == "__main__":
    unittest.main()
