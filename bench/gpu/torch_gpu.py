"""PyTorch on the GPU beside Mass's GPU programs (bench/gpu/run.sh): the
twins of specs 01, 02, 05 and 09 (bench/run.py's and bench/gpt_torch.py's
models, moved to the GPU), each training step timed in eager mode and
under torch.compile, with the batch sizes the Mass programs use; and the
device's copy bandwidth (a device-to-device copy, bytes read and written).
Prints one JSON line per figure.

usage: python3 bench/gpu/torch_gpu.py [--steps N]"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 50
dev = torch.device("cuda")


def conv_bn_relu(i, o):
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]


class Multitask(nn.Module):  # spec 05
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(*conv_bn_relu(1, 32), nn.MaxPool2d(2), *conv_bn_relu(32, 64),
                                   nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(),
                                   nn.Dropout(0.1))
        self.digit = nn.Linear(128, 10)
        self.parity = nn.Linear(128, 2)

    def forward(self, x):
        h = self.trunk(x)
        return self.digit(h), self.parity(h)


def build(kind, batch):
    """The model, its optimizer and one training step on a fixed batch."""
    if kind == "mlp":  # spec 01
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                              nn.ReLU(), nn.Linear(256, 10))
    elif kind == "cnn":  # spec 02
        model = nn.Sequential(*conv_bn_relu(1, 32), nn.MaxPool2d(2), *conv_bn_relu(32, 64),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(),
                              nn.Dropout(0.25), nn.Linear(128, 10))
    elif kind == "multitask":
        model = Multitask()
    else:  # spec 09
        from gpt_torch import GPT, T, VOCAB
        model = GPT()
    model = model.to(dev)
    if kind == "gpt":
        x = torch.randint(0, VOCAB, (batch, T), device=dev)
        y = torch.randint(0, VOCAB, (batch, T), device=dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)

        def loss_of(m):
            return F.cross_entropy(m(x).reshape(-1, VOCAB), y.reshape(-1))
        clip = 1.0
    else:
        x = torch.rand(batch, 1, 28, 28, device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)
        if kind == "cnn":
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                  weight_decay=5e-4)
            clip = 5.0

            def loss_of(m):
                return F.cross_entropy(m(x), y, label_smoothing=0.05)
        elif kind == "multitask":
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            clip = 1.0
            parity = y % 2

            def loss_of(m):
                digit, odd = m(x)
                return F.cross_entropy(digit, y) + 0.5 * F.cross_entropy(odd, parity)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            clip = None

            def loss_of(m):
                return F.cross_entropy(m(x), y)
    return model, opt, loss_of, clip


def time_steps(kind, batch, compiled):
    torch.manual_seed(0)
    model, opt, loss_of, clip = build(kind, batch)
    forward = torch.compile(model) if compiled else model

    def step():
        loss = loss_of(forward)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / STEPS


def copy_bandwidth():
    n = 1 << 28  # 1 GiB of f32
    a = torch.empty(n, device=dev)
    b = torch.empty(n, device=dev)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        b.copy_(a)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / 20
    return 2 * 4 * n / seconds / 1e9


print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
print(json.dumps({"copy_gb_s": copy_bandwidth()}))
for kind, batch in (("mlp", 128), ("cnn", 64), ("multitask", 64), ("gpt", 32)):
    for compiled in (False, True):
        try:
            ms = time_steps(kind, batch, compiled)
        except Exception as e:  # torch.compile may lack a compiler there
            print(json.dumps({"model": kind, "compiled": compiled, "error": str(e)[:200]}))
            continue
        print(json.dumps({"model": kind, "batch": batch, "compiled": compiled,
                          "step_ms": ms, "steps_per_s": 1000 / ms}), flush=True)
