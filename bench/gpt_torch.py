"""The PyTorch twin of examples/gpt.mass (spec 09), trained on the same
fortunes streams (examples/data/make_fortunes.py) with the same settings:
windows of 64 bytes (labels shifted by one) in a shuffled order, batch 32,
AdamW (lr 1e-3, betas (0.9, 0.95), weight decay 0.1 on every parameter),
cosine schedule (100 warm-up steps, min_lr 1e-4) over the steps, gradient
clipping at 1.0. The model: token and position embeddings N(0, 0.02), four
pre-norm blocks of nn.MultiheadAttention (6 heads, causal mask) and a
tanh-GELU MLP (PyTorch's default initialisation), a final layer norm and an
output layer tied to the token embedding.

Prints the validation loss (nats per byte, the mean over all validation
windows) every `--val-every` steps and at the end, and the mean time per
training step.

usage: /usr/bin/python3 bench/gpt_torch.py [--steps N] [--val-every N]
       [--threads N] [--seed N]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
T, DIM, HEADS, BLOCKS, VOCAB, BATCH = 64, 192, 6, 4, 256, 32


def read_bin(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        assert header[0] == 20240520 and header[1] == 1, path
        ids = np.frombuffer(f.read(), dtype="<u2")
    assert len(ids) == header[2], path
    return ids.astype(np.int64)


def windows(ids):
    n = (len(ids) - 1) // T
    x = np.stack([ids[i * T:i * T + T] for i in range(n)])
    y = np.stack([ids[i * T + 1:i * T + T + 1] for i in range(n)])
    return torch.from_numpy(x), torch.from_numpy(y)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.ln2 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * DIM, DIM))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, DIM)
        nn.init.normal_(self.wte.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(T, DIM) * 0.02)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.lnf = nn.LayerNorm(DIM)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, ids):
        x = self.wte(ids) + self.pos
        for b in self.blocks:
            x = b(x, self.mask)
        return F.linear(self.lnf(x), self.wte.weight)


def lr_at(step, steps, lr=1e-3, warmup=100, min_lr=1e-4):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def evaluate(model, x, y):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            logits = model(x[i:i + 256])
            total += F.cross_entropy(logits.reshape(-1, VOCAB), y[i:i + 256].reshape(-1),
                                     reduction="sum").item()
            count += y[i:i + 256].numel()
    model.train()
    return total / count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = os.path.join(ROOT, "examples", "data", "text")
    tx, ty = windows(read_bin(os.path.join(text, "train.bin")))
    vx, vy = windows(read_bin(os.path.join(text, "val.bin")))
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(args.seed)
    order, pos = rng.permutation(len(tx)), 0
    seconds = 0.0
    for step in range(args.steps):
        if pos + BATCH > len(order):
            order, pos = rng.permutation(len(tx)), 0
        rows = torch.from_numpy(order[pos:pos + BATCH])
        pos += BATCH
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps)
        start = time.perf_counter()
        loss = F.cross_entropy(model(tx[rows]).reshape(-1, VOCAB), ty[rows].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds += time.perf_counter() - start
        if (step + 1) % args.val_every == 0 or step + 1 == args.steps:
            print(json.dumps({"step": step + 1, "train_loss": round(loss.item(), 4),
                              "val_loss": round(evaluate(model, vx, vy), 4),
                              "ms_per_step": round(1000 * seconds / (step + 1), 1)}), flush=True)


if __name__ == "__main__":
    main()
