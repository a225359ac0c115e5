"""Assembles each kernel module of `massc --emit=ptx` output with ptxas.

usage: assemble_ptx.py PTXAS ARCH < massc-output
Prints how many modules ptxas assembled; exits 1 when there are none or
when ptxas rejects one (its message goes to stderr).
"""
import os
import subprocess
import sys
import tempfile

ptxas, arch = sys.argv[1], sys.argv[2]
modules, current = [], None
for line in sys.stdin:
    if line.startswith("// ----- kernel module "):
        current = []
        modules.append((line.split()[-1], current))
    elif current is not None:
        current.append(line)
if not modules:
    sys.exit("no kernel modules in the input")
with tempfile.TemporaryDirectory() as work:
    for name, lines in modules:
        ptx = os.path.join(work, name + ".ptx")
        with open(ptx, "w") as f:
            f.writelines(lines)
        run = subprocess.run([ptxas, f"-arch={arch}", ptx, "-o", ptx + ".cubin"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(f"ptxas rejects {name}:\n{run.stderr}")
            sys.exit(1)
print(f"{len(modules)} kernel modules assembled for {arch}")
