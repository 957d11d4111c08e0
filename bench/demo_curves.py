#!/usr/bin/env python3
"""bench/demo_curves.py RUN_DIR... — the curves of a demo's runs as text tables: validation
loss per evaluation step and the gradient-to-noise ratio of the quantized linears ("quantized":
all linear weights whose GEMMs are quantized; "all" for bf16, whose GEMMs are not) per check,
one column per run, from each run's metrics.jsonl. For device calls, whose plots come back as
files but are easier read as numbers."""
import json
import os
import sys


def load(run):
    val, gnr = {}, {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if m.get("kind") == "val":
                val[m["step"]] = m["val_loss"]
            elif m.get("kind") == "gnr" and m.get("layer") in ("quantized", "all"):
                # the quantized linears where there are any, else all of them
                if m["layer"] == "quantized" or m["step"] not in gnr:
                    gnr[m["step"]] = m["r"]
    return val, gnr


def table(title, runs, series, fmt):
    steps = sorted(set().union(*(s.keys() for s in series)))
    names = [os.path.basename(os.path.normpath(r)) for r in runs]
    print(title)
    print("| step | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    for st in steps:
        print(f"| {st} | " + " | ".join(fmt % s[st] if st in s else "" for s in series) + " |")
    print()


def main():
    runs = sys.argv[1:]
    if not runs:
        sys.exit("usage: demo_curves.py RUN_DIR...")
    data = [load(r) for r in runs]
    table("validation loss", runs, [d[0] for d in data], "%.4f")
    table("gradient-to-noise ratio (quantized linears; bf16: all)", runs, [d[1] for d in data], "%.3g")


if __name__ == "__main__":
    main()
