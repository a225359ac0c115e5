"""Finite differences for every VJP rule, with respect to every operand.

Each rule is a task of its own. Its operand is a data input shifted by a
parameter of the task (`a = x + p`), so the gradient of `p` is the rule's
gradient with respect to its input, summed over the batch; its other
operands (a second tensor, a layer's weight and bias) are parameters of the
task too. Every parameter is drawn at a scale of one, so every gradient
entry is of order one, far above the rounding noise of the differences.

Central differences of each task's own loss (`loss.TASK` from --dump-grads)
are compared with the analytic gradient entry by entry, with a tolerance
relative to the largest entry of that gradient tensor: a rule that returns
zero, a wrong sign, a wrong scale or a transposed gradient fails. A task's
parameters touch no other task's loss, so one run perturbs one entry of
every task at once. Dropout is on, drawn from a fixed seed, so every
evaluation uses the same mask.

The language and its lowering are f32 only (the spec's types are f32 and
i32), so the differences are taken in f32: per-task losses of order ten,
steps of 1e-2, and inputs kept at least MARGIN away from every kink (relu,
abs, l1) and every tie (max, max pooling), so no step crosses one."""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

H = 1e-2
MARGIN = 0.05
# |fd - analytic| <= RTOL * (largest |analytic| of the tensor).
RTOL = 5e-3
# Entries checked per tensor (all of them when the tensor is smaller).
ENTRIES = 40
BATCH = 4

# The two data inputs an operand is made from.
X = "x"  # f32[B, 3, 4]
Z = "z"  # f32[B, 2, 5, 6], for the image ops
SHAPES = {X: (3, 4), Z: (2, 5, 6)}


def away_from_zero(a, _):
    return np.abs(a).min() >= MARGIN


def above(low):
    return lambda a, _: a.min() >= low


def top_gap(values, axis):
    """The gap between the largest and second largest along `axis`."""
    s = np.sort(values, axis=axis)
    return np.take(s, -1, axis=axis) - np.take(s, -2, axis=axis)


def distinct_max(axis):
    return lambda a, _: top_gap(a, axis).min() >= MARGIN


def distinct_window_max(kernel, stride, pad):
    """Every max-pooling window of [B, C, H, W] has one clear maximum."""
    def ok(a, _):
        padded = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
        rows = (a.shape[2] + 2 * pad - kernel) // stride + 1
        cols = (a.shape[3] + 2 * pad - kernel) // stride + 1
        for i in range(rows):
            for j in range(cols):
                window = padded[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
                window = window.reshape(a.shape[0], a.shape[1], -1)
                if top_gap(window, 2).min() < MARGIN:
                    return False
        return True
    return ok


def l1_away_from_target(a, params):
    pred = a.mean(axis=2)
    return np.abs(pred - (T + params["q"])).min() >= MARGIN


# name: (operand input, expression of `a`, extra parameters, condition on
# the operand's value (and the task's parameters), whether the expression
# is the task's loss itself). Otherwise the loss is sum(h^3 + h): it weights
# the result's entries unevenly, and by no affine function of h either, so
# rules with invariances are seen (softmax's gradient vanishes under a
# uniform weighting; batch norm's, under any weighting affine in its output).
RULES = {
    "neg": (X, "-a", {}, None, False),
    "relu": (X, "relu(a)", {}, away_from_zero, False),
    "gelu": (X, "gelu(a)", {}, None, False),
    "gelu_tanh": (X, 'gelu(a, approximate: "tanh")', {}, None, False),
    "sigmoid": (X, "sigmoid(a)", {}, None, False),
    "tanh": (X, "tanh(a)", {}, None, False),
    "silu": (X, "silu(a)", {}, None, False),
    "exp": (X, "exp(a)", {}, None, False),
    "log": (X, "log(a + 2.0)", {}, above(-1.5), False),
    "sqrt": (X, "sqrt(a + 2.0)", {}, above(-1.5), False),
    "abs": (X, "abs(a)", {}, away_from_zero, False),
    # Both operands of each binary op, broadcast on either side.
    "add": (X, "a + q", {"q": "f32[4]"}, None, False),
    "add_left": (X, "q + a", {"q": "f32[3, 1]"}, None, False),
    "sub": (X, "a - q", {"q": "f32[4]"}, None, False),
    "sub_left": (X, "q - a", {"q": "f32[3, 1]"}, None, False),
    "mul": (X, "a * q", {"q": "f32[4]"}, None, False),
    "mul_left": (X, "q * a", {"q": "f32[3, 1]"}, None, False),
    "div": (X, "a / (q + 3.0)", {"q": "f32[1, 4]"}, None, False),
    "div_by": (X, "q / (a + 3.0)", {"q": "f32[3, 4]"}, None, False),
    # Linear algebra: input, weight and bias; both sides of a product.
    "dense2d": (X, "dense(reshape(a, [-1, 12]), 5)", {}, None, False),
    "dense3d": (X, "dense(a, 5)", {}, None, False),
    "dense_nobias": (X, "dense(a, 3, bias: false)", {}, None, False),
    "matmul": (X, "matmul(a, q)", {"q": "f32[4, 2]"}, None, False),
    "matmul_left": (X, "matmul(q, a)", {"q": "f32[2, 3]"}, None, False),
    "bmm": (X, "matmul(a, transpose(x, perm: [0, 2, 1]) * q)", {"q": "f32[4, 3]"}, None, False),
    # Shapes.
    "flatten": (X, "flatten(a) * q", {"q": "f32[12]"}, None, False),
    "reshape": (X, "reshape(a, [-1, 4, 3]) * q", {"q": "f32[4, 3]"}, None, False),
    "transpose": (X, "transpose(a, perm: [0, 2, 1]) * q", {"q": "f32[3]"}, None, False),
    "transpose4d": (Z, "transpose(a, perm: [0, 2, 3, 1]) * q", {"q": "f32[2]"}, None, False),
    "concat": (X, "concat(a, x * q, axis: 2) * r", {"q": "f32[3, 4]", "r": "f32[8]"}, None, False),
    "concat_mid": (X, "concat(x * q, a, axis: 1) * r", {"q": "f32[3, 4]", "r": "f32[4]"}, None, False),
    # Reductions and normalised exponentials.
    "sum": (X, "sum(a, axis: 1, keepdim: true) * a", {}, None, False),
    "sum_all": (X, "sum(a)", {}, None, False),
    "mean_batch": (X, "mean(a, axis: 0) * q", {"q": "f32[4]"}, None, False),
    "mean": (X, "mean(a, axis: [1, 2])", {}, None, False),
    "max": (X, "max(a, axis: 2)", {}, distinct_max(2), False),
    "max_mid": (X, "max(a, axis: 1, keepdim: true) * q", {"q": "f32[3, 4]"}, distinct_max(1), False),
    "softmax": (X, "softmax(a, axis: 1) * 3.0", {}, None, False),
    "log_softmax": (X, "log_softmax(a, axis: -1)", {}, None, False),
    # Images: convolutions (input, weight, bias), pools.
    "conv2d": (Z, "conv2d(a, 3, kernel: 3, stride: 2, pad: 1)", {}, None, False),
    "conv2d_grouped": (Z, "conv2d(a, 4, kernel: 2, dilation: 2, pad: 1, groups: 2)", {}, None, False),
    "conv2d_strided_dilated": (Z, "conv2d(a, 2, kernel: 3, stride: 2, dilation: 2, pad: 2, bias: false)",
                               {}, None, False),
    "conv2d_1x1": (Z, "conv2d(a, 3, kernel: 1)", {}, None, False),
    "maxpool": (Z, "maxpool(a, 2, pad: 1)", {}, distinct_window_max(2, 2, 1), False),
    "maxpool_overlap": (Z, "maxpool(a, 3, stride: 2, pad: 1)", {}, distinct_window_max(3, 2, 1), False),
    "avgpool": (Z, "avgpool(a, 3, stride: 2, pad: 1)", {}, None, False),
    "avgpool_plain": (Z, "avgpool(a, 2)", {}, None, False),
    "global_avgpool": (Z, "global_avgpool(a) * q", {"q": "f32[2, 1, 1]"}, None, False),
    "batchnorm": (X, "batchnorm(a)", {}, None, False),
    "batchnorm_4d": (Z, "batchnorm(a, eps: 0.01)", {}, None, False),
    "layernorm": (X, "layernorm(a)", {}, None, False),
    # A table's gradient: rows added where ids repeat (k holds repeats).
    "embedding": (X, "embedding(k, vocab: 5, dim: 4) * a", {}, None, False),
    "layernorm_4d": (Z, "layernorm(a, eps: 0.01) * q", {"q": "f32[6]"}, None, False),
    # Attention: the query, key and value paths and the four parameters;
    # causal self-attention, and cross-attention with 15 keys.
    "attention": (X, "attention(a, a, a, heads: 2, causal: true)", {}, None, False),
    "attention_cross": (X, "attention(a, reshape(z, [-1, 15, 4]), reshape(z, [-1, 15, 4]) * 0.5, heads: 2)",
                        {}, None, False),
    "attention_kv": (Z, "attention(x, reshape(a, [-1, 15, 4]), reshape(a, [-1, 15, 4]), heads: 1)",
                     {}, None, False),
    "dropout": (X, "dropout(a, 0.3)", {}, None, False),
    # Losses: logits, predictions and targets.
    "cross_entropy": (X, "cross_entropy(flatten(a), y, smoothing: 0.2)", {}, None, True),
    "cross_entropy_plain": (X, "cross_entropy(flatten(a) * 2.0, y)", {}, None, True),
    "cross_entropy_seq": (X, "cross_entropy(a * 2.0, s, smoothing: 0.1)", {}, None, True),
    "mse": (X, "mse(sum(a, axis: 2), t + q)", {"q": "f32[3]"}, None, True),
    "l1": (X, "l1(mean(a, axis: 2), t + q)", {"q": "f32[3]"}, l1_away_from_target, True),
    "bce": (X, "bce(mean(a, axis: 2) * 3.0, t + q)", {"q": "f32[3]"}, None, True),
}

# The data, fixed: |x|, |z| in [0.2, 1]; labels with an unlabelled sample.
_data = np.random.default_rng(7)


def _signed(shape):
    return (_data.uniform(0.2, 1.0, shape) * _data.choice([-1, 1], shape)).astype(np.float32)


XS = _signed((BATCH, 3, 4))
ZS = _signed((BATCH, 2, 5, 6))
Y = np.array([3, -1, 0, 11], dtype=np.int32)
# A sequence's labels: [B, 3] positions of 4 classes, some unlabelled.
S = np.array([[0, 3, -1], [2, -1, -1], [1, 1, 3], [-1, 0, 2]], dtype=np.int32)
# Ids into a table of 5 rows, with repeats within and across samples.
K = np.array([[4, 0, 4], [2, 2, 1], [0, 3, 4], [1, 1, 1]], dtype=np.int32)
T = _data.uniform(0, 1, (BATCH, 3)).astype(np.float32)


def ops_model():
    lines = ["model fd {", "  input x: f32[B, 3, 4]", "  input z: f32[B, 2, 5, 6]", "  input k: i32[B, 3]",
             "  label y: i32[B]", "  label t: f32[B, 3]", "  label s: i32[B, 3]"]
    for name, (source, expr, extra, _, is_loss) in RULES.items():
        dims = ", ".join(str(d) for d in SHAPES[source])
        lines.append(f"  task {name} {{")
        lines.append(f"    p = param(f32[{dims}], init: zeros)")
        for q, ty in extra.items():
            lines.append(f"    {q} = param({ty}, init: zeros)")
        lines.append(f"    a = {source} + p")
        if is_loss:
            lines.append(f"    loss = {expr}")
        else:
            lines.append(f"    h = {expr}")
            lines.append("    loss = sum(h * h * h + h)")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_parameters(shapes, rng):
    """Every parameter at a scale of one: each task's shift `p` uniform in
    [-0.8, 0.8] (redrawn, with the task's other parameters, until its
    operand meets the rule's condition); the others of magnitude in
    [0.5, 1.5] with random signs."""
    params = {}
    for name, (source, _, _, condition, _) in RULES.items():
        mine = {k: s for k, s in shapes.items() if k.startswith(name + ".")}
        assert name + ".p" in mine, f"no shift parameter for {name}: {sorted(mine)}"
        for _ in range(10000):
            drawn = {}
            for k, s in mine.items():
                if k == name + ".p":
                    drawn[k] = rng.uniform(-0.8, 0.8, s).astype(np.float32)
                else:
                    drawn[k] = (rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s)).astype(np.float32)
            a = (XS if source == X else ZS) + drawn[name + ".p"]
            local = {k[len(name) + 1:]: v for k, v in drawn.items()}
            if condition is None or condition(a, local):
                break
        else:
            raise AssertionError(f"could not draw parameters for {name} away from its kinks")
        params.update(drawn)
    return params


class VjpFiniteDifferences(unittest.TestCase):
    def test_every_rule(self):
        work = masstest.Workdir()
        exe = masstest.compile_model(ops_model(), work, "fd")
        masstest.write_npy_dir(work.file("data"), {"x": XS, "z": ZS, "k": K, "y": Y, "t": T, "s": S})
        rng = np.random.default_rng(11)
        shapes = masstest.param_shapes(exe)
        params = draw_parameters(shapes, rng)
        buffers = {k: np.ones(s, np.float32) for k, s in masstest.param_shapes(exe, buffers=True).items()}
        dropout = ["--dropout-seed", "5"]

        def run(p):
            return masstest.dump_grads(exe, work, {**p, **buffers}, work.file("data"), BATCH, dropout)

        base = run(params)
        # Each task's queue of (parameter, flat index) to perturb.
        queues = {}
        for task in RULES:
            queue = []
            for name in sorted(k for k in shapes if k.startswith(task + ".")):
                size = int(np.prod(shapes[name], dtype=np.int64))
                picked = rng.choice(size, size=min(ENTRIES, size), replace=False)
                queue += [(name, int(i)) for i in sorted(picked)]
            queues[task] = queue
        fd = {name: {} for name in shapes}
        for round_ in range(max(len(q) for q in queues.values())):
            moves = [(task, q[round_]) for task, q in queues.items() if round_ < len(q)]
            losses = []
            for sign in (1, -1):
                moved = {k: v.copy() for k, v in params.items()}
                for _, (name, index) in moves:
                    moved[name].reshape(-1)[index] += sign * H
                losses.append(run(moved))
            for task, (name, index) in moves:
                key = "loss." + task
                fd[name][index] = (float(losses[0][key]) - float(losses[1][key])) / (2 * H)

        failures, worst = [], 0.0
        for name in sorted(shapes):
            analytic = base["grad." + name].reshape(-1)
            scale = float(np.abs(analytic).max())
            checked = fd[name]
            scale = max(scale, max(abs(v) for v in checked.values()))
            if scale < 0.05:
                failures.append(f"{name}: gradient too small to check ({scale:.3g})")
                continue
            errors = {i: abs(v - float(analytic[i])) / scale for i, v in checked.items()}
            worst = max(worst, *errors.values())
            if os.environ.get("FD_VERBOSE"):  # each tensor's margin
                print(f"{name}: scale {scale:.3g}, largest error {max(errors.values()):.2e}")
            failures += [f"{name}[{i}]: analytic {analytic[i]:.6f}, finite difference {checked[i]:.6f} "
                         f"(error {e:.2e} of the tensor's scale {scale:.3g})"
                         for i, e in errors.items() if e > RTOL]
        checks = sum(len(v) for v in fd.values())
        print(f"{checks} entries of {len(shapes)} tensors over {len(RULES)} rules; "
              f"largest error {worst:.2e} of a tensor's scale")
        self.assertFalse(failures, "\n".join(failures))


if __name__ == "__main__":
    unittest.main(verbosity=2)
