"""Every FileCheck prefix a lit test uses must have at least one positive
check line (PREFIX:, -NEXT, -SAME, -DAG, -LABEL, -EMPTY, -COUNT-n): a prefix
with only -NOT lines passes on empty output, so it checks nothing.

usage: python3 check_prefixes.py DIR   (exit 1 and a line per offender)"""
import os
import re
import sys

RUN = re.compile(r"RUN:(.*)")
PREFIX_OPTION = re.compile(r"--check-prefix(?:es)?[= ]([A-Za-z0-9_,-]+)")


def prefixes_of(run_lines):
    """The prefixes each FileCheck invocation in the RUN lines uses."""
    found = set()
    command = " ".join(run_lines)
    for part in command.split("|"):
        if "FileCheck" not in part:
            continue
        options = PREFIX_OPTION.findall(part)
        if not options:
            found.add("CHECK")
        for option in options:
            found.update(p for p in option.split(",") if p)
    return found


def offenders(path):
    with open(path, errors="replace") as f:
        text = f.read()
    runs = [m.group(1).rstrip("\\ ") for m in RUN.finditer(text)]
    missing = []
    for prefix in sorted(prefixes_of(runs)):
        positive = re.compile(r"(?<![A-Za-z0-9_-])" + re.escape(prefix) +
                              r"(?:-NEXT|-SAME|-DAG|-LABEL|-EMPTY|-COUNT-\d+)?:")
        if not positive.search(text):
            missing.append(prefix)
    return missing


def main():
    root = sys.argv[1]
    bad = []
    checked = 0
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith((".mlir", ".test", ".mass", ".ll")):
                continue
            path = os.path.join(folder, name)
            missing = offenders(path)
            checked += 1
            for prefix in missing:
                bad.append(f"{os.path.relpath(path, root)}: prefix {prefix} has no positive check line")
    for line in bad:
        print(line)
    print(f"{checked} files, {len(bad)} prefixes without a positive check")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
