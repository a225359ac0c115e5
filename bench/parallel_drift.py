"""How far one process's and two processes' training drift apart: Mass under
mpirun against PyTorch splitting the same batch in two.

Data-parallel training sums each step's batch reductions in another order
than one process does (two halves, then the halves' sums), so the two runs
differ by rounding after one step. Whether that stays rounding depends on
the model: a ReLU or a max pool turns a rounding difference into a
different gradient whenever one of the step's values sits within it of the
kink or of a tie. This measures it on spec 02's layers (two convolutions
with batch norm over the whole batch, as SyncBatchNorm, ReLU and max
pooling, then two dense layers), 50 steps of SGD with Nesterov momentum on
MNIST, batch 64, and on the same layers with tanh and average pooling:

- Mass: spec 02 without dropout, augmentation, smoothing, schedule,
  clipping and weight decay (what PyTorch's twin leaves out), on 1 process
  and under `mpirun -np 2`, its own shuffled batches;
- PyTorch (Debian's python3-torch): the same layers, the gradient of the
  whole batch's mean loss taken at once and as the sum of the two halves'
  (batch norm's statistics summed from the halves, as SyncBatchNorm does),
  from Mass's starting weights, on MNIST's first batches in order.

Mass starts from given weights, and runs a third time on one process from
those weights moved by one unit in the last place: the drift that rounding
alone brings. Then on 1 and 2 processes with `--replicas 4`, whose sums
over the batch add in one order for any N. Prints, for each, the largest over the parameter tensors of
the norm of the difference over the norm of the one-process tensor.

usage: /usr/bin/python3 bench/parallel_drift.py
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
import masstest  # noqa: E402

MASSC = os.path.join(ROOT, "build", "bin", "massc")
MNIST = os.path.join(ROOT, "examples", "data", "mnist")
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures", "02_cnn.mass")
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
STEPS, BATCH = 50, 64


def mass_source(smooth):
    with open(SPEC) as f:
        source = f.read()
    source = source.replace("dropout(relu(fc), 0.25)", "relu(fc)")
    source = re.sub(r"\n  augment .*", "", source)
    source = re.sub(r"\n  schedule .*", "", source)
    source = re.sub(r"\n  clip_grad_norm .*", "", source)
    source = source.replace("weight_decay: 5e-4", "weight_decay: 0")
    source = source.replace("cross_entropy(head, digit, smoothing: 0.05)",
                            "cross_entropy(head, digit)")
    if smooth:
        source = re.sub(r"\bmaxpool\b", "avgpool", re.sub(r"\brelu\b", "tanh", source))
    return source


SHAPES = {"features.0.conv.weight": (32, 1, 3, 3), "features.1.conv.weight": (64, 32, 3, 3),
          "fc.weight": (128, 3136), "head.weight": (10, 128)}


def start_weights(nudge):
    """Starting weights (uniform, PyTorch's default scale), each moved by
    `nudge` units in the last place (batch norm: weight 1, bias 0)."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in SHAPES.items():
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        tensors[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    tensors["fc.bias"] = np.zeros(128, np.float32)
    tensors["head.bias"] = np.zeros(10, np.float32)
    for k, c in (("0", 32), ("1", 64)):
        tensors[f"features.{k}.bn.weight"] = np.ones(c, np.float32)
        tensors[f"features.{k}.bn.bias"] = np.zeros(c, np.float32)
        tensors[f"features.{k}.bn.running_mean"] = np.zeros(c, np.float32)
        tensors[f"features.{k}.bn.running_var"] = np.ones(c, np.float32)
    if nudge:
        for name in SHAPES:
            tensors[name] = np.nextafter(tensors[name], np.float32(np.inf))
    return tensors


def mass_drift(work, smooth):
    """The drift of 2 processes from 1, of 1 process from 1 whose starting
    weights are one unit in the last place apart, and of 2 processes from 1
    with --replicas 4."""
    name = "smooth" if smooth else "relu"
    src = os.path.join(work, name + ".mass")
    with open(src, "w") as f:
        f.write(mass_source(smooth))
    exe = os.path.join(work, name)
    subprocess.run([MASSC, src, "-o", exe, "-O3"], check=True)
    for nudge in (0, 1):
        masstest.write_safetensors(os.path.join(work, f"start{nudge}.safetensors"),
                                   start_weights(nudge))
    params = []
    for n, nudge, extra in ((1, 0, []), (2, 0, []), (1, 1, []),
                            (1, 0, ["--replicas", "4"]), (2, 0, ["--replicas", "4"])):
        ckpt = os.path.join(work, f"{name}{n}{nudge}{len(extra)}")
        launch = [exe] if n == 1 else ["mpirun", "-np", "2", "--oversubscribe", exe]
        subprocess.run(launch + ["--train", os.path.join(MNIST, "train"),
                                 "--val", os.path.join(MNIST, "val"), "--steps", str(STEPS),
                                 "--val-every", str(STEPS), "--checkpoint-dir", ckpt,
                                 "--init", os.path.join(work, f"start{nudge}.safetensors"),
                                 *extra],
                       cwd=work, env=ENV, check=True, capture_output=True)
        params.append(masstest.read_safetensors(os.path.join(ckpt, "last.safetensors")))
    def drift(a, b):
        return max(masstest.rel_error(b[k], v) for k, v in a.items() if "running" not in k)

    return drift(params[0], params[1]), drift(params[0], params[2]), drift(params[3], params[4])


def torch_drift(smooth):
    torch.set_num_threads(2)
    act = torch.tanh if smooth else F.relu
    pool = (lambda x: F.avg_pool2d(x, 2)) if smooth else (lambda x: F.max_pool2d(x, 2))
    images = np.load(os.path.join(MNIST, "train", "image.npy"))[:BATCH * STEPS]
    digits = np.load(os.path.join(MNIST, "train", "digit.npy"))[:BATCH * STEPS]

    def start():
        # Mass's starting weights, under the twin's names.
        w = start_weights(0)
        names = {"c1": "features.0.conv.weight", "c2": "features.1.conv.weight",
                 "g1": "features.0.bn.weight", "b1": "features.0.bn.bias",
                 "g2": "features.1.bn.weight", "b2": "features.1.bn.bias",
                 "fw": "fc.weight", "fb": "fc.bias", "hw": "head.weight", "hb": "head.bias"}
        return {k: torch.from_numpy(w[v].copy()).requires_grad_() for k, v in names.items()}

    def batch_norm(parts, weight, bias):
        # The whole batch's statistics from the parts' sums.
        count = sum(p.shape[0] * p.shape[2] * p.shape[3] for p in parts)
        mean = sum(p.sum((0, 2, 3)) for p in parts) / count
        var = sum(((p - mean[:, None, None]) ** 2).sum((0, 2, 3)) for p in parts) / count
        scale = weight / torch.sqrt(var + 1e-5)
        return [(p - mean[:, None, None]) * scale[:, None, None] + bias[:, None, None]
                for p in parts]

    def run(parts):
        p = start()
        opt = torch.optim.SGD(p.values(), lr=0.05, momentum=0.9, nesterov=True)
        for s in range(STEPS):
            x = torch.from_numpy(images[s * BATCH:(s + 1) * BATCH])
            y = torch.from_numpy(digits[s * BATCH:(s + 1) * BATCH]).long()
            h = [F.conv2d(a, p["c1"], padding=1) for a in x.chunk(parts)]
            h = [pool(act(a)) for a in batch_norm(h, p["g1"], p["b1"])]
            h = [F.conv2d(a, p["c2"], padding=1) for a in h]
            h = [pool(act(a)) for a in batch_norm(h, p["g2"], p["b2"])]
            logits = [F.linear(act(F.linear(a.flatten(1), p["fw"], p["fb"])), p["hw"], p["hb"])
                      for a in h]
            loss = sum(F.cross_entropy(o, t, reduction="sum")
                       for o, t in zip(logits, y.chunk(parts))) / BATCH
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.detach().numpy() for k, v in p.items()}

    one, two = run(1), run(2)
    return max(masstest.rel_error(two[k], v) for k, v in one.items())


def main():
    subprocess.run(["bash", os.path.join(ROOT, "examples", "data", "fetch_mnist.sh")],
                   check=True, capture_output=True)
    print("| layers | Mass, 1 vs 2 processes | Mass, 1 process, weights 1 ulp apart "
          "| PyTorch, whole batch vs 2 halves | Mass, 1 vs 2 processes, --replicas 4 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as work:
        for smooth in (False, True):
            label = "tanh, average pooling" if smooth else "ReLU, max pooling (as written)"
            processes, nudged, replicas = mass_drift(work, smooth)
            print(f"| {label} | {processes:.1e} | {nudged:.1e} | {torch_drift(smooth):.1e} | "
                  f"{replicas:.1e} |", flush=True)


if __name__ == "__main__":
    main()
