#!/usr/bin/env python3
"""Runs the frontend's libFuzzer target (mass-fuzz) for a short while.

Usage: fuzz_smoke.py MASS_FUZZ SECONDS [WORK_DIR]

Seeds: every .mass file in the repository (examples, the spec fixtures,
the lit tests). First each file in regressions/ (inputs that once crashed,
hung or asserted) runs once; then the fuzzer mutates the seeds for SECONDS.
Any crash, sanitizer report, leak, timeout (10 s per input) or memory blow-up
fails the test, and libFuzzer leaves the input as crash-*/timeout-*/leak-* in
WORK_DIR: add it to regressions/ with the fix.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def seeds():
    for top in ("examples", "test"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "Output"]
            for name in filenames:
                if name.endswith(".mass"):
                    yield os.path.join(dirpath, name)


def main():
    fuzzer, seconds = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    work = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="mass-fuzz-")
    os.makedirs(work, exist_ok=True)
    limits = ["-timeout=10", "-rss_limit_mb=4096", "-max_len=65536"]

    regressions = sorted(
        os.path.join(HERE, "regressions", f)
        for f in os.listdir(os.path.join(HERE, "regressions")))
    print(f"fuzz_smoke: {len(regressions)} regression inputs", flush=True)
    subprocess.run([fuzzer] + limits + regressions, check=True, cwd=work)

    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus, exist_ok=True)
    count = 0
    for i, path in enumerate(seeds()):
        shutil.copy(path, os.path.join(corpus, f"{i:04d}-{os.path.basename(path)}"))
        count += 1
    print(f"fuzz_smoke: {count} seed files, fuzzing for {seconds} s", flush=True)
    subprocess.run([fuzzer] + limits + [f"-max_total_time={seconds}",
                    "-print_final_stats=1", corpus], check=True, cwd=work)
    print("fuzz_smoke: no crash, hang or leak")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        print(f"fuzz_smoke: the fuzzer failed (exit {e.returncode}); see "
              "the crash-*/timeout-*/leak-* file it names", file=sys.stderr)
        sys.exit(1)
