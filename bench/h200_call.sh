#!/usr/bin/env bash
# bench/h200_call.sh — one device call's worth of GPU work: the CUDA tests, the kernel bench,
# the per-op profile of a training step and the training-speed table against the PyTorch peer.
#
# Runs binaries built beforehand on the development machine (the device call has minutes,
# nvcc on two cores takes longer), from BIN (default .gpu/bin):
#   make BUILD=build/gpu NATIVE=0 USE_MPI=no USE_NCCL=no CUDA_ARCHS=90a build/gpu/fqt \
#     build/gpu/tests/cuda/test_cuda_backend build/gpu/tests/cuda/test_cuda_train \
#     build/gpu/tests/test_backend build/gpu/bench/cuda/bench_cuda_kernels
# then copies them into BIN. Logs go to $OUT (the device tool's folder) or /tmp/h200, eight files
# at most (what the tool brings back); progress goes to stdout as it happens. Knobs: RECIPES,
# PEER, RECIPES1B, PEER1B, PROF_RECIPES (what each stage runs). Steps
# to run: STEPS="tests train train1b kernels profile" (default: all, in this order); also
# "ncu", "identity" (IDENT_OLD=baseline binary), "sanitize" and "demo" (scripts/demo.sh on the
# GPU: DEMO_MODEL, DEMO_STEPS, DEMO_BATCH, DEMO_SEQ; needs data/sotu prepared and carried),
# on request. Each part has its own
# timeout, so one hang does not take the others down.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-.gpu/bin}
O=${OUT:-/tmp/h200}
mkdir -p "$O"
lib=$(dirname "$(find / -xdev -name 'libcublasLt.so.13*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.used --format=csv | tee "$O/gpu.txt"
want() { case " ${STEPS:-tests train train1b kernels profile} " in *" $1 "*) return 0;; esac; return 1; }
t0=$(date +%s)
stamp() { echo "== $1 at +$(( $(date +%s) - t0 )) s"; }
if want tests; then
  stamp tests
  t() { # name command...: one test binary, its log appended to tests.log, its last line printed
    local name=$1; shift
    echo "### $name" >> "$O/tests.log"
    timeout "${TEST_TIMEOUT:-150}" "$@" > "$O/t.log" 2>&1; local rc=$?
    cat "$O/t.log" >> "$O/tests.log"
    echo "$name rc=$rc $(tail -1 "$O/t.log")"; grep FAIL "$O/t.log" | head -5
  }
  t test_cuda_backend "$BIN/test_cuda_backend"
  t "test_backend (FQT_BACKEND=cuda)" env FQT_BACKEND=cuda "$BIN/test_backend"
  t test_cuda_train env FQT_SRC="$PWD" FQT_BIN="$PWD/$BIN/fqt" "$BIN/test_cuda_train"
  t "test_cuda_train (FQT_CUDA_ACT=f32)" env FQT_CUDA_ACT=f32 FQT_SRC="$PWD" FQT_BIN="$PWD/$BIN/fqt" "$BIN/test_cuda_train"
  rm -f "$O/t.log"
fi
export FQT=$PWD/$BIN/fqt BENCH_DIR=/tmp/fqt_cuda_bench
if want train; then
  stamp train
  # the peer's own limit (PEER_TIMEOUT) below the stage's, so a slow peer still leaves its rows
  TABLE_OUT=$O/table124m.txt ATTNS=${ATTNS:-flash} PEER_TIMEOUT=${PEER_TIMEOUT:-200} timeout "${TRAIN_TIMEOUT:-420}" bench/cuda_train_bench.sh 12 \
    "${RECIPES:-bf16 nvfp4 mxfp4 fp8 mxfp4@fp8}" "${PEER:-bf16,nvfp4}" > "$O/train124m.log" 2>&1
  cat "$O/table124m.txt"
fi
if want train1b; then
  stamp train1b
  TABLE_OUT=$O/table1b.txt MODEL=llama-1b ATTNS=${ATTNS:-flash} PEER_TIMEOUT=${PEER_TIMEOUT:-200} BENCH_DIR=/tmp/fqt_cuda_bench1b timeout "${TRAIN_TIMEOUT:-420}" \
    bench/cuda_train_bench.sh 6 "${RECIPES1B:-bf16 nvfp4 mxfp4 mxfp4@fp8}" "${PEER1B:-bf16}" > "$O/train1b.log" 2>&1
  cat "$O/table1b.txt"
fi
if want kernels; then
  stamp kernels
  timeout 120 "$BIN/bench_cuda_kernels" > "$O/kernels.txt" 2>&1; echo "bench_cuda_kernels rc=$?"
fi
if want profile; then
  stamp profile
  PROFILE=1 ATTNS=${PROF_ATTN:-flash} timeout 200 bench/cuda_train_bench.sh 0 "${PROF_RECIPES:-bf16 nvfp4 mxfp4 fp8}" "" > /dev/null 2>&1
  for f in "$BENCH_DIR"/prof-*.txt; do
    [ -f "$f" ] || continue
    { echo "### $(basename "$f")"; cat "$f"; } >> "$O/profile.txt"
    echo "--- $(basename "$f"): $(head -1 "$f")"; sed -n '/# per op/,$p' "$f" | head -8
  done
fi
if want ncu; then
  stamp ncu
  [ "${NCU_QUANT:-1}" = 1 ] && FQT_BENCH_ONLY=quant FQT_BENCH_REPS=1 timeout 150 ncu --clock-control none -k regex:qz_ \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
    --section MemoryWorkloadAnalysis "$BIN/bench_cuda_kernels" > "$O/ncu_quant.txt" 2>&1
  echo "ncu quantizers rc=$? $(grep -c 'qz_' "$O/ncu_quant.txt") kernel lines"
  bench/cuda_train_bench.sh 0 "" "" > /dev/null 2>&1 # the synthetic shards only
  for r in ${NCU_RECIPES:-bf16 nvfp4}; do
    rm -rf /tmp/ncu_run
    timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      --log-file "/tmp/ncu_$r.csv" "$FQT" train --device cuda --model llama-124m --recipe "$r" --batch 16 \
      --seq 1024 --steps 2 --warmup 1 --val-every 0 --val-tokens 16384 --sample-tokens 0 --log-every 1 \
      --gnr-every 0 --diag-every 0 --vocab '' --train-data "$BENCH_DIR/train_*.bin" \
      --val-data "$BENCH_DIR/val_*.bin" --run-dir /tmp/ncu_run > /tmp/ncu_$r.log 2>&1
    echo "ncu step $r rc=$?"
    python3 bench/ncu_sum.py "/tmp/ncu_$r.csv" "$r" >> "$O/ncu_step.txt"
    tail -4 /tmp/ncu_$r.log >> "$O/ncu_step.txt"
  done
  head -30 "$O/ncu_step.txt"
fi
if want identity; then
  # IDENT_OLD: a baseline fqt binary (say the last commit's); three llama-124m steps with it and
  # with BIN's, same data and seed; the losses and the checkpoint's model file must be the same
  # bytes wherever a change claims to keep the bits (one line per recipe of IDENT_RECIPES)
  stamp identity
  bench/cuda_train_bench.sh 0 "" "" > /dev/null 2>&1 # the synthetic shards only
  for r in ${IDENT_RECIPES:-nvfp4 mxfp4 fp8}; do
    for v in old new; do
      b=$FQT; [ $v = old ] && b=${IDENT_OLD:?IDENT_OLD: the baseline fqt binary}
      rm -rf /tmp/id_$v
      timeout 90 "$b" train --device cuda --model llama-124m --recipe "$r" --batch 16 --seq 1024 --steps 3 \
        --warmup 1 --val-every 0 --val-tokens 16384 --sample-tokens 0 --log-every 1 --gnr-every 0 --diag-every 0 \
        --vocab '' --train-data "$BENCH_DIR/train_*.bin" --val-data "$BENCH_DIR/val_*.bin" --run-dir /tmp/id_$v \
        > /tmp/id_$v.log 2>&1
      grep -o '"loss":[^,]*' /tmp/id_$v/metrics.jsonl > /tmp/id_$v.loss 2>/dev/null
    done
    if [ -s /tmp/id_new.loss ] && cmp -s /tmp/id_old.loss /tmp/id_new.loss && \
       cmp -s /tmp/id_old/ckpt/model.safetensors /tmp/id_new/ckpt/model.safetensors; then
      echo "identity $r: losses and model file identical" | tee -a "$O/identity.txt"
    else
      echo "identity $r: DIFFER" | tee -a "$O/identity.txt"; paste /tmp/id_old.loss /tmp/id_new.loss | tee -a "$O/identity.txt"
    fi
  done
fi
if want sanitize; then
  stamp sanitize
  # memcheck over the whole suite; racecheck (far slower) section by section with bf16
  # activations, each under its own limit, so one slow section leaves the others' verdicts
  for tool in ${SAN_TOOLS:-memcheck racecheck}; do
    groups=all
    [ "$tool" = racecheck ] && groups=${RACE_SECTIONS:-quantize qgemm,mx_expand elementwise embedding attention xent hadamard}
    for g in $groups; do
      echo "### $tool $g" >> "$O/sanitize.txt"
      sec=$g act=bf16 lim=${RACE_TIMEOUT:-60}
      case $g in all) sec= act= lim=${SAN_TIMEOUT:-200};; *qgemm*) act=f32;; esac # qgemm: f32 only
      if [ "$tool" = racecheck ] && [ "$g" = quantize ]; then
        # the quantizers: one process per format in parallel, the quick case set (whole and
        # partial tiles, finite and non-finite inputs)
        for f in ${RACE_FORMATS:-nvfp4 mxfp4 fp8 fp8-w bf16}; do
          (FQT_TEST_SECTIONS=quantize FQT_TEST_ACT=bf16 FQT_TEST_QUICK=1 FQT_TEST_FORMATS=$f timeout "$lim" \
            compute-sanitizer --tool racecheck --print-limit 20 "$BIN/test_cuda_backend" > /tmp/san_$f.log 2>&1
           echo "rc=$?" >> /tmp/san_$f.log) &
        done
        wait
        for f in ${RACE_FORMATS:-nvfp4 mxfp4 fp8 fp8-w bf16}; do
          echo "racecheck quantize $f: $(grep -c 'Race reported\|Hazard' /tmp/san_$f.log) hazard lines; $(grep 'RACECHECK SUMMARY\|rc=' /tmp/san_$f.log | tr '\n' ' ')"
          grep -v "^ok\|^  ok" /tmp/san_$f.log | tail -20 >> "$O/sanitize.txt"
        done
        continue
      fi
      FQT_TEST_SECTIONS=$sec FQT_TEST_ACT=$act timeout "$lim" \
        compute-sanitizer --tool "$tool" --print-limit 20 "$BIN/test_cuda_backend" > /tmp/san.log 2>&1
      echo "$tool $g rc=$?: $(grep -c 'Race reported\|Error\|Hazard' /tmp/san.log) hazard lines; $(tail -1 /tmp/san.log)"
      grep -v "^ok\|^  ok" /tmp/san.log | tail -40 >> "$O/sanitize.txt"
    done
  done
fi
if want demo; then
  # the FP4-vs-BF16 demo at a size where its effects can show: the same six runs on the same
  # tokens, the report table and plot, eval KL against bf16, the curves as text
  stamp demo
  FQT=$PWD/$BIN/fqt DEMO_DIR=/tmp/gpu_demo DEMO_STEPS=${DEMO_STEPS:-800} DEMO_ARGS="--device cuda \
    --model ${DEMO_MODEL:-small} --batch ${DEMO_BATCH:-32} --seq ${DEMO_SEQ:-512} --warmup 50 --val-every 100 \
    --val-tokens 65536 --gnr-every 50 --diag-every 0 --ckpt-minutes 0" timeout "${DEMO_TIMEOUT:-480}" \
    bash scripts/demo.sh > "$O/demo.log" 2>&1
  echo "demo rc=$?"
  cp /tmp/gpu_demo/report.svg "$O/demo_report.svg" 2>/dev/null
  python3 bench/demo_curves.py /tmp/gpu_demo/{bf16,nvfp4,nvfp4-qaf,nvfp4-rtn,mxfp4,fp8} > "$O/demo_curves.txt" 2>&1
  grep -A9 '^run ' "$O/demo.log"; grep 'KL\|took' "$O/demo.log"; cat "$O/demo_curves.txt"
fi
stamp done
