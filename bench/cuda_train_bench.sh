#!/usr/bin/env bash
# bench/cuda_train_bench.sh — llama-124m training speed of `fqt train --device cuda` per
# recipe, and the PyTorch peer (bench/torch_peer_cuda.py), in one go on a GPU machine; prints one
# table (a recipe written mxfp4@fp8 runs mxfp4 with FQT_CUDA_MXFP4=fp8: its GEMMs on the FP8
# tensor cores). Synthetic random tokens (speed only). Peak memory: the largest memory.used that
# nvidia-smi reports while the run lasts (sampled every 100 ms; includes the CUDA context),
# the same method for both. Usage: bench/cuda_train_bench.sh [STEPS] [RECIPES] [PEER_RECIPES]
# Environment: MODEL (llama-124m; llama-1b), BATCH and SEQ (16 and 1024; 8 and 2048 for
# llama-1b), ATTNS (attention paths to run, "cublas flash"; flash is the default path), FQT (the binary, ./fqt),
# TABLE_OUT (a file the table is copied to after every row), PEER_TIMEOUT (seconds, 300),
# PROFILE=1 (also one profiled run per recipe: FQT_PROFILE's per-op table into
# $BENCH_DIR/prof-RECIPE.txt; its syncs slow that run, so it is not in the table).
set -u
cd "$(dirname "$0")/.."
steps=${1:-12}
recipes=${2:-bf16 nvfp4 mxfp4 fp8}
peer=${3-bf16,nvfp4}
model=${MODEL:-llama-124m}
if [ "$model" = llama-1b ]; then batch=${BATCH:-8} seq=${SEQ:-2048}; else batch=${BATCH:-16} seq=${SEQ:-1024}; fi
fqt=${FQT:-./fqt}
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
train() { # recipe attention run-dir steps: fqt train on the GPU at the bench's shape. The run
  # is killed once its last step's metrics line is written (the final checkpoint, 13 GB for
  # llama-1b, is no part of the speed figure and would cost device time); a profiled run
  # (FQT_PROFILE set) is left to finish, since its table is written at exit.
  local r=$1 attn=$2 dir=$3 n=$4 mx=${FQT_CUDA_MXFP4:-}
  [ "${r%@fp8}" != "$r" ] && mx=fp8 # RECIPE@fp8: mxfp4 GEMMs on the FP8 tensor cores (FQT_CUDA_MXFP4=fp8)
  rm -rf "$dir"
  FQT_CUDA_ACT=bf16 FQT_CUDA_ATTN=$attn FQT_CUDA_FP8=${FQT_CUDA_FP8:-} FQT_CUDA_MXFP4=$mx "$fqt" train --device cuda \
    --model "$model" --recipe "${r%@fp8}" --batch "$batch" --seq "$seq" --steps "$n" --warmup 2 \
    --val-every 0 --val-tokens $((batch * seq)) --sample-tokens 0 --log-every 1 --gnr-every 0 --diag-every 0 --vocab '' \
    --train-data "$D/train_*.bin" --val-data "$D/val_*.bin" --run-dir "$dir" &
  local pid=$! t0=$SECONDS # $pid is fqt itself (not a timeout wrapper), so the kill below reaches it
  while kill -0 "$pid" 2>/dev/null; do
    if [ $((SECONDS - t0)) -gt 300 ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 124; fi
    local done_steps
    done_steps=$(grep -c '"train"' "$dir/metrics.jsonl" 2>/dev/null)
    if [ -z "${FQT_PROFILE:-}" ] && [ "${done_steps:-0}" -ge "$n" ]; then
      sleep 0.2; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
      # the next run's memory sampling must not see this one's memory: wait until it is gone
      local k=0
      while [ $k -lt 100 ] && nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null | grep -qw "$pid"; do
        sleep 0.1; k=$((k + 1))
      done
      return 0
    fi
    sleep 0.2
  done
  wait "$pid"
}
printf '%-22s %10s %10s %10s   (%s, batch %s x %s tokens)\n' "run" "tok/s" "ms/step" "peak MiB" "$model" "$batch" "$seq" > "$D/table"
if [ "${PROFILE:-0}" = 1 ]; then
  for r in $recipes; do
    FQT_PROFILE="$D/prof-$r.txt" train "$r" "${ATTNS%% *}" "$D/run_prof_$r" 4 > "$D/prof-$r.log" 2>&1 ||
      tail -5 "$D/prof-$r.log"
  done
fi
[ "$steps" -gt 0 ] || exit 0
for r in $recipes; do
  for attn in ${ATTNS:-cublas flash}; do
    name="fqt-$r-$attn"
    peakmem train "$r" "$attn" "$D/run_$name" "$steps" > "$D/$name.log" 2>&1
    rc=$?
    python3 - "$D/run_$name/metrics.jsonl" "$name" "$(cat "$D/peak")" "$rc" "$((batch * seq))" >> "$D/table" <<'PY'
import json, sys, statistics
path, name, peak, rc = sys.argv[1:5]
tok = int(sys.argv[5])
try:
    tr = [json.loads(l) for l in open(path) if '"train"' in l]
except OSError:
    tr = []
tps = [t["tok_per_s"] for t in tr if t.get("step", 0) > 2 and "tok_per_s" in t]
loss = tr[-1]["loss"] if tr else float("nan")
if tps:
    m = statistics.median(tps)
    print(f"{name:22s} {m:10.0f} {tok/m*1e3:10.1f} {peak:>10s}   loss {loss:.3f} steps {len(tr)}")
else:
    print(f"{name:22s} {'failed':>10s} rc={rc} (see {name}.log)")
PY
    [ -n "${TABLE_OUT:-}" ] && cp "$D/table" "$TABLE_OUT"
    [ "$rc" -ne 0 ] && tail -5 "$D/$name.log"
  done
done
if [ -n "$peer" ]; then
  PYTHONUNBUFFERED=1 peakmem timeout "${PEER_TIMEOUT:-300}" python3 bench/torch_peer_cuda.py --size "$model" --batch "$batch" \
    --steps "$steps" --warmup 3 --recipes "$peer" > "$D/peer.log" 2>&1
  python3 - "$D/peer.log" "$(cat "$D/peak")" >> "$D/table" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    if l.startswith("{"):
        j = json.loads(l)
        print(f"{'torch-' + j['recipe']:22s} {j['tokens_per_s']:10.0f} {j['ms_per_step']:10.1f} {sys.argv[2]:>10s}   "
              f"(torch max_memory_allocated {j['peak_gib']:.2f} GiB, peak MiB is the whole peer process) loss {j['loss']:.3f}")
PY
  [ -n "${TABLE_OUT:-}" ] && cp "$D/table" "$TABLE_OUT"
  tail -3 "$D/peer.log"
fi
cat "$D/table"
