"""Gradient parity with PyTorch: weights exported from a PyTorch twin go in
with --init, and --dump-grads must agree with torch.autograd within a
relative error of 1e-4 per tensor; the losses must agree too."""
import os
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

SPEC = os.path.join(os.path.dirname(__file__), "..", "lit", "spec", "fixtures")
TOL = 1e-4

# Many ops in one model (test_many_ops_two_tasks, test_fused_matches_unfused).
ZOO = """
model zoo {
  input x: f32[B, 6, 8]
  label y: i32[B]
  label t: f32[B, 6]
  w = param(f32[8, 8], init: normal(std: 0.3))
  h = matmul(x, w) |> gelu
  a = softmax(h, axis: -1) * silu(h)
  s = transpose(h, perm: [0, 2, 1])
  m = mean(s, axis: 2)
  mx = max(h, axis: 1)
  z = dense(m + mx, 5)
  u = log_softmax(dense(reshape(a, [-1, 48]), 5), axis: 1)
  q = sqrt(abs(z) + 1.0) - log(exp(-abs(u)) + 1.0)
  task cls(weight: 0.7) {
    logits = z + u * q
    loss = cross_entropy(logits, y, smoothing: 0.1)
    metric accuracy(logits, y)
  }
  task reg(weight: 0.3) {
    pred = dense(sum(h, axis: 2) / 8.0, 6) |> tanh
    loss = mse(pred, t) + l1(sigmoid(pred), t)
  }
}
"""


def torch_grads(params, loss_fn):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    losses = loss_fn(tensors)
    total = sum(losses.values()) if isinstance(losses, dict) else losses
    total.backward()
    grads = {k: t.grad.numpy() if t.grad is not None else np.zeros_like(params[k])
             for k, t in tensors.items()}
    return grads, losses, total


class GradParity(unittest.TestCase):
    def check(self, ours, grads, losses, total, task_losses):
        for name, g in grads.items():
            err = masstest.rel_error(ours["grad." + name], g)
            self.assertLess(err, TOL, f"grad.{name}: relative error {err:.2e}")
        self.assertLess(masstest.rel_error(ours["loss"], total.detach().numpy()), TOL)
        for task, loss in task_losses.items():
            self.assertLess(masstest.rel_error(ours["loss." + task], loss.detach().numpy()),
                            TOL, f"loss.{task}")

    def classifier_parity(self, source, name, seed, x_shape, classes, logits, buffers=None):
        """Compiles `source` (input x, label y, one task cls), draws x from
        N(0, 1), labels in [0, classes) and parameters from N(0, 0.3^2)
        (then, with `buffers`, their values from `buffers(rng, shapes)`),
        and compares --dump-grads with torch.autograd on the cross-entropy
        of `logits(X, p)`."""
        work = masstest.Workdir()
        exe = masstest.compile_model(source, work, name)
        rng = np.random.default_rng(seed)
        n = x_shape[0]
        x = rng.standard_normal(x_shape).astype(np.float32)
        y = rng.integers(0, classes, n).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y})
        shapes = masstest.param_shapes(exe)
        params = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
        state = buffers(rng, masstest.param_shapes(exe, buffers=True)) if buffers else {}
        ours = masstest.dump_grads(exe, work, {**params, **state}, work.file("data"), n)

        def loss(p):
            return F.cross_entropy(logits(torch.tensor(x), p), torch.tensor(y, dtype=torch.long))

        grads, total, _ = torch_grads(params, loss)
        self.check(ours, grads, total, total, {"cls": total})

    def test_spec01_mlp(self):
        work = masstest.Workdir()
        with open(os.path.join(SPEC, "01_mlp.mass")) as f:
            exe = masstest.compile_model(f.read(), work, "mlp")
        rng = np.random.default_rng(0)
        image = rng.random((32, 1, 28, 28), dtype=np.float32)
        digit = rng.integers(0, 10, 32).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"image": image, "digit": digit})
        shapes = {"fc1.weight": (256, 784), "fc1.bias": (256,), "fc2.weight": (256, 256),
                  "fc2.bias": (256,), "out.weight": (10, 256), "out.bias": (10,)}
        params = {k: (rng.standard_normal(s) * 0.05).astype(np.float32) for k, s in shapes.items()}
        ours = masstest.dump_grads(exe, work, params, work.file("data"), 32)

        def loss(p):
            x = torch.tensor(image).flatten(1)
            h = F.relu(F.linear(x, p["fc1.weight"], p["fc1.bias"]))
            h = F.relu(F.linear(h, p["fc2.weight"], p["fc2.bias"]))
            out = F.linear(h, p["out.weight"], p["out.bias"])
            return {"classify": F.cross_entropy(out, torch.tensor(digit, dtype=torch.long))}

        grads, losses, total = torch_grads(params, loss)
        self.check(ours, grads, losses, total, losses)
        # Threads split loops, not sums: the gradients are the same bits.
        for threads in ("1", "2"):
            again = masstest.dump_grads(exe, work, params, work.file("data"), 32,
                                        extra=("--threads", threads))
            for name, g in ours.items():
                np.testing.assert_array_equal(again[name], g, err_msg=f"{name} at {threads} threads")

    def test_spec08_lowlevel(self):
        work = masstest.Workdir()
        with open(os.path.join(SPEC, "08_lowlevel.mass")) as f:
            exe = masstest.compile_model(f.read(), work, "logistic")
        rng = np.random.default_rng(1)
        x = rng.standard_normal((64, 8)).astype(np.float32)
        y = (rng.random((64, 1)) > 0.5).astype(np.float32)
        csv = work.file("train.csv")
        with open(csv, "w") as f:
            f.write(",".join([f"f{i}" for i in range(8)] + ["y"]) + "\n")
            for row, target in zip(x, y):
                f.write(",".join(repr(float(v)) for v in row) + f",{target[0]:.0f}\n")
        params = {"w": rng.standard_normal((8, 16)).astype(np.float32) * 0.5,
                  "b": rng.standard_normal(16).astype(np.float32) * 0.1,
                  "v": rng.standard_normal((16, 1)).astype(np.float32) * 0.3}
        ours = masstest.dump_grads(exe, work, params, csv, 64)

        def loss(p):
            h = torch.tanh(torch.tensor(x) @ p["w"] + p["b"])
            gate = torch.sigmoid(h) * h - 0.5 * torch.exp(-h * h)
            logit = gate @ p["v"] / 4.0
            fit = F.binary_cross_entropy_with_logits(logit, torch.tensor(y)) + 1e-4 * (p["w"] * p["w"]).sum()
            return {"fit": fit}

        grads, losses, total = torch_grads(params, loss)
        self.check(ours, grads, losses, total, losses)

    def test_matmul_edges(self):
        """Sizes that cut the matmul kernels' blocks: 13 rows (not a multiple
        of the kernel's rows), 70 and 37 columns (partial vector panels),
        300 steps of k (more than one block of k)."""
        source = """
model edges {
  input x: f32[B, 300]
  label y: i32[B]
  h = dense(x, 70) |> relu
  out = dense(h, 37)
  task cls { loss = cross_entropy(out, y) }
}
"""
        work = masstest.Workdir()
        rng = np.random.default_rng(4)
        n = 13
        x = rng.standard_normal((n, 300)).astype(np.float32)
        y = rng.integers(0, 37, n).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y})
        params = {"h.weight": (70, 300), "h.bias": (70,), "out.weight": (37, 70), "out.bias": (37,)}
        params = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in params.items()}

        def loss(p):
            h = F.relu(F.linear(torch.tensor(x), p["h.weight"], p["h.bias"]))
            out = F.linear(h, p["out.weight"], p["out.bias"])
            return F.cross_entropy(out, torch.tensor(y, dtype=torch.long))

        grads, total, _ = torch_grads(params, loss)
        # The host's vector width, then AVX2's and SSE's.
        for width in ("0", "8", "4"):
            with self.subTest(vector_width=width):
                exe = masstest.compile_model(source, work, "edges" + width,
                                             extra=["--vector-width=" + width])
                ours = masstest.dump_grads(exe, work, params, work.file("data"), n)
                self.check(ours, grads, total, total, {"cls": total})

    def test_two_branches_added(self):
        """Two dense branches added (the add runs inside the second matmul's
        kernel, in place on the first branch's buffer) with a batch that
        leaves a partial group of rows."""
        source = """
model branches {
  input x: f32[B, 6]
  label y: i32[B]
  out = dense(x, 4) + dense(relu(x), 4)
  task cls { loss = cross_entropy(out, y) }
}
"""
        def logits(X, p):
            return (F.linear(X, p["out.0.weight"], p["out.0.bias"])
                    + F.linear(F.relu(X), p["out.1.weight"], p["out.1.bias"]))

        self.classifier_parity(source, "branches", 7, (9, 6), 4, logits)

    def test_concat(self):
        """concat joins branches (as an Inception block does) along the
        feature axis and a middle axis; its gradient splits dy back."""
        source = """
model cat {
  input x: f32[B, 6]
  label y: i32[B]
  a = dense(x, 5) |> tanh
  b = dense(x, 3) |> sigmoid
  h = concat(a, b, x, axis: 1)
  r = concat(reshape(h, [-1, 2, 7]), reshape(x, [-1, 3, 2]) |> transpose(perm: [0, 2, 1]), axis: 2)
  out = dense(h, 4) + dense(flatten(r), 4)
  task cls { loss = cross_entropy(out, y) }
}
"""
        def logits(X, p):
            a = torch.tanh(F.linear(X, p["a.weight"], p["a.bias"]))
            b = torch.sigmoid(F.linear(X, p["b.weight"], p["b.bias"]))
            h = torch.cat([a, b, X], 1)
            r = torch.cat([h.reshape(-1, 2, 7), X.reshape(-1, 3, 2).transpose(1, 2)], 2)
            return (F.linear(h, p["out.0.weight"], p["out.0.bias"])
                    + F.linear(r.flatten(1), p["out.1.weight"], p["out.1.bias"]))

        self.classifier_parity(source, "cat", 6, (9, 6), 4, logits)

    def test_convolutions_and_pools(self):
        """Strided, padded, dilated, grouped and 1x1 convolutions, with and
        without bias, overlapping and padded max and average pools, and the
        global average pool, on an odd image size and a batch that is not a
        multiple of anything."""
        source = """
model conv {
  input x: f32[B, 4, 11, 11]
  label y: i32[B]
  a = conv2d(x, 6, kernel: 3, stride: 2, pad: 1) |> tanh |> maxpool(3, stride: 1, pad: 1)
  b = conv2d(x, 6, kernel: 3, dilation: 2, groups: 2, bias: false) |> sigmoid |> avgpool(3, stride: 2, pad: 1)
  c = conv2d(x, 3, kernel: 1) |> maxpool(2)
  d = conv2d(x, 4, kernel: 5, stride: 3, pad: 2, groups: 4)
  out = dense(flatten(a), 5) + dense(flatten(b), 5) + dense(flatten(global_avgpool(c)), 5) + dense(flatten(d), 5)
  task cls { loss = cross_entropy(out, y) }
}
"""
        def logits(X, p):
            a = F.max_pool2d(torch.tanh(F.conv2d(X, p["a.weight"], p["a.bias"], stride=2, padding=1)),
                             3, stride=1, padding=1)
            b = F.avg_pool2d(torch.sigmoid(F.conv2d(X, p["b.weight"], dilation=2, groups=2)),
                             3, stride=2, padding=1)
            c = F.max_pool2d(F.conv2d(X, p["c.weight"], p["c.bias"]), 2)
            d = F.conv2d(X, p["d.weight"], p["d.bias"], stride=3, padding=2, groups=4)
            return (F.linear(a.flatten(1), p["out.0.weight"], p["out.0.bias"])
                    + F.linear(b.flatten(1), p["out.1.weight"], p["out.1.bias"])
                    + F.linear(c.mean((2, 3)), p["out.2.weight"], p["out.2.bias"])
                    + F.linear(d.flatten(1), p["out.3.weight"], p["out.3.bias"]))

        self.classifier_parity(source, "conv", 8, (7, 4, 11, 11), 5, logits)

    def test_batchnorm_and_dropout(self):
        """Batch norm in training mode (batch statistics, through a conv and
        over a dense layer's features) and dropout, which --dump-grads turns
        off; the running statistics, loaded with the weights, do not matter
        in training mode."""
        source = """
block unit(x, c) {
  conv = conv2d(x, c, kernel: 3, pad: 1, bias: false)
  bn = batchnorm(conv, eps: 1e-3)
  return relu(bn)
}

model bn {
  input x: f32[B, 3, 6, 6]
  label y: i32[B]
  f = x |> unit(4) |> maxpool(2) |> unit(5)
  h = dense(flatten(f), 8, bias: false)
  n = batchnorm(h, momentum: 0.3)
  out = dense(dropout(tanh(n), 0.4), 3)
  task cls { loss = cross_entropy(out, y) }
}
"""
        def stats(rng, buffers):
            self.assertEqual(sorted(buffers), ["f.0.bn.running_mean", "f.0.bn.running_var",
                                               "f.1.bn.running_mean", "f.1.bn.running_var",
                                               "n.running_mean", "n.running_var"])
            return {k: rng.uniform(0.5, 1.5, s).astype(np.float32) for k, s in buffers.items()}

        def logits(X, p):
            def unit(h, name, c):
                h = F.conv2d(h, p[name + ".conv.weight"], padding=1)
                h = F.batch_norm(h, None, None, p[name + ".bn.weight"], p[name + ".bn.bias"],
                                 training=True, eps=1e-3)
                return F.relu(h)
            f = unit(F.max_pool2d(unit(X, "f.0", 4), 2), "f.1", 5)
            h = F.linear(f.flatten(1), p["h.weight"])
            h = F.batch_norm(h, None, None, p["n.weight"], p["n.bias"], training=True)
            return F.linear(torch.tanh(h), p["out.weight"], p["out.bias"])

        self.classifier_parity(source, "bn", 9, (6, 3, 6, 6), 3, logits, buffers=stats)

    def parity(self, source, name, data, batch, draw, loss):
        """Compiles `source`, writes `data`, draws the parameters with
        `draw(name, shape)`, and compares --dump-grads with torch.autograd
        on `loss(p)` (a dict of task losses). Returns the shapes."""
        work = masstest.Workdir()
        exe = masstest.compile_model(source, work, name)
        masstest.write_npy_dir(work.file("data"), data)
        shapes = masstest.param_shapes(exe)
        params = {k: draw(k, s).astype(np.float32) for k, s in shapes.items()}
        ours = masstest.dump_grads(exe, work, params, work.file("data"), batch)
        grads, losses, total = torch_grads(params, loss)
        self.check(ours, grads, losses, total, losses)
        return {k: list(s) for k, s in shapes.items()}

    @staticmethod
    def sequence_loss(logits, y, classes):
        """Cross-entropy over a sequence's positions, -1 ignored."""
        return F.cross_entropy(logits.reshape(-1, classes),
                               torch.tensor(y, dtype=torch.long).reshape(-1), ignore_index=-1)

    def test_sequence_layernorm_gelu_tanh(self):
        """Layer norm over the last axis (its weight and bias drawn, not
        ones and zeros), GPT-2's tanh GELU, and cross-entropy and accuracy
        over a sequence's positions with -1 labels ignored, as PyTorch on
        the flattened [B*T, C] with ignore_index=-1."""
        source = """
model seq {
  input x: f32[B, 5, 8]
  label y: i32[B, 5]
  h = layernorm(x, eps: 1e-4)
  f = h |> dense(12) |> gelu(approximate: "tanh") |> dense(8)
  n = layernorm(h + f)
  task lm {
    logits = dense(n, 7)
    loss = cross_entropy(logits, y)
    metric accuracy(logits, y)
  }
}
"""
        rng = np.random.default_rng(21)
        x = rng.standard_normal((6, 5, 8)).astype(np.float32)
        y = rng.integers(0, 7, (6, 5)).astype(np.int32)
        y[rng.random((6, 5)) < 0.3] = -1

        def loss(p):
            h = F.layer_norm(torch.tensor(x), (8,), p["h.weight"], p["h.bias"], eps=1e-4)
            f = F.linear(h, p["f.0.weight"], p["f.0.bias"])
            f = F.linear(F.gelu(f, approximate="tanh"), p["f.1.weight"], p["f.1.bias"])
            n = F.layer_norm(h + f, (8,), p["n.weight"], p["n.bias"])
            return {"lm": self.sequence_loss(F.linear(n, p["lm.logits.weight"], p["lm.logits.bias"]), y, 7)}

        shapes = self.parity(source, "seq", {"x": x, "y": y}, 6,
                             lambda k, s: rng.standard_normal(s) * 0.5 + (k == "h.weight"), loss)
        self.assertEqual((shapes["h.weight"], shapes["n.bias"]), ([8], [8]))

    def test_embedding_positions(self):
        """Token and position embeddings (ids repeat within and across
        samples, so rows of the table's gradient add up), as
        F.embedding."""
        source = """
model emb {
  input ids: i32[B, 6]
  label y: i32[B, 6]
  e = embedding(ids, vocab: 11, dim: 8, init: normal(std: 0.5))
  pos = param(f32[6, 8], init: normal(std: 0.02))
  h = layernorm(e + pos) |> dense(8) |> tanh
  task lm {
    logits = dense(h, 11)
    loss = cross_entropy(logits, y)
  }
}
"""
        rng = np.random.default_rng(5)
        ids = rng.integers(0, 11, (7, 6)).astype(np.int32)
        ids[0, :3] = 10  # the last row, three times
        y = rng.integers(-1, 11, (7, 6)).astype(np.int32)

        def loss(p):
            h = F.embedding(torch.tensor(ids, dtype=torch.long), p["e.weight"]) + p["pos"]
            h = F.layer_norm(h, (8,), p["h.0.weight"], p["h.0.bias"])
            h = torch.tanh(F.linear(h, p["h.1.weight"], p["h.1.bias"]))
            return {"lm": self.sequence_loss(F.linear(h, p["lm.logits.weight"], p["lm.logits.bias"]), y, 11)}

        shapes = self.parity(source, "emb", {"ids": ids, "y": y}, 7,
                             lambda k, s: rng.standard_normal(s) * 0.5, loss)
        self.assertEqual(shapes["e.weight"], [11, 8])

    def test_tied_output_layer(self):
        """dense(share:) uses the embedding's table as its weight (GPT-2's
        tied output layer): one parameter, whose gradient is the sum of
        both uses'."""
        source = """
model tie {
  input ids: i32[B, 6]
  label y: i32[B, 6]
  wte = embedding(ids, vocab: 11, dim: 8)
  h = layernorm(wte) |> dense(8) |> gelu(approximate: "tanh")
  task lm {
    logits = dense(h, 11, bias: false, share: "wte.weight")
    loss = cross_entropy(logits, y)
  }
}
"""
        rng = np.random.default_rng(8)
        ids = rng.integers(0, 11, (5, 6)).astype(np.int32)
        y = rng.integers(-1, 11, (5, 6)).astype(np.int32)

        def loss(p):
            h = F.embedding(torch.tensor(ids, dtype=torch.long), p["wte.weight"])
            h = F.layer_norm(h, (8,), p["h.0.weight"], p["h.0.bias"])
            h = F.gelu(F.linear(h, p["h.1.weight"], p["h.1.bias"]), approximate="tanh")
            return {"lm": self.sequence_loss(F.linear(h, p["wte.weight"]), y, 11)}

        shapes = self.parity(source, "tie", {"ids": ids, "y": y}, 5,
                             lambda k, s: rng.standard_normal(s) * 0.5, loss)
        self.assertEqual(sorted(shapes), ["h.0.bias", "h.0.weight", "h.1.bias", "h.1.weight",
                                          "wte.weight"])

    @staticmethod
    def mha(p, name, q, k, v, heads, causal=False):
        """nn.MultiheadAttention's forward (batch first) with the
        parameters `p` under `name`."""
        d = q.shape[-1]
        mask = None
        if causal:
            t = q.shape[1]
            mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        out, _ = F.multi_head_attention_forward(
            q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), d, heads,
            p[name + ".in_proj_weight"], p[name + ".in_proj_bias"], None, None, False, 0.0,
            p[name + ".out_proj.weight"], p[name + ".out_proj.bias"], training=True,
            need_weights=False, attn_mask=mask)
        return out.transpose(0, 1)

    def test_attention_self_and_cross(self):
        """Causal self-attention and cross-attention with a longer key
        sequence, as nn.MultiheadAttention: the same parameter names and
        layout, the same values and gradients."""
        source = """
model att {
  input x: f32[B, 10, 8]
  input m: f32[B, 70, 8]
  label y: i32[B, 10]
  h = layernorm(x)
  s = attention(h, h, h, heads: 2, causal: true)
  c = attention(x + s, m, m * 0.5, heads: 4)
  task lm {
    logits = dense(x + s + c, 5)
    loss = cross_entropy(logits, y)
  }
}
"""
        rng = np.random.default_rng(31)
        x = rng.standard_normal((3, 10, 8)).astype(np.float32)
        m = rng.standard_normal((3, 70, 8)).astype(np.float32)
        y = rng.integers(-1, 5, (3, 10)).astype(np.int32)

        def loss(p):
            X, M = torch.tensor(x), torch.tensor(m)
            h = F.layer_norm(X, (8,), p["h.weight"], p["h.bias"])
            s = self.mha(p, "s", h, h, h, 2, causal=True)
            c = self.mha(p, "c", X + s, M, M * 0.5, 4)
            return {"lm": self.sequence_loss(F.linear(X + s + c, p["lm.logits.weight"],
                                                      p["lm.logits.bias"]), y, 5)}

        shapes = self.parity(source, "att", {"x": x, "m": m, "y": y}, 3,
                             lambda k, s: rng.standard_normal(s) * 0.5, loss)
        self.assertEqual((shapes["s.in_proj_weight"], shapes["s.in_proj_bias"],
                          shapes["s.out_proj.weight"], shapes["s.out_proj.bias"]),
                         ([24, 8], [24], [8, 8], [8]))

    def test_fused_matches_unfused(self):
        """Fusion changes no result: the programs built with and without
        --fuse give the same losses and gradients within 1e-5."""
        work = masstest.Workdir()
        rng = np.random.default_rng(5)
        n = 24
        data = {"x": rng.standard_normal((n, 6, 8)).astype(np.float32),
                "y": rng.integers(0, 5, n).astype(np.int32),
                "t": rng.standard_normal((n, 6)).astype(np.float32)}
        masstest.write_npy_dir(work.file("data"), data)
        fused = masstest.compile_model(ZOO, work, "fused")
        unfused = masstest.compile_model(ZOO, work, "unfused", extra=["--fuse=false"])
        shapes = masstest.param_shapes(fused)
        params = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
        a = masstest.dump_grads(fused, work, params, work.file("data"), n)
        b = masstest.dump_grads(unfused, work, params, work.file("data"), n)
        self.assertEqual(set(a), set(b))
        for name in a:
            err = masstest.rel_error(a[name], b[name])
            self.assertLess(err, 1e-5, f"{name}: relative error {err:.2e}")

    def test_many_ops_two_tasks(self):
        """Ops beyond the spec files: batched matmul, gelu, silu, softmax,
        log_softmax, transpose, mean/max/sum over axes, reshape, division,
        sqrt/abs/log/exp, smoothing, unlabelled samples, mse, l1 and two
        weighted tasks."""
        work = masstest.Workdir()
        exe = masstest.compile_model(ZOO, work, "zoo")
        rng = np.random.default_rng(2)
        n = 24
        x = rng.standard_normal((n, 6, 8)).astype(np.float32)
        y = rng.integers(0, 5, n).astype(np.int32)
        y[::5] = -1  # unlabelled samples add nothing
        t = rng.standard_normal((n, 6)).astype(np.float32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y, "t": t})
        shapes = masstest.param_shapes(exe)
        expected = {"w", "z.weight", "z.bias", "u.weight", "u.bias", "reg.pred.weight", "reg.pred.bias"}
        self.assertEqual(set(shapes), expected)
        params = {k: (rng.standard_normal(s) * 0.3).astype(np.float32) for k, s in shapes.items()}
        ours = masstest.dump_grads(exe, work, params, work.file("data"), n)

        def loss(p):
            X = torch.tensor(x)
            h = F.gelu(X @ p["w"])
            a = torch.softmax(h, -1) * F.silu(h)
            s = h.transpose(1, 2)
            m = s.mean(2)
            mx = torch.amax(h, 1)
            z = F.linear(m + mx, p["z.weight"], p["z.bias"])
            u = torch.log_softmax(F.linear(a.reshape(-1, 48), p["u.weight"], p["u.bias"]), 1)
            q = torch.sqrt(z.abs() + 1.0) - torch.log(torch.exp(-u.abs()) + 1.0)
            logits = z + u * q
            cls = F.cross_entropy(logits, torch.tensor(y, dtype=torch.long), ignore_index=-1,
                                  label_smoothing=0.1)
            pred = torch.tanh(F.linear(h.sum(2) / 8.0, p["reg.pred.weight"], p["reg.pred.bias"]))
            T = torch.tensor(t)
            reg = F.mse_loss(pred, T) + F.l1_loss(torch.sigmoid(pred), T)
            return {"cls": cls, "reg": reg}

        # The total is weighted by the tasks' weights.
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        parts = loss(tensors)
        total = 0.7 * parts["cls"] + 0.3 * parts["reg"]
        total.backward()
        weighted = {k: v.grad.numpy() for k, v in tensors.items()}
        self.check(ours, weighted, parts, total, parts)


if __name__ == "__main__":
    unittest.main(verbosity=2)
