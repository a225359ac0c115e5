"""Finite differences for every VJP rule: each rule's input comes from its
own parameter, the loss adds one term per rule, and central differences of
the loss (read back from --dump-grads at perturbed parameters) must match
the analytic gradient the compiler derived. Dropout is on, drawn from a
fixed seed, so that every evaluation uses the same mask."""
import os
import re
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

H = 1e-2

# One term per rule. `a NAME` is x shifted by parameter NAME [3, 4]; the
# terms add mean(h * h + h) for each expression h.
TERMS = {
    "neg": "-a",
    "relu": "relu(a)",
    "gelu": "gelu(a)",
    "sigmoid": "sigmoid(a)",
    "tanh": "tanh(a)",
    "silu": "silu(a)",
    "exp": "exp(a)",
    "log": "log(a + 2.0)",
    "sqrt": "sqrt(a + 2.0)",
    "abs": "abs(a)",
    "add": "a + q_add",
    "sub": "q_sub - a",
    "mul": "a * q_mul",
    "div": "a / (q_div + 3.0)",
    "dense2d": "dense(reshape(a, [-1, 12]), 5)",
    "dense3d": "dense(a, 5)",
    "matmul": "matmul(a, q_matmul)",
    "bmm": "matmul(transpose(a, perm: [0, 2, 1]), a)",
    "flatten": "flatten(a) * 2.0",
    "transpose": "transpose(a, perm: [0, 2, 1]) * q_tr",
    "sum": "sum(a, axis: 1, keepdim: true) * a",
    "sum_all": "sum(a)",
    "mean_batch": "mean(a, axis: 0)",
    "mean": "mean(a, axis: [1, 2])",
    "max": "max(a, axis: 2)",
    "softmax": "softmax(a, axis: 1) * 3.0",
    "log_softmax": "log_softmax(a, axis: -1)",
    "concat": "concat(a, tanh(a), axis: 2) * q_cat",
    "concat_mid": "concat(a * 2.0, a, axis: 1)",
    "conv2d": "conv2d(reshape(a, [-1, 1, 3, 4]), 2, kernel: 2, stride: 2, pad: 1)",
    "conv2d_grouped": "conv2d(reshape(a, [-1, 2, 3, 2]), 4, kernel: 2, dilation: 2, pad: 1, groups: 2)",
    "maxpool": "maxpool(reshape(a, [-1, 1, 3, 4]), 2, pad: 1)",
    "avgpool": "avgpool(reshape(a, [-1, 1, 3, 4]), 3, stride: 2, pad: 1)",
    "batchnorm": "batchnorm(a)",
    "batchnorm_4d": "batchnorm(reshape(a, [-1, 2, 3, 2]), eps: 0.01)",
    "dropout": "dropout(a, 0.3)",
}

EXTRA_PARAMS = {"q_add": "f32[4]", "q_sub": "f32[3, 1]", "q_mul": "f32[4]",
                "q_div": "f32[1, 4]", "q_matmul": "f32[4, 2]", "q_tr": "f32[3]",
                "q_cat": "f32[8]"}


def ops_model():
    lines = ["model fd {", "  input x: f32[B, 3, 4]", "  label y: i32[B]", "  label t: f32[B, 3]"]
    for name, ty in EXTRA_PARAMS.items():
        lines.append(f"  {name} = param({ty}, init: zeros)")
    for name, expr in TERMS.items():
        lines.append(f"  p_{name} = param(f32[3, 4], init: zeros)")
        lines.append(f"  h_{name} = {substitute(expr, name)}")
    lines.append("  task ops {")
    total = " + ".join(f"mean(h_{n} * h_{n} + h_{n})" for n in TERMS)
    lines.append(f"    loss = {total}")
    lines.append("  }")
    # Losses as losses, each its own task.
    lines += [
        "  p_ce = param(f32[3, 4], init: zeros)",
        "  task ce { loss = cross_entropy(flatten(x + p_ce), y, smoothing: 0.2) }",
        "  p_mse = param(f32[3, 4], init: zeros)",
        "  task mse { loss = mse(sum(x + p_mse, axis: 2), t) }",
        "  p_l1 = param(f32[3, 4], init: zeros)",
        "  task l1 { loss = l1(mean(x + p_l1, axis: 2), t) }",
        "  p_bce = param(f32[3, 4], init: zeros)",
        "  task bce { loss = bce(max(x + p_bce, axis: 2), t) }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def substitute(expr, name):
    # `a` stands for the shifted input; replace it as a whole word only.
    return re.sub(r"\ba\b", f"(x + p_{name})", expr)


class VjpFiniteDifferences(unittest.TestCase):
    def test_every_rule(self):
        work = masstest.Workdir()
        source = ops_model()
        exe = masstest.compile_model(source, work, "fd")
        rng = np.random.default_rng(7)
        n = 4
        # |x| in [0.2, 1]: far from the kinks of relu, abs and max ties.
        x = (rng.uniform(0.2, 1.0, (n, 3, 4)) * rng.choice([-1, 1], (n, 3, 4))).astype(np.float32)
        y = np.array([3, -1, 0, 11], dtype=np.int32)
        t = rng.uniform(0, 1, (n, 3)).astype(np.float32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y, "t": t})
        shapes = masstest.param_shapes(exe)
        params = {k: (rng.standard_normal(s) * 0.01).astype(np.float32) for k, s in shapes.items()}
        buffers = {k: np.ones(s, np.float32) for k, s in masstest.param_shapes(exe, buffers=True).items()}
        dropout = ["--dropout-seed", "5"]
        base = masstest.dump_grads(exe, work, {**params, **buffers}, work.file("data"), n, dropout)

        def loss_at(p):
            return float(masstest.dump_grads(exe, work, {**p, **buffers}, work.file("data"), n,
                                             dropout)["loss"])

        failures = []
        for name in sorted(shapes):
            grad = base["grad." + name]
            flat = grad.reshape(-1)
            for index in rng.choice(flat.size, size=min(3, flat.size), replace=False):
                plus = {k: v.copy() for k, v in params.items()}
                minus = {k: v.copy() for k, v in params.items()}
                plus[name].reshape(-1)[index] += H
                minus[name].reshape(-1)[index] -= H
                fd = (loss_at(plus) - loss_at(minus)) / (2 * H)
                analytic = float(flat[index])
                if abs(fd - analytic) > 2e-3 + 2e-2 * abs(analytic):
                    failures.append(f"{name}[{index}]: analytic {analytic:.6f}, finite difference {fd:.6f}")
        self.assertFalse(failures, "\n".join(failures))


if __name__ == "__main__":
    unittest.main(verbosity=2)
