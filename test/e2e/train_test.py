"""Training end to end: spec 01 on real MNIST digits, spec 08 on a CSV data
set generated here, and the runtime's files (log, checkpoints, resume)."""
import os
import re
import subprocess
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")


def without_data(text):
    """A model file less what says where its data lives (the train block's
    data keys, the comment naming the data script), with runs of spaces
    folded: an example equals its spec in everything else, comments, blocks,
    model and training settings included."""
    kept = []
    for line in text.splitlines():
        words = line.split()
        if words and (words[0] in ("train_data", "val_data") or line.startswith("# The data:")):
            continue
        kept.append(" ".join(words))
    return "\n".join(kept)


def val_metric(stdout, name):
    values = re.findall(r"val:.*?\b" + name + r" ([0-9.]+)", stdout)
    return [float(v) for v in values]


class Train(unittest.TestCase):
    def test_spec01_mnist_accuracy(self):
        """Spec 01 reaches at least 92% on the 2,000 validation digits in 5
        epochs (a PyTorch twin reaches 92.8%)."""
        subprocess.run(["bash", os.path.join(ROOT, "examples", "data", "fetch_mnist.sh")], check=True)
        work = masstest.Workdir()
        exe = work.file("mlp")
        subprocess.run([masstest.MASSC, os.path.join(ROOT, "examples", "mnist_mlp.mass"), "-o", exe,
                        masstest.OPT], check=True)
        log = work.file("log.jsonl")
        run = subprocess.run([exe, "--log", log], cwd=os.path.join(ROOT, "examples"), check=True,
                             capture_output=True, text=True)
        print(run.stdout)
        accuracy = val_metric(run.stdout, "accuracy")
        self.assertEqual(len(accuracy), 5)
        self.assertGreaterEqual(accuracy[-1], 0.92)
        events = masstest.log_events(log)
        self.assertEqual([e["epoch"] for e in events if e["split"] == "val"], [1, 2, 3, 4, 5])
        self.assertAlmostEqual(events[-1]["accuracy"], accuracy[-1], places=3)

    @unittest.skipIf(masstest.OPT == "-O0", "-O0 runs plain loops, too slow for 3 epochs of a CNN")
    def test_spec02_mnist_accuracy(self):
        """Spec 02 (conv, batch norm, max pool, dropout, augmentation, cosine
        schedule, clipping) reaches at least 97.3% on the 2,000 validation
        digits in 3 epochs (a PyTorch twin reaches 97.7-97.9%)."""
        subprocess.run(["bash", os.path.join(ROOT, "examples", "data", "fetch_mnist.sh")], check=True)
        # examples/mnist_cnn.mass is spec 02 as it stands.
        example = os.path.join(ROOT, "examples", "mnist_cnn.mass")
        with open(example) as a, open(os.path.join(SPEC, "02_cnn.mass")) as b:
            self.assertEqual(a.read(), b.read())
        work = masstest.Workdir()
        exe = work.file("cnn")
        subprocess.run([masstest.MASSC, example, "-o", exe, masstest.OPT], check=True)
        ckpt = work.file("ckpt")
        run = subprocess.run([exe, "--checkpoint-dir", ckpt], cwd=os.path.join(ROOT, "examples"),
                             check=True, capture_output=True, text=True)
        print(run.stdout)
        accuracy = val_metric(run.stdout, "accuracy")
        self.assertEqual(len(accuracy), 3)
        self.assertGreaterEqual(max(accuracy), 0.973)
        # checkpoint = best(val.classify.accuracy) keeps the best epoch, with
        # its batch norm statistics.
        best = masstest.read_safetensors(os.path.join(ckpt, "best.safetensors"))
        self.assertIn("features.1.bn.running_var", best)
        self.assertEqual(best["fc.weight"].shape, (128, 3136))

    def train_example(self, example, spec, lr):
        """Trains examples/EXAMPLE (spec SPEC with data paths added) on the
        generated 32x32 images of examples/data/make_bands.py for 3 epochs
        at learning rate `lr` (the specs' rates are for long runs: on 16
        steps per epoch, ResNet-18 at 0.1 with momentum jumps about)."""
        with open(os.path.join(ROOT, "examples", example)) as f:
            ours = f.read()
        with open(os.path.join(SPEC, spec)) as f:
            theirs = f.read()
        # The example is the spec, its train block given data.
        self.assertEqual(without_data(ours), without_data(theirs))
        examples = os.path.join(ROOT, "examples")
        subprocess.run(["/usr/bin/python3", os.path.join(examples, "data", "make_bands.py")],
                       check=True)
        work = masstest.Workdir()
        exe = work.file("model")
        subprocess.run([masstest.MASSC, os.path.join(examples, example), "-o", exe, masstest.OPT],
                       check=True)
        run = subprocess.run([exe, "--epochs", "3", "--lr", str(lr)], cwd=examples, check=True,
                             capture_output=True, text=True)
        print(run.stdout)
        losses = [float(v) for v in re.findall(r"train: loss ([0-9.]+)", run.stdout)]
        self.assertEqual(len(losses), 3)
        # Falling (SGD's epochs are noisy on 16 steps each), and three
        # times better than chance on the validation images in the end.
        self.assertLess(sum(losses[1:]) / 2, 0.8 * losses[0])
        self.assertGreaterEqual(val_metric(run.stdout, "accuracy")[-1], 0.3)

    @unittest.skipIf(masstest.OPT == "-O0", "-O0 runs plain loops, too slow for ResNet-18")
    def test_spec03_resnet18_learns(self):
        self.train_example("resnet18.mass", "03_resnet18.mass", 0.005)

    @unittest.skipIf(masstest.OPT == "-O0", "-O0 runs plain loops, too slow for Inception")
    def test_spec04_inception_learns(self):
        self.train_example("inception.mass", "04_inception.mass", 0.02)

    def test_spec08_csv(self):
        """Spec 08 trains on a CSV data set whose labels follow a rule of the
        features: the loss falls, and the validation accuracy ends near that
        of a PyTorch twin trained the same way (SGD 0.1, exponential decay
        0.95 per step, batch 256, 20 epochs)."""
        import torch
        import torch.nn.functional as F

        work = masstest.Workdir()
        rng = np.random.default_rng(3)
        data = os.path.join(work.path, "data", "tabular")
        os.makedirs(data)
        direction = rng.standard_normal(8)
        sets = {}
        for split, n in (("train", 2048), ("val", 512)):
            x = rng.standard_normal((n, 8)).astype(np.float32)
            y = (x @ direction + 0.5 * np.sin(3 * x[:, 0]) > 0).astype(np.float32)
            sets[split] = (x, y)
            with open(os.path.join(data, split + ".csv"), "w") as f:
                f.write(",".join([f"f{i}" for i in range(8)] + ["y"]) + "\n")
                for row, target in zip(x, y):
                    f.write(",".join(f"{v:.6f}" for v in row) + f",{target:.0f}\n")
        with open(os.path.join(SPEC, "08_lowlevel.mass")) as f:
            exe = masstest.compile_model(f.read(), work, "logistic")
        run = subprocess.run([exe], cwd=work.path, check=True, capture_output=True, text=True)
        print(run.stdout)
        accuracy = val_metric(run.stdout, "accuracy")
        losses = val_metric(run.stdout, "loss")
        self.assertEqual(len(accuracy), 20)
        self.assertLess(losses[-1], losses[0])

        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.empty(8, 16))
        torch.nn.init.xavier_uniform_(w)
        b = torch.nn.Parameter(torch.zeros(16))
        v = torch.nn.Parameter(torch.randn(16, 1) * 0.1)
        opt = torch.optim.SGD([w, b, v], lr=0.1)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)

        def forward(x):
            h = torch.tanh(x @ w + b)
            gate = torch.sigmoid(h) * h - 0.5 * torch.exp(-h * h)
            return gate @ v / 4.0

        xt, yt = (torch.tensor(a) for a in sets["train"])
        for _ in range(20):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 256):
                idx = perm[i:i + 256]
                logit = forward(xt[idx])
                loss = F.binary_cross_entropy_with_logits(logit[:, 0], yt[idx]) + 1e-4 * (w * w).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        xv, yv = (torch.tensor(a) for a in sets["val"])
        with torch.no_grad():
            twin = ((forward(xv)[:, 0] > 0).float() == yv).float().mean().item()
        print(f"PyTorch twin: val accuracy {twin:.4f}")
        self.assertGreater(accuracy[-1], 0.6)
        self.assertGreater(accuracy[-1], twin - 0.06)

    def test_optimizer_steps_match_torch(self):
        """Four steps of each optimizer (SGD with Nesterov momentum, weight
        decay and active clipping; Adam with L2 weight decay; AdamW) from
        the same weights on one batch end at torch.optim's parameters. The
        optimizer step writes the new values over the old ones (massc marks
        `update` in place), which these runs exercise."""
        import torch
        import torch.nn.functional as F

        work = masstest.Workdir()
        rng = np.random.default_rng(6)
        x = rng.standard_normal((32, 6)).astype(np.float32)
        y = rng.integers(0, 3, 32).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y})
        init = {"h.weight": rng.standard_normal((8, 6)) * 0.4, "h.bias": rng.standard_normal(8) * 0.1,
                "out.weight": rng.standard_normal((3, 8)) * 0.4, "out.bias": np.zeros(3)}
        masstest.write_safetensors(work.file("init.safetensors"), init)
        cases = {
            "sgd": ("sgd(lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01)\n  clip_grad_norm = 0.05",
                    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), 0.05),
            "adam": ("adam(lr: 0.01, betas: (0.8, 0.99), eps: 1e-6, weight_decay: 0.01)",
                     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
                     None),
            "adamw": ("adamw(lr: 0.01, weight_decay: 0.1)",
                      lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1), None),
        }
        for name, (optimizer, twin, clip) in cases.items():
            source = f"""
model tiny {{
  input x: f32[B, 6]
  label y: i32[B]
  h = dense(x, 8) |> tanh
  out = dense(h, 3)
  task cls {{ loss = cross_entropy(out, y) }}
}}
train tiny {{
  train_data = "data"
  batch = 32
  epochs = 4
  optimizer = {optimizer}
  checkpoint = last
}}
"""
            exe = masstest.compile_model(source, work, name)
            linalg = subprocess.run([masstest.MASSC, work.file(name + ".mass"), masstest.OPT,
                                     "--emit=linalg"], check=True, capture_output=True, text=True).stdout
            # Both forms of the step write over their arguments.
            self.assertIn('mass.in_place = ["update", "update_slice"]', linalg, name)
            subprocess.run([exe, "--init", "init.safetensors"], cwd=work.path, check=True,
                           capture_output=True, text=True)
            ours = masstest.read_safetensors(work.file("checkpoints/last.safetensors"))

            params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in init.items()}
            opt = twin(list(params.values()))
            for _ in range(4):
                h = torch.tanh(F.linear(torch.tensor(x), params["h.weight"], params["h.bias"]))
                out = F.linear(h, params["out.weight"], params["out.bias"])
                loss = F.cross_entropy(out, torch.tensor(y, dtype=torch.int64))
                opt.zero_grad()
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
                opt.step()
            for k, v in params.items():
                moved = masstest.rel_error(v.detach().numpy(), init[k])
                self.assertGreater(moved, 1e-3, f"{name} {k} did not move")
                self.assertLess(masstest.rel_error(ours[k], v.detach().numpy()), 1e-5, f"{name} {k}")

    def test_checkpoints_and_resume(self):
        """best/last checkpoints are written, load back with --init, and a
        resumed run continues from the saved epoch."""
        work = masstest.Workdir()
        source = """
model tiny {
  input x: f32[B, 4]
  label y: i32[B]
  h = dense(x, 8) |> relu
  out = dense(h, 3)
  task cls {
    loss = cross_entropy(out, y)
    metric accuracy(out, y)
  }
}
train tiny {
  train_data = "data"
  val_data = "data"
  batch = 16
  epochs = 3
  optimizer = sgd(lr: 0.1, momentum: 0.9)
  checkpoint = best(val.cls.accuracy)
}
"""
        exe = masstest.compile_model(source, work, "tiny")
        rng = np.random.default_rng(4)
        x = rng.standard_normal((64, 4)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y})
        run = subprocess.run([exe], cwd=work.path, check=True, capture_output=True, text=True)
        for name in ("best.safetensors", "last.safetensors", "last.state.safetensors"):
            self.assertTrue(os.path.exists(os.path.join(work.path, "checkpoints", name)), name)
        last = masstest.read_safetensors(os.path.join(work.path, "checkpoints", "last.safetensors"))
        self.assertEqual(set(last), {"h.weight", "h.bias", "out.weight", "out.bias"})
        state = masstest.read_safetensors(os.path.join(work.path, "checkpoints", "last.state.safetensors"))
        self.assertIn("h.weight.momentum_buffer", state)
        # --eval-only with the last weights reproduces the last epoch's accuracy.
        final = val_metric(run.stdout, "accuracy")[-1]
        evaluated = subprocess.run([exe, "--eval-only", "--init", "checkpoints/last.safetensors"],
                                   cwd=work.path, check=True, capture_output=True, text=True)
        self.assertAlmostEqual(float(re.search(r"accuracy ([0-9.]+)", evaluated.stdout).group(1)), final,
                               places=4)
        # An ensemble of one model with itself scores as the model does.
        ensemble = subprocess.run([exe, "--ensemble", "checkpoints/last.safetensors,checkpoints/last.safetensors"],
                                  cwd=work.path, check=True, capture_output=True, text=True)
        self.assertIn("ensemble of 2:", ensemble.stdout)
        self.assertAlmostEqual(float(re.search(r"accuracy ([0-9.]+)", ensemble.stdout).group(1)), final,
                               places=4)
        # Resuming at epoch 3 of 5 runs epochs 4 and 5 only.
        resumed = subprocess.run([exe, "--resume", "checkpoints", "--epochs", "5"], cwd=work.path,
                                 check=True, capture_output=True, text=True)
        self.assertEqual(re.findall(r"^epoch (\d+)/5", resumed.stdout, re.M), ["4", "5"])

    def test_two_tasks_all_metrics(self):
        """Two tasks with every metric (top_k, binary accuracy, mae, rmse),
        shared metric counts, sampled tasks, balanced sampling, AdamW with
        cosine warm-up and clipping, and a best-rmse checkpoint."""
        source = """
block mlp(x, hidden, out = 4) {
  h = x |> dense(hidden) |> relu
  return dense(h, out, bias: false)
}
model two {
  input x: f32[B, 5, 6]
  label c: i32[B]
  label r: f32[B, 1]
  feats = mean(x, axis: 1) |> mlp(16, out: 8)
  task cls {
    logits = dense(feats, 6)
    loss = cross_entropy(logits, c, smoothing: 0.05)
    metric accuracy(logits, c)
    metric top_k(logits, c, k: 3)
  }
  task reg(weight: 2) {
    pred = dense(feats, 1)
    loss = mse(pred, r) + bce(pred, r)
    metric mae(pred, r)
    metric rmse(pred, r)
    metric accuracy(pred, r)
  }
}
train two {
  train_data = "d"
  val_data = "d"
  batch = 7
  epochs = 3
  optimizer = adamw(lr: 0.01)
  schedule = cosine(warmup: 3, min_lr: 0.001)
  clip_grad_norm = 1.0
  strategy = sample(cls: 0.6, reg: 0.4)
  sampling = balanced(c)
  checkpoint = best(val.reg.rmse)
}
"""
        work = masstest.Workdir()
        exe = masstest.compile_model(source, work, "two")
        rng = np.random.default_rng(5)
        masstest.write_npy_dir(work.file("d"), {
            "x": rng.standard_normal((50, 5, 6)).astype(np.float32),
            "c": rng.integers(0, 6, 50),
            "r": (rng.random((50, 1)) > 0.5).astype(np.float32)})
        log = work.file("log.jsonl")
        subprocess.run([exe, "--log", log], cwd=work.path, check=True, capture_output=True)
        events = masstest.log_events(log)
        reg = [e for e in events if e["task"] == "reg" and e["split"] == "val"][-1]
        cls = [e for e in events if e["task"] == "cls" and e["split"] == "val"][-1]
        self.assertEqual(set(cls), {"event", "epoch", "split", "task", "loss", "accuracy", "top3", "lr",
                                    "seconds"})
        self.assertGreaterEqual(cls["top3"], cls["accuracy"])
        self.assertGreaterEqual(reg["rmse"], reg["mae"])
        self.assertTrue(os.path.exists(os.path.join(work.path, "checkpoints", "best.safetensors")))

    def test_bad_data_fails_cleanly(self):
        work = masstest.Workdir()
        with open(os.path.join(SPEC, "01_mlp.mass")) as f:
            exe = masstest.compile_model(f.read(), work, "mlp")
        masstest.write_npy_dir(work.file("bad"), {"image": np.zeros((4, 1, 28, 27), np.float32),
                                                  "digit": np.zeros(4, np.int32)})
        run = subprocess.run([exe, "--train", work.file("bad")], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(run.stderr.strip(),
                         f"error: train data '{work.file('bad')}/image.npy': input 'image' has shape "
                         "[4, 1, 28, 27], the model expects [B, 1, 28, 28]")
        run = subprocess.run([exe, "--train", work.file("missing")], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertIn("missing", run.stderr)
        # A NaN loss stops training with the task, epoch and step.
        nan = masstest.compile_model("""
model nan {
  input x: f32[B, 2]
  label t: f32[B, 2]
  task fit { loss = mse(log(x), t) }
}
""", work, "nan")
        masstest.write_npy_dir(work.file("neg"), {"x": -np.ones((8, 2), np.float32),
                                                  "t": np.zeros((8, 2), np.float32)})
        run = subprocess.run([nan, "--train", work.file("neg"), "--batch", "4"], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(run.stderr.strip(),
                         "error: step 1 (epoch 1): the loss of task 'fit' is NaN (--skip-nonfinite skips such "
                         "steps)")
        # An id outside the embedding's table stops before any step, naming
        # the input; so does one below zero.
        emb = masstest.compile_model("""
model emb {
  input ids: i32[B, 3]
  label c: i32[B]
  h = embedding(ids, vocab: 10, dim: 4)
  task cls { loss = cross_entropy(dense(mean(h, axis: 1), 2), c) }
}
""", work, "emb")
        for bad, sample in ((10, 2), (-3, 1)):
            ids = np.zeros((4, 3), np.int32)
            ids[sample, 1] = bad
            masstest.write_npy_dir(work.file("ids"), {"ids": ids, "c": np.zeros(4, np.int32)})
            run = subprocess.run([emb, "--train", work.file("ids")], capture_output=True, text=True)
            self.assertEqual(run.returncode, 1)
            self.assertEqual(run.stderr.strip(),
                             f"error: train data '{work.file('ids')}/ids.npy': input 'ids' holds the id "
                             f"{bad} at row {sample}; its embedding takes ids in [0, 10)")
        with open(work.file("broken.safetensors"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
        run = subprocess.run([exe, "--init", work.file("broken.safetensors")], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertIn("not a usable safetensors file", run.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
