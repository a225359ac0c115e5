"""Compares the losses two training runs logged (bench/gpu/run.sh: the CPU
build and the GPU build of one spec, same data, seed and steps): every
loss of every logged event, within a relative tolerance. Prints one line
and exits 1 on a difference.

usage: python3 bench/gpu/compare.py CPU.jsonl GPU.jsonl [TOLERANCE]"""
import json
import sys


def losses(path):
    """Every loss the log at `path` holds, in order, with where it was
    logged: [("event 3 loss", 0.52), ...]."""
    out = []
    with open(path) as f:
        for i, line in enumerate(f):
            event = json.loads(line)
            for key, value in event.items():
                if "loss" in key and isinstance(value, (int, float)):
                    out.append((f"event {i + 1} {key}", float(value)))
    return out


def main():
    try:
        cpu, gpu = losses(sys.argv[1]), losses(sys.argv[2])
    except OSError as e:
        print(f"NOT RUN: {e.filename} is missing")
        sys.exit(1)
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
    if not cpu or [k for k, _ in cpu] != [k for k, _ in gpu]:
        print(f"DIFFER: the logs hold different losses ({len(cpu)} and {len(gpu)})")
        sys.exit(1)
    worst = max(abs(a - b) / max(abs(a), 1e-12) for (_, a), (_, b) in zip(cpu, gpu))
    last = cpu[-1]
    verdict = "AGREE" if worst <= tolerance else "DIFFER"
    print(f"{verdict}: {len(cpu)} losses, largest relative difference {worst:.2e} "
          f"(tolerance {tolerance:g}); last {last[0]}: CPU {last[1]:.6f}, GPU {gpu[-1][1]:.6f}")
    sys.exit(0 if verdict == "AGREE" else 1)


if __name__ == "__main__":
    main()
