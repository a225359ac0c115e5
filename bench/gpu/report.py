"""The GPU benchmark's table (bench/gpu/run.sh's results folder in,
Markdown out, for bench/README.md).

usage: python3 bench/gpu/report.py RESULTS"""
import json
import os
import sys

RESULTS = sys.argv[1]
SPECS = (("01_mlp", "mlp"), ("02_cnn", "cnn"), ("05_multitask", "multitask"), ("09_gpt", "gpt"))


def bench(name):
    try:
        with open(os.path.join(RESULTS, name)) as f:
            for line in f:
                if line.startswith("benchmark "):
                    return json.loads(line[len("benchmark "):])
    except OSError:
        pass
    return None


torch = {}
copy = None
try:
    with open(os.path.join(RESULTS, "torch.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "copy_gb_s" in row:
                copy = row["copy_gb_s"]
            elif "step_ms" in row:
                torch[(row["model"], row["compiled"])] = row["step_ms"]
except OSError:
    pass
summary = open(os.path.join(RESULTS, "summary.txt")).read().splitlines()
print("| model | losses, CPU vs GPU build (50 steps) | Mass GPU steps/s | PyTorch eager | "
      "torch.compile | Mass / eager | Mass / compile |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for spec, kind in SPECS:
    agree = next((l.split("losses: ", 1)[1] for l in summary if l.startswith(spec + " losses")),
                 "not run")
    ours = bench(spec + ".bench.out")
    mass = 1000 / ours["train_step_ms"] if ours else None
    eager, compiled = torch.get((kind, False)), torch.get((kind, True))

    def rate(ms):
        return f"{1000 / ms:.0f}" if ms else "n/a"

    def ratio(ms):
        return f"{mass * ms / 1000:.2f}" if mass and ms else "n/a"
    print(f"| spec {spec} (batch {ours['batch'] if ours else '?'}) | {agree} | "
          f"{f'{mass:.0f}' if mass else 'n/a'} | {rate(eager)} | {rate(compiled)} | "
          f"{ratio(eager)} | {ratio(compiled)} |")
stream = bench("stream.out")
if stream:
    gb_s = 4096 * 4096 * 4 / (stream["forward_ms"] / 1000) / 1e9
    share = f", {gb_s / copy * 100:.1f}% of the copy bandwidth ({copy:.0f} GB/s)" if copy else ""
    print(f"\nGenerated kernels: the stream model's forward pass reads 64 MiB in "
          f"{stream['forward_ms']:.3f} ms: {gb_s:.0f} GB/s{share}.")
