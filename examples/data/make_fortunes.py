"""Builds byte-level token streams from Debian's `fortunes` package for the
language-model example (gpt.mass): examples/data/text/{train,val}.bin in
llm.c's format (a header of 256 int32: 20240520, 1, count; then count
uint16 ids), one token per byte.

Every English fortune file (/usr/share/games/fortunes, the files without an
extension), sorted by name, is read whole; the `%` lines that separate
fortunes become blank lines. The text is concatenated in that order, and
its last 10% (by bytes) is the validation stream. Idempotent; the package
comes from scripts/install-deps.sh.

usage: /usr/bin/python3 examples/data/make_fortunes.py [FORTUNE_DIR]
"""
import os
import sys

import numpy as np

MAGIC, VERSION = 20240520, 1


def fortune_files(directory):
    names = sorted(n for n in os.listdir(directory)
                   if "." not in n and os.path.isfile(os.path.join(directory, n)))
    if not names:
        sys.exit(f"make_fortunes: no fortune files in {directory}; "
                 "install the 'fortunes' package (bash scripts/install-deps.sh)")
    return [os.path.join(directory, n) for n in names]


def text_of(path):
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    return b"\n".join(b"" if line == b"%" else line for line in lines)


def write_bin(path, data):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (MAGIC, VERSION, len(data))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(np.frombuffer(data, dtype=np.uint8).astype("<u2").tobytes())
    os.replace(tmp, path)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/games/fortunes"
    if not os.path.isdir(directory):
        sys.exit(f"make_fortunes: {directory} is missing; install the 'fortunes' "
                 "package (bash scripts/install-deps.sh)")
    files = fortune_files(directory)
    text = b"".join(text_of(p) for p in files)
    split = len(text) - len(text) // 10
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "text")
    os.makedirs(out, exist_ok=True)
    write_bin(os.path.join(out, "train.bin"), text[:split])
    write_bin(os.path.join(out, "val.bin"), text[split:])
    print(f"make_fortunes: {len(files)} files, {split} train and "
          f"{len(text) - split} val bytes in {out}")


if __name__ == "__main__":
    main()
