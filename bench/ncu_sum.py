#!/usr/bin/env python3
"""bench/ncu_sum.py — sums an Nsight Compute CSV of gpu__time_duration.sum (one row per kernel
launch; `ncu --metrics gpu__time_duration.sum --csv --print-units base`) per kernel name, and
prints the table largest first: total ms, share, launches, mean us. Used by bench/h200_call.sh's
"ncu" step. Usage: ncu_sum.py FILE.csv [LABEL]"""
import csv, sys, collections

def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    tot, cnt = collections.defaultdict(float), collections.Counter()
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own messages are not quoted
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0][:90]
        tot[name] += float(row["Metric Value"].replace(",", "")) * 1e-6  # ns to ms
        cnt[name] += 1
    all_ms = sum(tot.values())
    print(f"### {label}: {all_ms:.2f} ms in {sum(cnt.values())} kernel launches")
    for name, ms in sorted(tot.items(), key=lambda kv: -kv[1]):
        print(f"{ms:9.3f} {100 * ms / all_ms:5.1f}% {cnt[name]:6d} {1e3 * ms / cnt[name]:9.1f}  {name}")

if __name__ == "__main__":
    main()
