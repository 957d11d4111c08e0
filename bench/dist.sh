#!/usr/bin/env bash
# bench/dist.sh — data-parallel figures on this machine (docs/DIST.md): tokens/s of 2 ranks x 1
# thread against 1 rank x 2 threads at the same global batch, and optimizer (AdamW moment)
# memory per rank for P = 1, 2, 4, with --model small. Figures are noisy on a shared machine.
#   usage: bench/dist.sh [STEPS]   (needs ./fqt built with MPI, and the default corpus or
#                                   FQT_BENCH_DATA=DIR with train_*.bin/val_*.bin)
set -euo pipefail
steps=${1:-4}
data=${FQT_BENCH_DATA:-data/sotu}
mpi="mpirun --oversubscribe --allow-run-as-root --mca btl self,vader"
common="--model small --train-data $data/train_*.bin --val-data $data/val_*.bin --vocab '' --batch 4 --seq 128 --steps $steps --warmup 1 --gnr-every 0 --diag-every 0 --val-every 0 --val-tokens 512 --sample-tokens 0 --log-every 1"
tmp=$(mktemp -d)
rate() { grep -o '"tok_per_s":[0-9.]*' "$1/metrics.jsonl" | tail -n +2 | cut -d: -f2 | awk '{s+=$1;n++} END {printf "%.0f", n ? s/n : 0}'; }
export OMP_WAIT_POLICY=passive
OMP_NUM_THREADS=2 ./fqt train $common --grad-accum 2 --run-dir "$tmp/p1" 2>"$tmp/p1.log"
OMP_NUM_THREADS=1 $mpi -np 2 ./fqt train $common --grad-accum 1 --run-dir "$tmp/p2" 2>"$tmp/p2.log"
echo "tokens/s (mean over steps 2..$steps, global batch 8 x 128):"
echo "  1 rank x 2 threads, grad-accum 2: $(rate "$tmp/p1")"
echo "  2 ranks x 1 thread, grad-accum 1: $(rate "$tmp/p2")"
n=$(grep -o '[0-9]* params' "$tmp/p1.log" | head -1 | cut -d' ' -f1)
echo "optimizer memory per rank (AdamW m and v, float32; shards at 4096-element chunks): $n parameters"
for P in 1 2 4; do
    awk -v n="$n" -v P="$P" 'BEGIN {u = int((n + 4095) / 4096); m = 0; for (r = 0; r < P; r++) {b = int(u * r / P) * 4096; e = int(u * (r + 1) / P) * 4096; if (e > n) e = n; if (e - b > m) m = e - b}; printf "  P=%d: %.2f MiB\n", P, m * 8 / 1048576}'
done
rm -rf "$tmp"
