#!/usr/bin/env python3
"""Compile time of every spec model: massc to a linked binary at -O0 and
-O3, cold (--no-cache) and from the object cache (an unchanged model
compiled again), best of a few runs, with massc's --time-passes split of
the cold -O3 compile into its stages.

    /usr/bin/python3 bench/compile.py            # about ten minutes
    /usr/bin/python3 bench/compile.py --quick    # one run each, specs 01 and 03
    /usr/bin/python3 bench/compile.py --baseline DIR  # and DIR/bin/massc's cold times

--baseline DIR adds the cold compile of another build's massc (a copy of
build/ from an earlier commit, its runtime in DIR/lib), timed in the same
run: a before-and-after column.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MASSC = os.path.join(ROOT, "build", "bin", "massc")
SPEC = os.path.join(ROOT, "test", "lit", "spec", "fixtures")
QUICK = "--quick" in sys.argv
RUNS = 1 if QUICK else 3
BASELINE = (os.path.join(sys.argv[sys.argv.index("--baseline") + 1], "bin", "massc")
            if "--baseline" in sys.argv else None)
# LLVM's stages: optimisation and code generation, one after the other
# (-j 1) or together on every thread, each thread optimising and compiling
# its parts of the module.
LLVM_STAGES = ("LLVM optimisation", "LLVM code generation",
               "LLVM optimisation and code generation")


def seconds(args, env, massc=MASSC):
    start = time.perf_counter()
    subprocess.run([massc, *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def stages(args, env):
    """The cold compile's --time-passes report: LLVM's stages, and the rest
    (frontend and MLIR passes) together."""
    report = subprocess.run([MASSC, *args, "--time-passes"], check=True, env=env,
                            capture_output=True, text=True).stderr
    times = {}
    for line in report.splitlines():
        # Wall time is the last column (user time comes first when threads
        # ran); top-level stages are indented by two spaces.
        m = re.match(r"^ +(?:[0-9.]+ +\( *[0-9.]+%\) +)?([0-9.]+) +\( *[0-9.]+%\)  (\S.*)$",
                     line)
        if m:
            times.setdefault(m.group(2), float(m.group(1)))
    total = times.get("Total", 0.0)
    llvm = sum(times.get(s, 0.0) for s in LLVM_STAGES)
    link = times.get("link", 0.0)
    return total - llvm - link, llvm, link


def main():
    work = tempfile.mkdtemp(prefix="mass-compile-")
    env = dict(os.environ, MASS_CACHE_DIR=os.path.join(work, "cache"))
    specs = sorted(f for f in os.listdir(SPEC) if f.endswith(".mass"))
    if QUICK:
        specs = [s for s in specs if s.startswith(("01", "03"))]
    print(f"{os.cpu_count()} cores; best of {RUNS} runs, seconds\n")
    if BASELINE:
        print(f"Baseline: {BASELINE}\n")
    print("| model | level | cold | cached | frontend + MLIR | LLVM (optimisation and code generation) | link |"
          + (" baseline cold |" if BASELINE else ""))
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if BASELINE else ""))
    for spec in specs:
        for level in ("-O0", "-O3"):
            args = [os.path.join(SPEC, spec), level, "-o", os.path.join(work, "model")]
            cold = min(seconds(args + ["--no-cache"], env) for _ in range(RUNS))
            seconds(args, env)  # fills the cache
            cached = min(seconds(args, env) for _ in range(RUNS))
            rest, llvm, link = stages(args + ["--no-cache"], env)
            row = (f"| {spec} | {level} | {cold:.2f} | {cached:.2f} | {rest:.2f} | {llvm:.2f} | "
                   f"{link:.2f} |")
            if BASELINE:
                base = min(seconds(args + ["--no-cache"], env, BASELINE) for _ in range(RUNS))
                row += f" {base:.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
