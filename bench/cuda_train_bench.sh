#!/usr/bin/env bash
# bench/cuda_train_bench.sh — llama-124m training speed of `fqt train --device cuda` per
# recipe, and the PyTorch peer (bench/torch_peer_cuda.py), in one go on a GPU machine; prints one
# table. Synthetic random tokens (speed only). Peak memory: the largest memory.used that
# nvidia-smi reports while the run lasts (sampled every 100 ms; includes the CUDA context),
# the same method for both. Usage: bench/cuda_train_bench.sh [STEPS] [RECIPES] [PEER_RECIPES]
set -u
cd "$(dirname "$0")/.."
steps=${1:-12}
recipes=${2:-bf16 nvfp4 mxfp4 fp8}
peer=${3:-bf16,nvfp4}
D=${BENCH_DIR:-/tmp/fqt_cuda_bench}
mkdir -p "$D"
python3 - "$D" <<'PY'
import struct, sys, random, array
d = sys.argv[1]
def shard(path, n, seed):
    r = random.Random(seed)
    tok = array.array('H', (r.randrange(50304) for _ in range(n)))
    hdr = [20240520, 1, n] + [0] * 253
    with open(path, 'wb') as f:
        f.write(struct.pack('<256i', *hdr)); f.write(tok.tobytes())
shard(d + '/train_000.bin', 3_000_000, 1)
shard(d + '/val_000.bin', 100_000, 2)
PY
peakmem() { # run "$@" while sampling memory.used; prints the peak MiB on fd 3
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$D/mem.log" 2>/dev/null &
  local mp=$!
  "$@"
  local rc=$?
  kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null
  sort -n "$D/mem.log" | tail -1 > "$D/peak"
  return $rc
}
printf '%-22s %10s %10s %10s\n' "run" "tok/s" "ms/step" "peak MiB" > "$D/table"
for r in $recipes; do
  for attn in ${ATTNS:-cublas flash}; do
    name="fqt-$r-$attn"
    rm -rf "$D/run_$name"
    FQT_CUDA_ACT=bf16 FQT_CUDA_ATTN=$attn FQT_CUDA_FP8=${FQT_CUDA_FP8:-} peakmem timeout 150 ./fqt train --device cuda \
      --model llama-124m --recipe "$r" --batch 16 --seq 1024 --steps "$steps" --warmup 2 \
      --val-every 0 --sample-tokens 0 --log-every 1 --gnr-every 0 --diag-every 0 --vocab '' \
      --train-data "$D/train_*.bin" --val-data "$D/val_*.bin" --run-dir "$D/run_$name" \
      > "$D/$name.log" 2>&1
    rc=$?
    python3 - "$D/run_$name/metrics.jsonl" "$name" "$(cat "$D/peak")" "$rc" >> "$D/table" <<'PY'
import json, sys, statistics
path, name, peak, rc = sys.argv[1:5]
try:
    tr = [json.loads(l) for l in open(path) if '"train"' in l]
except OSError:
    tr = []
tps = [t["tok_per_s"] for t in tr if t.get("step", 0) > 2 and "tok_per_s" in t]
loss = tr[-1]["loss"] if tr else float("nan")
if tps:
    m = statistics.median(tps)
    print(f"{name:22s} {m:10.0f} {16*1024/m*1e3:10.1f} {peak:>10s}   loss {loss:.3f} steps {len(tr)}")
else:
    print(f"{name:22s} {'failed':>10s} rc={rc} (see {name}.log)")
PY
    [ "$rc" -ne 0 ] && tail -5 "$D/$name.log"
  done
done
if [ -n "$peer" ]; then
  PYTHONUNBUFFERED=1 peakmem timeout 300 python3 bench/torch_peer_cuda.py --size llama-124m --batch 16 \
    --steps "$steps" --warmup 3 --recipes "$peer" > "$D/peer.log" 2>&1
  python3 - "$D/peer.log" "$(cat "$D/peak")" >> "$D/table" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if l.startswith("{"):
        j = json.loads(l)
        print(f"{'torch-' + j['recipe']:22s} {j['tokens_per_s']:10.0f} {j['ms_per_step']:10.1f} {sys.argv[2]:>10s}   "
              f"(torch max_memory_allocated {j['peak_gib']:.2f} GiB, peak MiB is the whole peer process) loss {j['loss']:.3f}")
PY
  tail -3 "$D/peer.log"
fi
cat "$D/table"
