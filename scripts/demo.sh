#!/usr/bin/env bash
# The FP4-vs-BF16 demo: trains the tiny default model on the State of the Union corpus with
# six recipes on the same tokens (same seed, same data order), then prints the comparison
# table, writes the SVG plot and compares the nvfp4 and bf16 models' next-token
# distributions. Run from the project root (make demo). Environment: DEMO_STEPS (default
# 200, about 400k tokens per run, to stay under 20 minutes on 2 cores), DEMO_DIR (default
# runs/demo), DEMO_ARGS (more `fqt train` options for every run: a larger model on the GPU,
# say "--device cuda --model small --batch 32 --seq 512"), FQT (the binary, default ./fqt).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DEMO_DIR:-runs/demo}
steps=${DEMO_STEPS:-200}
fqt=${FQT:-./fqt}
extra=()
[ -n "$steps" ] && extra+=(--steps "$steps")
# shellcheck disable=SC2206
extra+=(${DEMO_ARGS:-})
device=()
for ((i = 0; i < ${#extra[@]}; i++)); do [ "${extra[i]}" = --device ] && device=(--device "${extra[i + 1]}"); done

start=$(date +%s)
"$fqt" prepare
mkdir -p "$dir"
# name | recipe and options
runs=(
  "bf16|--recipe bf16"
  "nvfp4|--recipe nvfp4"
  "nvfp4-qaf|--recipe nvfp4 --qaf-frac 0.15"
  "nvfp4-rtn|--recipe nvfp4-rtn"
  "mxfp4|--recipe mxfp4"
  "fp8|--recipe fp8"
)
names=()
for r in "${runs[@]}"; do
  name=${r%%|*}
  opts=${r#*|}
  names+=("$dir/$name")
  echo "=== $name ($opts)"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$fqt" train $opts --name "$name" --run-dir "$dir/$name" --sample-tokens 0 "${extra[@]}"
  echo "=== $name took $(( $(date +%s) - t0 )) s"
done
echo
"$fqt" report --out "$dir/report.svg" "${names[@]}"
echo
"$fqt" eval "${device[@]}" --ckpt "$dir/bf16" --ckpt "$dir/nvfp4"
"$fqt" eval "${device[@]}" --ckpt "$dir/bf16" --ckpt "$dir/nvfp4-qaf"
echo
echo "demo finished in $(( $(date +%s) - start )) s; plot: $dir/report.svg"
