"""The GPU benchmark's data, generated with a fixed seed (bench/gpu/run.sh
trains on it; the losses, not the accuracy, are what it compares):
MNIST-shaped images whose label sets a bright 7x7 patch, with a parity
label (every fourth missing, -1, as spec 05 allows), and a byte stream
for the GPT, text with repeats to learn.

usage: /usr/bin/python3 bench/gpu/make_data.py OUT"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "data"))
from make_fortunes import write_bin  # noqa: E402

OUT = sys.argv[1]


def images(rows, rng):
    digit = rng.integers(0, 10, rows).astype(np.int32)
    image = rng.random((rows, 1, 28, 28), dtype=np.float32) * 0.5
    for i, d in enumerate(digit):
        r, c = divmod(int(d), 4)
        image[i, 0, 7 * r:7 * r + 7, 7 * c:7 * c + 7] += 0.5
    parity = (digit % 2).astype(np.int32)
    parity[::4] = -1
    return {"image": image, "digit": digit, "parity": parity}


rng = np.random.default_rng(7)
for name, rows in (("train", 4096), ("val", 512)):
    d = os.path.join(OUT, "data", "mnist", name)
    os.makedirs(d, exist_ok=True)
    for key, value in images(rows, rng).items():
        np.save(os.path.join(d, key + ".npy"), value)
words = [b"the", b"cat", b"sat", b"on", b"a", b"mat", b"and", b"dog", b"ran"]
text = b" ".join(words[i] for i in rng.integers(0, len(words), 60000))
os.makedirs(os.path.join(OUT, "data", "text"), exist_ok=True)
write_bin(os.path.join(OUT, "data", "text", "train.bin"), text[:-20000])
write_bin(os.path.join(OUT, "data", "text", "val.bin"), text[-20000:])
print(f"make_data: 4096 + 512 images, {len(text)} bytes of text in {OUT}/data")
