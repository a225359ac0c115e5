"""Helpers for end-to-end tests: compile .mass text with massc, run the
training program, and move tensors in and out through .npy and safetensors
files (written here with numpy alone, so the oracle shares no code with the
runtime)."""
import json
import os
import struct
import subprocess
import tempfile

import numpy as np

BUILD = os.environ.get("MASS_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
MASSC = os.path.join(BUILD, "bin", "massc")
# massc's object cache: the build's own, not the user's.
os.environ.setdefault("MASS_CACHE_DIR", os.path.join(BUILD, "mass-cache"))


class Workdir:
    def __init__(self, prefix="mass-e2e-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def file(self, name):
        return os.path.join(self.path, name)


# The optimisation level of every compile: ctest runs each suite at -O0 and
# at -O3.
OPT = os.environ.get("MASS_OPT", "-O2")


def compile_model(source, work, name="model", opt=None, extra=()):
    opt = opt or OPT
    src = work.file(name + ".mass")
    with open(src, "w") as f:
        f.write(source)
    exe = work.file(name)
    subprocess.run([MASSC, src, "-o", exe, opt, *extra], check=True)
    return exe


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = {"F32": np.float32, "I32": np.int32}[info["dtype"]]
        out[name] = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=dtype).reshape(info["shape"])
    return out


def write_npy_dir(path, arrays):
    os.makedirs(path, exist_ok=True)
    for name, a in arrays.items():
        np.save(os.path.join(path, name + ".npy"), a)


def log_events(path, program=False):
    """The events a training program's --log wrote; with `program` False,
    less its "ready" and "end" events (seconds since it started, peak
    resident memory)."""
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return [e for e in events if program or e.get("event") not in ("ready", "end")]


def run(args):
    """Runs a program; a failure shows its output."""
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def dump_grads(exe, work, params, data_dir, batch, extra=()):
    init = work.file("init.safetensors")
    write_safetensors(init, params)
    out = work.file("grads.safetensors")
    subprocess.run([exe, "--init", init, "--train", data_dir, "--batch", str(batch),
                    "--dump-grads", out, *extra], check=True)
    return read_safetensors(out)


def param_shapes(exe, buffers=False):
    """Names and shapes from --dump-params: the parameters, or with
    `buffers` the buffers."""
    text = subprocess.run([exe, "--dump-params"], check=True, capture_output=True, text=True).stdout
    shapes = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith("["):
            if parts[1].rstrip().endswith("buffer") != buffers:
                continue
            shape = parts[1][1:parts[1].index("]")]
            shapes[parts[0]] = [int(d) for d in shape.split(",") if d.strip()]
    return shapes


def rel_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = max(np.linalg.norm(b), 1e-12)
    return float(np.linalg.norm(a - b) / denom)
