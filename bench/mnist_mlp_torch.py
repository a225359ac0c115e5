"""PyTorch twin of examples/mnist_mlp.mass (spec 01): the same model, Adam
(lr 1e-3), batch 128, shuffled each epoch, on the same .npy data. Prints the
training samples/s of each epoch (validation excluded) and the validation
accuracy, in the format of Mass's training programs.

usage: /usr/bin/python3 bench/mnist_mlp_torch.py DATA_DIR [EPOCHS] [THREADS]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openblas  # noqa: E402

threads = sys.argv[3] if len(sys.argv) > 3 else None
if threads:
    # PyTorch 1.13 here calls OpenBLAS, which ignores torch.set_num_threads.
    os.environ.update(openblas.torch_env(threads))
elif openblas.best_core():
    os.environ.update(openblas.kernel_env(openblas.best_core()))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if threads:
    torch.set_num_threads(int(threads))


def load(split):
    d = os.path.join(sys.argv[1], split)
    return (torch.tensor(np.load(os.path.join(d, "image.npy"))),
            torch.tensor(np.load(os.path.join(d, "digit.npy")).astype(np.int64)))


def main():
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = load("train")
    xv, yv = load("val")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            accuracy = (model(xv).argmax(1) == yv).float().mean().item()
        print(f"epoch {epoch}/{epochs}  val: accuracy {accuracy:.4f}  {seconds:.2f}s "
              f"({len(x) / seconds:.0f} samples/s)")


if __name__ == "__main__":
    main()
