#!/usr/bin/env bash
# bench/dist.sh — data-parallel figures on this machine (docs/DIST.md): tokens/s of 2 ranks x 1
# thread against 1 rank x 2 threads at the same global batch, the communication time per step
# ("comm_s" of the 2-rank run's train rows), and the AdamW moment memory each rank allocates
# for P = 1, 2, 4 (the run's own start-up line: its largest ZeRO-1 shard), with --model small.
# Figures are noisy on a shared machine.
#   usage: bench/dist.sh [STEPS]   (needs ./fqt built with MPI; data: FQT_BENCH_DATA=DIR with
#                                   train_*.bin/val_*.bin, else data/sotu when prepared, else
#                                   synthetic shards of 4096 token ids made here with python3)
set -euo pipefail
steps=${1:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=${FQT_BENCH_DATA:-data/sotu}
if ! ls "$data"/train_*.bin >/dev/null 2>&1; then
    data="$tmp/data"
    mkdir -p "$data"
    python3 - "$data" <<'PY'
import struct, random, sys
d = sys.argv[1]
rng = random.Random(7)
for name, n in (("train_000.bin", 400000), ("val_000.bin", 20000)):
    toks, t = [], 0
    for _ in range(n):
        t = rng.randrange(4096) if rng.random() < 0.2 else (t * 5 + 3) % 4096
        toks.append(t)
    with open(f"{d}/{name}", "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
        f.write(struct.pack(f"<{n}H", *toks))
PY
    echo "data: synthetic shards (4096 token ids) in $data"
else
    echo "data: $data"
fi
mpi="mpirun --oversubscribe --allow-run-as-root --mca btl self,vader"
common=(--model small --train-data "$data/train_*.bin" --val-data "$data/val_*.bin" --vocab '' --batch 4
        --seq 128 --steps "$steps" --warmup 1 --gnr-every 0 --diag-every 0 --val-every 0 --val-tokens 512
        --sample-tokens 0 --log-every 1)
mean() { grep -o "\"$2\":[0-9.e-]*" "$1/metrics.jsonl" | tail -n +2 | cut -d: -f2 | awk '{s+=$1;n++} END {printf "%.4g", n ? s/n : 0}'; }
export OMP_WAIT_POLICY=passive
OMP_NUM_THREADS=2 ./fqt train "${common[@]}" --grad-accum 2 --run-dir "$tmp/p1" 2>"$tmp/p1.log"
OMP_NUM_THREADS=1 $mpi -np 2 ./fqt train "${common[@]}" --grad-accum 1 --run-dir "$tmp/p2" 2>"$tmp/p2.log"
echo "tokens/s (mean over steps 2..$steps, global batch 8 x 128 tokens):"
echo "  1 rank x 2 threads, grad-accum 2: $(mean "$tmp/p1" tok_per_s)"
echo "  2 ranks x 1 thread, grad-accum 1: $(mean "$tmp/p2" tok_per_s)"
echo "communication per step, 2 ranks (comm_s, mean over steps 2..$steps): $(mean "$tmp/p2" comm_s) s"
n=$(grep -o '[0-9]* params' "$tmp/p1.log" | head -1 | cut -d' ' -f1)
echo "AdamW moments per rank (m and v, float32; $n parameters):"
awk -v n="$n" 'BEGIN {printf "  P=1: %.2f MiB\n", n * 8 / 1048576}'
echo "  P=2: $(grep -o 'at most [0-9]* parameters ([0-9.]* MiB)' "$tmp/p2.log" | grep -o '[0-9.]* MiB')"
OMP_NUM_THREADS=1 $mpi -np 4 ./fqt train "${common[@]}" --steps 1 --grad-accum 1 --run-dir "$tmp/p4" 2>"$tmp/p4.log"
echo "  P=4: $(grep -o 'at most [0-9]* parameters ([0-9.]* MiB)' "$tmp/p4.log" | grep -o '[0-9.]* MiB')"
