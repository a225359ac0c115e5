"""The training loop checked from outside: metrics recomputed with numpy from
--dump-predictions, what each step trained counted through the weights,
and a resumed run equal to an uninterrupted one bit for bit."""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402


log_events = masstest.log_events


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class Metrics(unittest.TestCase):
    SOURCE = """
model three {
  input x: f32[B, 5]
  label c: i32[B]
  label r: f32[B, 1]
  h = dense(x, 8) |> tanh
  task cls {
    logits = dense(h, 6)
    loss = cross_entropy(logits, c, smoothing: 0.1)
    metric accuracy(logits, c)
    metric top_k(logits, c, k: 3)
  }
  task reg {
    pred = dense(h, 1)
    loss = mse(pred, r)
    metric mae(pred, r)
    metric rmse(pred, r)
  }
  task bin {
    z = dense(h, 1)
    loss = bce(z, r)
    metric accuracy(z, r)
  }
}
"""

    def test_log_equals_numpy(self):
        """--eval-only's log line for each task equals the metrics numpy
        computes from the predictions (--dump-predictions) and the labels,
        over a validation set that batches leave uneven (23 rows, batch 5)
        and with unlabelled (-1) rows that cross-entropy, accuracy and
        top-k skip."""
        work = masstest.Workdir()
        exe = masstest.compile_model(self.SOURCE, work, "three")
        rng = np.random.default_rng(21)
        n = 23
        c = rng.integers(0, 6, n).astype(np.int32)
        c[[1, 2, 3, 4, 9, 20]] = -1  # the first batch has one labelled row
        r = rng.uniform(0, 1, (n, 1)).astype(np.float32)
        masstest.write_npy_dir(work.file("val"), {"x": rng.standard_normal((n, 5)).astype(np.float32),
                                                  "c": c, "r": r})
        weights = {k: (rng.standard_normal(s) * 0.8).astype(np.float32)
                   for k, s in masstest.param_shapes(exe).items()}
        masstest.write_safetensors(work.file("w.safetensors"), weights)
        common = ["--init", work.file("w.safetensors"), "--val", work.file("val"), "--batch", "5"]
        masstest.run([exe, *common, "--dump-predictions", work.file("p.safetensors")])
        masstest.run([exe, *common, "--eval-only", "--log", work.file("log.jsonl")])
        preds = masstest.read_safetensors(work.file("p.safetensors"))
        logged = {e["task"]: e for e in log_events(work.file("log.jsonl"))}

        # The predictions: the classifier's logits [n, 6], and two [n, 1]
        # columns told apart by the weights that made them.
        logits = [v for v in preds.values() if v.shape == (n, 6)]
        self.assertEqual(len(logits), 1)
        logits = logits[0].astype(np.float64)
        columns = [v[:, 0].astype(np.float64) for v in preds.values() if v.shape == (n, 1)]
        self.assertEqual(len(columns), 2)
        h = np.tanh(np.load(work.file("val/x.npy")).astype(np.float64) @ weights["h.weight"].T
                    + weights["h.bias"])
        pred = h @ weights["reg.pred.weight"][0] + weights["reg.pred.bias"][0]
        z = h @ weights["bin.z.weight"][0] + weights["bin.z.bias"][0]
        pred, z = sorted(columns, key=lambda col: np.abs(col - pred).max())
        self.assertLess(np.abs(z - (h @ weights["bin.z.weight"][0] + weights["bin.z.bias"][0])).max(), 1e-4)

        labelled = c >= 0
        logp = log_softmax(logits)[labelled]
        target = c[labelled]
        nll = -logp[np.arange(len(target)), target]
        smoothed = 0.9 * nll + 0.1 * -logp.mean(axis=1)
        ranks = (logits[labelled] > logits[labelled, target][:, None]).sum(axis=1)
        t = r[:, 0].astype(np.float64)
        expected = {
            "cls": {"loss": smoothed.mean(), "accuracy": (ranks == 0).mean(), "top3": (ranks < 3).mean()},
            "reg": {"loss": ((pred - t) ** 2).mean(), "mae": np.abs(pred - t).mean(),
                    "rmse": np.sqrt(((pred - t) ** 2).mean())},
            "bin": {"loss": (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(),
                    "accuracy": ((z > 0) == (t >= 0.5)).mean()},
        }
        for task, metrics in expected.items():
            self.assertEqual(set(logged[task]), {"event", "split", "task", *metrics}, task)
            for name, value in metrics.items():
                self.assertAlmostEqual(logged[task][name], value, delta=1e-5 * max(1.0, abs(value)),
                                       msg=f"{task} {name}")


class WhatEachStepSaw(unittest.TestCase):
    """Each task's loss is sum(x * p_TASK) with x one-hot rows: its gradient
    counts the rows of each kind in the batch, and plain SGD at rate 1
    subtracts those counts from p_TASK. A run's weights count what its steps
    trained on, task by task; runs of 1, 2, ... epochs of one step each
    show it step by step."""

    SOURCE = """
model count {
  input x: f32[B, KINDS]
  label c: i32[B]
  task a {
    p = param(f32[KINDS], init: zeros)
    loss = sum(x * p)
  }
  task b {
    p = param(f32[KINDS], init: zeros)
    loss = sum(x * p)
  }
}
train count {
  train_data = "data"
  batch = BATCH
  optimizer = sgd(lr: 1.0)
  checkpoint = last
  STRATEGY
}
"""

    def setUp(self):
        self.work = masstest.Workdir()

    def counter(self, name, kinds, batch, rows, strategy):
        """A program and data: `rows` (class ids) as one-hot x and as c."""
        source = (self.SOURCE.replace("KINDS", str(kinds)).replace("BATCH", str(batch))
                  .replace("STRATEGY", strategy))
        exe = masstest.compile_model(source, self.work, name)
        rows = np.asarray(rows, np.int32)
        masstest.write_npy_dir(self.work.file("data"), {"x": np.eye(kinds, dtype=np.float32)[rows],
                                                         "c": rows})
        return exe

    def counts(self, exe, epochs):
        """The rows of each kind tasks a and b trained on in `epochs`."""
        subprocess.run([exe, "--epochs", str(epochs)], cwd=self.work.path, check=True,
                       capture_output=True)
        last = masstest.read_safetensors(self.work.file("checkpoints/last.safetensors"))
        return -last["a.p"].astype(np.int64), -last["b.p"].astype(np.int64)

    def per_step(self, exe, steps):
        """(a, b) counts of each of the first `steps` steps (one per epoch)."""
        out, before = [], (0, 0)
        for k in range(1, steps + 1):
            a, b = self.counts(exe, k)
            out.append((a - before[0], b - before[1]))
            before = (a, b)
        return out

    def test_joint_and_alternate(self):
        rows = [0, 1, 2, 2, 3, 3, 3, 1]
        data = np.bincount(rows, minlength=4)
        joint = self.counter("joint", 4, 8, rows, "strategy = joint")
        for a, b in self.per_step(joint, 3):
            np.testing.assert_array_equal(a, data)
            np.testing.assert_array_equal(b, data)
        alternate = self.counter("alternate", 4, 8, rows, "strategy = alternate")
        for step, (a, b) in enumerate(self.per_step(alternate, 4)):
            np.testing.assert_array_equal(a, data if step % 2 == 0 else 0 * data, f"step {step}")
            np.testing.assert_array_equal(b, data if step % 2 == 1 else 0 * data, f"step {step}")

    def test_sample(self):
        rows = [0, 1, 2, 3]
        data = np.bincount(rows, minlength=4)
        exe = self.counter("sample", 4, 4, rows, "strategy = sample(a: 0.8, b: 0.2)")
        # Every step trains exactly one task on the whole batch.
        for step, (a, b) in enumerate(self.per_step(exe, 6)):
            self.assertTrue((a == data).all() and (b == 0).all() or (a == 0).all() and (b == data).all(),
                            f"step {step}: a saw {a}, b saw {b}")
        # Over 400 steps, task a trains in 80% of them (binomial: sd 8).
        a, b = self.counts(exe, 400)
        self.assertEqual(a[0] + b[0], 400)
        self.assertLess(abs(a[0] - 320), 40, f"task a trained in {a[0]} of 400 steps")

    def test_shuffle_sees_every_row_once_per_epoch(self):
        # 11 rows, each a kind of its own, in batches of 4 (the last of 3):
        # every epoch trains on every row exactly once.
        exe = self.counter("shuffle", 11, 4, list(range(11)), "strategy = joint")
        for epochs in (1, 2, 5):
            a, b = self.counts(exe, epochs)
            np.testing.assert_array_equal(a, np.full(11, epochs))
            np.testing.assert_array_equal(b, np.full(11, epochs))

    def test_balanced(self):
        # 24 rows: 18 of class 0, 4 of class 1, 2 of class 2. Balanced
        # sampling draws every class about equally often; shuffling draws
        # the data's proportions exactly.
        rows = [0] * 18 + [1] * 4 + [2] * 2
        balanced = self.counter("balanced", 3, 24, rows, "sampling = balanced(c)")
        for step, (a, _) in enumerate(self.per_step(balanced, 3)):
            self.assertEqual(a.sum(), 24, f"step {step} trained on {a.sum()} rows")
        a, _ = self.counts(balanced, 100)
        # 2,400 draws, a third each expected (binomial sd 23).
        self.assertEqual(a.sum(), 2400)
        for kind in range(3):
            self.assertLess(abs(a[kind] - 800), 120, f"class {kind} drawn {a[kind]} times: {a}")
        shuffled = self.counter("shuffled", 3, 24, rows, "sampling = shuffle")
        a, _ = self.counts(shuffled, 100)
        np.testing.assert_array_equal(a, [1800, 400, 200])


class CommandLine(unittest.TestCase):
    def test_flags(self):
        """--help lists every flag the parser takes (one table drives both);
        a bad value, a missing value or an unknown flag exits 2 with one
        line naming it."""
        work = masstest.Workdir()
        exe = masstest.compile_model(Metrics.SOURCE, work, "flags")
        usage = masstest.run([exe, "--help"])
        listed = re.findall(r"^  (--[a-z-]+)( \S+)? ", usage, re.M)
        self.assertEqual(len(listed), len(set(listed)))
        self.assertGreater(len(listed), 20)
        for flag, value in listed:
            if flag == "--help":
                continue
            # Every listed flag parses: a bogus value is refused as a value
            # (exit 2, the flag named) or accepted, never "unknown".
            args = [flag, "0/0"] if value else [flag]
            r = subprocess.run([exe, *args, "--dump-params"], capture_output=True, text=True)
            self.assertNotIn("unknown option", r.stderr, flag)
        cases = {
            ("--epochs", "0"): "error: --epochs expects an integer >= 1, got '0'",
            ("--batch", "99999999999999999999"):
                "error: --batch expects an integer in [1, 16777216], got '99999999999999999999'",
            ("--batch", "2147483648"):
                "error: --batch expects an integer in [1, 16777216], got '2147483648'",
            ("--threads", "10000"): "error: --threads expects an integer in [1, 1024], got '10000'",
            ("--lr", "-1"): "error: --lr expects a positive number, got '-1'",
            ("--data-shard", "3/2"): "error: --data-shard expects K/N with 0 <= K < N, got '3/2'",
            ("--seed",): "error: --seed needs a value",
            ("--bogus",): "error: unknown option '--bogus' (see --help)",
            # A near miss names the flag meant; --flag=value says how to write it.
            ("--epoch", "3"): "error: unknown option '--epoch'; did you mean '--epochs'? (see --help)",
            ("--chekpoint-dir", "d"):
                "error: unknown option '--chekpoint-dir'; did you mean '--checkpoint-dir'? (see --help)",
            ("--lr=0.1",): "error: unknown option '--lr=0.1'; write '--lr 0.1' (see --help)",
        }
        for args, message in cases.items():
            r = subprocess.run([exe, *args], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stderr.strip()), (2, message), args)

        # Evaluating or predicting with a model nobody trained is an error
        # (exit 1), not a report on random weights.
        rng = np.random.default_rng(2)
        masstest.write_npy_dir(work.file("val"), {"x": rng.standard_normal((4, 5)).astype(np.float32),
                                                  "c": np.zeros(4, np.int32),
                                                  "r": np.zeros((4, 1), np.float32)})
        for flags in (["--eval-only"], ["--dump-predictions", work.file("p.safetensors")]):
            r = subprocess.run([exe, "--val", work.file("val"), *flags], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stderr.strip()),
                             (1, f"error: {flags[0]} needs trained weights: give --init FILE.safetensors "
                                 "(or init = load(...) in the train block)"))


class Resume(unittest.TestCase):
    SOURCE = """
model net {
  input x: f32[B, 6]
  label y: i32[B]
  h = dense(x, 16) |> relu |> dropout(0.3)
  out = dense(h, 3)
  task cls {
    loss = cross_entropy(out, y)
    metric accuracy(out, y)
  }
}
train net {
  train_data = "data"
  val_data = "data"
  batch = 7
  epochs = EPOCHS
  optimizer = adamw(lr: 0.01)
  schedule = SCHEDULE
  clip_grad_norm = 1.0
  augment = [noise(x, std: 0.1)]
  checkpoint = last
}
"""

    def setUp(self):
        self.work = masstest.Workdir()
        rng = np.random.default_rng(8)
        x = rng.standard_normal((2000, 6)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
        masstest.write_npy_dir(self.work.file("data"), {"x": x, "y": y})

    def program(self, name, epochs, schedule):
        source = self.SOURCE.replace("EPOCHS", str(epochs)).replace("SCHEDULE", schedule)
        return masstest.compile_model(source, self.work, name)

    def final(self, directory):
        d = self.work.file(directory)
        return {**masstest.read_safetensors(os.path.join(d, "last.safetensors")),
                **{"state." + k: v for k, v in
                   masstest.read_safetensors(os.path.join(d, "last.state.safetensors")).items()}}

    def assert_same_bits(self, ours, theirs):
        self.assertEqual(sorted(ours), sorted(theirs))
        self.assertIn("state.h.weight.exp_avg", ours)
        for name, value in theirs.items():
            self.assertEqual(ours[name].tobytes(), value.tobytes(), name)

    def test_resumed_equals_uninterrupted(self):
        """Four epochs in one run, or two and then two more resumed from
        the checkpoint: the same weights and optimizer state, bit for bit
        (AdamW moments, the step's learning rate, the shuffle, dropout and
        noise generators all carry over)."""
        exe = self.program("net", 4, "step(every: 300, gamma: 0.5)")
        run = lambda *args: subprocess.run([exe, *args], cwd=self.work.path, check=True,
                                           capture_output=True)
        run("--checkpoint-dir", "whole")
        run("--checkpoint-dir", "split", "--epochs", "2")
        halfway = self.final("split")
        run("--checkpoint-dir", "split", "--resume", "split")
        whole, split = self.final("whole"), self.final("split")
        self.assert_same_bits(split, whole)
        # Not vacuous: the second half moved the weights.
        self.assertNotEqual(halfway["h.weight"].tobytes(), whole["h.weight"].tobytes())

    def test_torn_checkpoint_pair_resumes_from_the_state(self):
        """A run killed after writing last.safetensors of epoch 3 but before
        its last.state.safetensors leaves weights one epoch ahead of the
        state: resuming takes the weights the state file carries, so it
        still ends where the uninterrupted run ends."""
        exe = self.program("torn_net", 4, "step(every: 300, gamma: 0.5)")
        run = lambda *args: subprocess.run([exe, *args], cwd=self.work.path, check=True,
                                           capture_output=True)
        run("--checkpoint-dir", "whole")
        run("--checkpoint-dir", "torn", "--epochs", "2")
        run("--checkpoint-dir", "ahead", "--epochs", "3")
        shutil.copy(self.work.file("ahead/last.safetensors"), self.work.file("torn/last.safetensors"))
        run("--checkpoint-dir", "torn", "--resume", "torn")
        self.assert_same_bits(self.final("torn"), self.final("whole"))

    def test_killed_run_resumes_bit_identical(self):
        """A run killed with SIGKILL mid-training (cosine schedule over all
        its epochs) resumes from its last checkpoint and ends where an
        uninterrupted run ends."""
        exe = self.program("long", 100, "cosine(warmup: 5, min_lr: 0.001)")
        subprocess.run([exe, "--checkpoint-dir", "whole"], cwd=self.work.path, check=True,
                       capture_output=True)
        log = self.work.file("killed.jsonl")
        proc = subprocess.Popen([exe, "--checkpoint-dir", "killed", "--log", log],
                                cwd=self.work.path, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(log) and os.path.getsize(log) > 600:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        self.assertEqual(proc.wait(), -signal.SIGKILL, "the run ended before it could be killed")
        subprocess.run([exe, "--checkpoint-dir", "killed", "--resume", "killed"], cwd=self.work.path,
                       check=True, capture_output=True)
        self.assert_same_bits(self.final("killed"), self.final("whole"))

    def test_prefetch_changes_nothing(self):
        """The background thread that draws the next batch (gather, noise)
        while a step runs keeps the generator's order: the same bits as
        drawing each batch on the training thread (--no-prefetch), with
        the epochs' new shuffles and a short last batch in between. (By
        default the thread is used when --threads leaves a core free.)"""
        exe = self.program("prefetch", 3, "cosine(warmup: 5)")
        run = lambda *args: subprocess.run([exe, *args], cwd=self.work.path, check=True,
                                           capture_output=True)
        run("--checkpoint-dir", "ahead", "--prefetch")
        run("--checkpoint-dir", "inline", "--no-prefetch")
        self.assert_same_bits(self.final("ahead"), self.final("inline"))


class StrictData(unittest.TestCase):
    """Data is checked once, when it is opened, against the model: a bad
    value is one line naming the file, the row and the value, exit 1, before
    any step."""

    SOURCE = Metrics.SOURCE.replace("model three", "model strict") + """
train strict {
  train_data = csv("rows.csv", x: ["a", "b", "c", "d", "e"], c: ["cls"], r: ["target"])
  batch = 2
  epochs = 1
}
"""

    @classmethod
    def setUpClass(cls):
        cls.work = masstest.Workdir()
        cls.exe = masstest.compile_model(Metrics.SOURCE, cls.work, "three")
        cls.csv_exe = masstest.compile_model(cls.SOURCE, cls.work, "strict")

    def data(self, name, **changes):
        rng = np.random.default_rng(5)
        arrays = {"x": rng.standard_normal((4, 5)).astype(np.float32),
                  "c": np.array([0, 5, -1, 2], np.int32),
                  "r": rng.uniform(0, 1, (4, 1)).astype(np.float32)}
        arrays.update(changes)
        masstest.write_npy_dir(self.work.file(name), arrays)
        return self.work.file(name)

    def refuse(self, args, message, cwd=None, exe=None):
        r = subprocess.run([exe or self.exe, *args], capture_output=True, text=True, cwd=cwd or self.work.path)
        self.assertEqual((r.returncode, r.stderr.strip()), (1, message), args)

    def test_npy(self):
        ok = self.data("ok")
        masstest.run([self.exe, "--train", ok, "--val", ok, "--epochs", "1", "--batch", "2"])
        x = np.ones((4, 5), np.float32)
        x[3, 1] = np.nan
        cases = {
            "class6": ({"c": np.array([0, 6, 1, 2], np.int32)},
                       "label 'c' holds the class 6 at row 1; the logits have 6 classes (and -1 marks no label)"),
            "maxint": ({"c": np.array([0, 1, 2**31 - 1, 2], np.int64)},
                       "label 'c' holds the class 2147483647 at row 2; the logits have 6 classes (and -1 marks no label)"),
            "minus2": ({"c": np.array([0, -2, 1, 2], np.int32)},
                       "label 'c' holds the class -2 at row 1; the logits have 6 classes (and -1 marks no label)"),
            "half": ({"c": np.array([0, 1.5, 1, 2], np.float32)}, "label 'c' holds the non-integer 1.5 at row 1"),
            "huge": ({"c": np.array([0, 2.0**33, 1, 2], np.float32)},
                     "label 'c' holds 8.58993459e+09 at row 1, beyond the 32-bit integers labels and ids are"),
            "nan": ({"x": x}, "input 'x' holds nan at row 3 (--allow-nonfinite lets NaN and Inf through)"),
            "bce5": ({"r": np.array([[0], [1], [5], [0.5]], np.float32)},
                     "label 'r' holds the target 5 at row 2; its loss takes targets in [0, 1]"),
        }
        for name, (change, message) in cases.items():
            path = self.data(name, **change)
            column = "c" if "'c'" in message else "x" if "'x'" in message else "r"
            self.refuse(["--train", path, "--val", ok],
                        f"error: train data '{path}/{column}.npy': {message}")
        # An int64 beyond int32 is refused as it is read.
        path = self.data("wide", c=np.array([0, 1, 2**40, 2], np.int64))
        self.refuse(["--train", path, "--val", ok],
                    f"error: '{path}/c.npy' is not a usable .npy file: element 2 (1099511627776) "
                    "does not fit in int32")
        # --allow-nonfinite lets the NaN through; the loss then stops training.
        r = subprocess.run([self.exe, "--train", self.data("nan", x=x), "--val", ok, "--allow-nonfinite"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NaN", r.stderr)

    def test_npy_headers(self):
        """Shapes that are negative, overflow, or do not match the data's
        length are refused before anything is allocated."""
        ok = self.data("ok")

        def npy(shape_text, payload):
            header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape_text
            header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
            return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload

        payload = np.ones((4, 5), np.float32).tobytes()
        cases = {
            "(-4, 5)": "the shape (-4, 5) is not a tuple of sizes",
            "(4, 99999999999999999999)": "the shape (4, 99999999999999999999) is too large",
            "(999999999999999, 999999999999999)":
                "the data is shorter than its shape [999999999999999, 999999999999999]",
            "(4, 6)": "the data is shorter than its shape [4, 6]",
            "(3, 5)": "the data is longer than its shape [3, 5]",
        }
        for k, (shape, why) in enumerate(cases.items()):
            path = self.data(f"header{k}")
            with open(os.path.join(path, "x.npy"), "wb") as f:
                f.write(npy(shape, payload))
            self.refuse(["--train", path, "--val", ok],
                        f"error: '{path}/x.npy' is not a usable .npy file: {why}")

    def test_csv(self):
        header = "a,b,c,d,e,cls,target"
        good = ["1,2,3,4,5,0,0.5", "1,2,3,4,5,1,1", "0,0,0,0,0,-1,0"]
        cases = {
            "width": ([header] + good[:1] + ["1,2,3,4,5,0,0.5,9"] + good[1:],
                      "rows.csv:3: the row has 8 cells, the header 7"),
            "short": ([header] + good[:2] + ["1,2,3"], "rows.csv:4: the row has 3 cells, the header 7"),
            "dup": (["a,b,c,d,e,cls,target,b"] + [g + ",0" for g in good],
                    "rows.csv:1: the header names the column 'b' twice (columns 2 and 8)"),
            "class": ([header] + good + ["1,2,3,4,5,6,0"],
                      "train data 'rows.csv': label 'c' holds the class 6 at row 3; the logits have 6 "
                      "classes (and -1 marks no label)"),
            "target": ([header] + good + ["1,2,3,4,5,1,5"],
                       "train data 'rows.csv': label 'r' holds the target 5 at row 3; its loss takes "
                       "targets in [0, 1]"),
            "inf": ([header] + ["1,2,inf,4,5,0,0.5"] + good,
                    "train data 'rows.csv': input 'x' holds inf at row 0 (--allow-nonfinite lets NaN and "
                    "Inf through)"),
        }
        for name, (lines, message) in cases.items():
            d = self.work.file("csv-" + name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "rows.csv"), "w") as f:
                f.write("\n".join(lines) + "\n")
            self.refuse(["--val", self.data("ok")], "error: " + message, cwd=d, exe=self.csv_exe)

    def test_not_regular_files(self):
        """A FIFO, a directory or a device where a file is read is refused at
        once, whatever the format; nothing blocks waiting for a writer."""
        ok = self.data("ok")
        fifo_dir = self.data("fifo")
        os.remove(os.path.join(fifo_dir, "x.npy"))
        os.mkfifo(os.path.join(fifo_dir, "x.npy"))
        dir_dir = self.data("dir")
        os.remove(os.path.join(dir_dir, "x.npy"))
        os.mkdir(os.path.join(dir_dir, "x.npy"))
        csv_dir = self.work.file("csv-fifo")
        os.makedirs(csv_dir, exist_ok=True)
        os.mkfifo(os.path.join(csv_dir, "rows.csv"))
        weights = self.work.file("weights.safetensors")
        os.mkfifo(weights)
        cases = [
            (self.exe, ["--train", fifo_dir, "--val", ok], None, f"{fifo_dir}/x.npy"),
            (self.exe, ["--train", dir_dir, "--val", ok], None, f"{dir_dir}/x.npy"),
            (self.exe, ["--train", ok, "--val", ok, "--init", weights], None, weights),
            (self.exe, ["--train", ok, "--val", ok, "--init", "/dev/zero"], None, "/dev/zero"),
            (self.csv_exe, ["--val", ok], csv_dir, "rows.csv"),
        ]
        for exe, args, cwd, path in cases:
            r = subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd or self.work.path,
                               timeout=60)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertIn(f"cannot read '{path}': not a regular file", r.stderr, args)


class VerifiedCheckpoints(unittest.TestCase):
    """Checkpoints carry a CRC-32 of every tensor (zlib's, so Python checks
    them too); a corrupted byte, and headers whose names, shapes or offsets
    do not add up, are one-line errors when the file is loaded."""

    @classmethod
    def setUpClass(cls):
        cls.work = masstest.Workdir()
        cls.exe = masstest.compile_model(Metrics.SOURCE, cls.work, "three")
        rng = np.random.default_rng(8)
        masstest.write_npy_dir(cls.work.file("data"), {
            "x": rng.standard_normal((8, 5)).astype(np.float32),
            "c": rng.integers(0, 6, 8).astype(np.int32),
            "r": rng.uniform(0, 1, (8, 1)).astype(np.float32)})
        masstest.run([cls.exe, "--train", cls.work.file("data"), "--val", cls.work.file("data"),
                      "--epochs", "1", "--batch", "4", "--checkpoint-dir", cls.work.file("ckpt")])
        with open(cls.work.file("ckpt/last.safetensors"), "rb") as f:
            cls.file = f.read()

    def load(self, name, data):
        path = self.work.file(name)
        with open(path, "wb") as f:
            f.write(data)
        return subprocess.run([self.exe, "--init", path, "--val", self.work.file("data"), "--eval-only"],
                              capture_output=True, text=True)

    def refuse(self, name, data, why):
        r = self.load(name, data)
        self.assertEqual((r.returncode, r.stderr.strip()),
                         (1, f"error: '{self.work.file(name)}' is not a usable safetensors file: {why}"))

    @staticmethod
    def build(header, payload):
        text = json.dumps(header) if isinstance(header, dict) else header
        return struct.pack("<Q", len(text)) + text.encode() + payload

    def test_checksums_match_zlib(self):
        import zlib
        (n,) = struct.unpack("<Q", self.file[:8])
        header = json.loads(self.file[8:8 + n])
        meta = header.pop("__metadata__")
        self.assertEqual(sorted(header), sorted(masstest.param_shapes(self.exe)))
        for name, info in header.items():
            begin, end = info["data_offsets"]
            self.assertEqual(meta["crc32." + name], "%08x" % zlib.crc32(self.file[8 + n + begin:8 + n + end]),
                             name)
        self.assertEqual(self.load("good.safetensors", self.file).returncode, 0)

    def test_corrupted_byte(self):
        (n,) = struct.unpack("<Q", self.file[:8])
        header = json.loads(self.file[8:8 + n])
        begin, end = header["cls.logits.weight"]["data_offsets"]
        bad = bytearray(self.file)
        bad[8 + n + begin + 5] ^= 0x10
        self.refuse("flipped.safetensors", bytes(bad),
                    "the data of 'cls.logits.weight' does not match its checksum (the file is corrupted)")

    def test_hostile_headers(self):
        four = np.arange(4, dtype=np.float32).tobytes()
        t = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
        cases = {
            "negative": ({"a": dict(t, shape=[-256])}, four,
                         "'a' has a shape that is not a list of sizes >= 0"),
            "overflow": ({"a": dict(t, shape=[2**62, 2**62])}, four,
                         "'a' has a shape that is not a list of sizes >= 0"),
            "huge": ({"a": dict(t, shape=[2**40, 2**40])}, four, "'a' has 16 bytes for shape [1099511627776, "
                                                                  "1099511627776]"),
            "outside": ({"a": dict(t, data_offsets=[0, 32])}, four,
                        "'a' has data_offsets outside the file's 16 bytes of data"),
            "fraction": ({"a": dict(t, data_offsets=[0, 15.5])}, four,
                         "'a' has data_offsets outside the file's 16 bytes of data"),
            "overlap": ({"a": dict(t, shape=[2], data_offsets=[0, 8]),
                         "b": dict(t, shape=[2], data_offsets=[4, 12])}, four,
                        "the data of 'a' and 'b' overlap"),
            "gap": ({"a": dict(t, shape=[2], data_offsets=[8, 16])}, four,
                    "the data has unused bytes before 'a'"),
            "tail": ({"a": dict(t, shape=[2], data_offsets=[0, 8])}, four, "the data has 8 unused bytes at its end"),
            "dtype": ({"a": dict(t, dtype="BF16")}, four, "'a' has dtype BF16; F32, F64, I32 and I64 are supported"),
            "sum": ({"__metadata__": {"crc32.b": "00000000"}, "a": t}, four,
                    "__metadata__ has a checksum for 'b', which the file does not hold"),
            "meta": ({"__metadata__": {"step": 3}, "a": t}, four, "__metadata__ 'step' is not a string"),
            "duplicate": ('{"a": %s, "a": %s}' % (json.dumps(t), json.dumps(t)), four,
                          "bad header (the key 'a' appears twice at offset %d)"
                          % len('{"a": %s, "a"' % json.dumps(t))),
        }
        for name, (header, payload, why) in cases.items():
            self.refuse(name + ".safetensors", self.build(header, payload), why)


class NonfiniteGuard(unittest.TestCase):
    """A NaN or Inf in a loss or a gradient stops training, naming the step,
    the task and the first such gradient, before any update (so no
    checkpoint holds it); --skip-nonfinite skips those steps and counts
    them."""

    SOURCE = """
model guard {
  input x: f32[B, 2]
  label t: f32[B, 2]
  w = param(f32[1, 2], init: ones)
  task fit { loss = mse(log(x * w), t) }
}
"""

    def test_stop_and_skip(self):
        work = masstest.Workdir()
        exe = masstest.compile_model(self.SOURCE, work, "guard")
        x = np.ones((8, 2), np.float32)
        x[5] = -1  # log of a negative: the second batch of 4 has a NaN loss
        masstest.write_npy_dir(work.file("data"), {"x": x, "t": np.zeros((8, 2), np.float32)})
        common = [exe, "--train", work.file("data"), "--batch", "4", "--epochs", "3", "--lr", "0.1",
                  "--checkpoint-dir", work.file("ckpt")]
        r = subprocess.run(common, capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stderr.strip()),
                         (1, "error: step 2 (epoch 1): the loss of task 'fit' is NaN; the first non-finite "
                             "gradient is that of 'w' (--skip-nonfinite skips such steps)"))
        self.assertFalse(os.path.exists(work.file("ckpt/last.safetensors")))

        r = subprocess.run(common + ["--skip-nonfinite", "--log", work.file("log.jsonl")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count("; skipped"), 3)
        self.assertEqual(r.stdout.count("skipped 1 non-finite step"), 3)
        self.assertEqual([e["skipped_steps"] for e in log_events(work.file("log.jsonl"))], [1, 1, 1])
        w = masstest.read_safetensors(work.file("ckpt/last.safetensors"))["w"]
        self.assertTrue(np.isfinite(w).all())
        # Only the three good steps trained: w * 1 = exp(t) = 1 is the
        # optimum, so w stays 1 (a gradient of zero) on the good batches.
        self.assertTrue(np.allclose(w, 1.0), w)

    def test_gradient_alone(self):
        """A finite loss with an infinite gradient: sqrt at 0. The CPU
        program checks its gradients; the GPU program (run on the emulated
        device) checks them on the device, a kernel per gradient, and names
        the same parameter. Another parameter before it stays finite."""
        for target in ((), ("--target=cuda", "--emulate-gpu")):
            with self.subTest(target=target):
                work = masstest.Workdir()
                exe = masstest.compile_model("""
model sq {
  input x: f32[B, 2]
  label t: f32[B, 2]
  a = param(f32[1, 2], init: ones)
  w = param(f32[1, 2], init: zeros)
  task fit { loss = mse(sqrt(x * w) + x * a, t) }
}
""", work, "sq", extra=target)
                masstest.write_npy_dir(work.file("data"), {"x": np.ones((4, 2), np.float32),
                                                           "t": np.ones((4, 2), np.float32)})
                r = subprocess.run([exe, "--train", work.file("data"), "--batch", "4"],
                                   capture_output=True, text=True)
                self.assertEqual((r.returncode, r.stderr.strip()),
                                 (1, "error: step 1 (epoch 1): the first non-finite gradient is that "
                                     "of 'w' (--skip-nonfinite skips such steps)"))


class TrainingReport(unittest.TestCase):
    """--report FILE.svg: the loss and each metric of each task, train and
    validation, redrawn after every round; a resumed run draws the rounds
    before it too."""

    def panels(self, path):
        import xml.etree.ElementTree as ET
        ns = {"svg": "http://www.w3.org/2000/svg"}
        root = ET.parse(path).getroot()  # well-formed XML, or this raises
        self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg")
        out = {}
        for g in root.findall("svg:g", ns):
            title = g.find("svg:text", ns).text
            out[title] = {p.get("class"): [tuple(map(float, xy.split(",")))
                                           for xy in p.get("points").split()]
                          for p in g.findall("svg:polyline", ns)}
        return out

    def test_curves(self):
        """Spec-like three tasks (Metrics' model): a panel per task and
        logged value, each with a train and a validation line whose points
        order as the log's values do."""
        work = masstest.Workdir()
        exe = masstest.compile_model(Metrics.SOURCE, work, "three")
        rng = np.random.default_rng(3)
        n = 96
        masstest.write_npy_dir(work.file("data"), {
            "x": rng.standard_normal((n, 5)).astype(np.float32),
            "c": rng.integers(0, 6, n).astype(np.int32),
            "r": rng.uniform(0, 1, (n, 1)).astype(np.float32)})
        svg, log = work.file("curves.svg"), work.file("log.jsonl")
        common = ["--train", "data", "--val", "data", "--batch", "16", "--checkpoint-dir", "ckpt",
                  "--report", svg]
        subprocess.run([exe, *common, "--epochs", "3", "--log", log], cwd=work.path, check=True,
                       capture_output=True)
        panels = self.panels(svg)
        events = log_events(log)
        logged = {f"{e['task']}: {k}" for e in events for k in e
                  if k not in ("event", "epoch", "split", "task", "lr", "seconds")}
        self.assertEqual(set(panels), logged)
        self.assertEqual(len(panels), 8)  # cls 3, reg 3, bin 2
        for title, lines in panels.items():
            task, value = title.split(": ")
            self.assertEqual(sorted(lines), ["train", "val"], title)
            for split, points in lines.items():
                logged = [e[value] for e in events if e["task"] == task and e["split"] == split]
                self.assertEqual(len(points), 3, title)
                # Left to right, and higher values higher up (smaller y).
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                self.assertEqual(xs, sorted(xs))
                for a in range(3):
                    for b in range(3):
                        if logged[a] > logged[b] + 1e-6:
                            self.assertLess(ys[a], ys[b], (title, split, logged))
        # Resumed for two more epochs: five points per line.
        subprocess.run([exe, *common, "--resume", "ckpt", "--epochs", "5"], cwd=work.path,
                       check=True, capture_output=True)
        for title, lines in self.panels(svg).items():
            self.assertEqual({k: len(v) for k, v in lines.items()}, {"train": 5, "val": 5}, title)
        # An unwritable report is an error before anything trains.
        r = subprocess.run([exe, *common[:-1], work.file("no/such/dir/r.svg")], cwd=work.path,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("r.svg", r.stderr)
        self.assertEqual(r.stdout, "")


class LeanLoading(unittest.TestCase):
    """.npy data is mapped, not copied: the peak resident memory of a run
    grows by about the data's size, not twice it."""

    SOURCE = """
model lean {
  input x: f32[B, 1024]
  label y: i32[B]
  task cls { loss = cross_entropy(dense(x, 4), y) }
}
"""

    def test_resident_memory(self):
        work = masstest.Workdir()
        exe = masstest.compile_model(self.SOURCE, work, "lean")
        rng = np.random.default_rng(0)
        peaks = {}
        for rows in (64, 16384):  # 64 MiB of float32 inputs
            d = work.file(f"d{rows}")
            masstest.write_npy_dir(d, {"x": rng.random((rows, 1024), dtype=np.float32),
                                       "y": rng.integers(0, 4, rows).astype(np.int32)})
            log = work.file(f"log{rows}.jsonl")
            subprocess.run([exe, "--train", d, "--val", work.file("d64"), "--batch", "256",
                            "--epochs", "1", "--threads", "1", "--log", log], check=True,
                           capture_output=True)
            events = {e["event"]: e for e in masstest.log_events(log, program=True)}
            self.assertLessEqual(events["ready"]["seconds"], events["end"]["seconds"])
            peaks[rows] = events["end"]["peak_resident_mib"]
        grown = peaks[16384] - peaks[64]
        self.assertLess(grown, 64 * 1.2, peaks)
        self.assertGreater(grown, 32, peaks)  # the data was read at all


if __name__ == "__main__":
    unittest.main(verbosity=2)
