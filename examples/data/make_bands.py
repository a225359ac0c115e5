"""Writes a small generated image set for the 32x32 RGB examples
(resnet18.mass, inception.mass): examples/data/bands/{train,val}/
{image,class}.npy. Each image is Gaussian noise with a bright horizontal
band whose channel and height encode its class (10 classes), so a model
must find where the band is and in which colour. Seeded; idempotent.

usage: /usr/bin/python3 examples/data/make_bands.py [N_TRAIN N_VAL]
"""
import os
import sys

import numpy as np


def bands(n, rng):
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = (rng.standard_normal((n, 3, 32, 32)) * 0.5).astype(np.float32)
    for i, c in enumerate(labels):
        images[i, c % 3, (c // 3) * 8:(c // 3) * 8 + 8, :] += 2.0
    return images, labels


def main():
    n_train, n_val = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (512, 128)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bands")
    rng = np.random.default_rng(4)
    for split, n in (("train", n_train), ("val", n_val)):
        images, labels = bands(n, rng)
        d = os.path.join(out, split)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "image.npy"), images)
        np.save(os.path.join(d, "class.npy"), labels)
    print(f"make_bands: {n_train} train and {n_val} val images in {out}")


if __name__ == "__main__":
    main()
