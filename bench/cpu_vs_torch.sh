#!/usr/bin/env bash
# bench/cpu_vs_torch.sh — issue 12's table in one command: fqt's CPU backend against a
# PyTorch CPU peer (bench/torch_peer.py) on the same cores, side by side in one run.
#
#   bench/cpu_vs_torch.sh [--threads N] [--steps S] [--rounds R] [--main-job]
#
# Rows: fqt fp32 vs PyTorch eager FP32 (tokens/s, bench_train vs torch_peer.py), fqt nvfp4
# vs PyTorch's NVFP4 quantize-dequantize emulation, fqt nvfp4 vs fqt fp32, fqt_sgemm_nt vs
# OpenBLAS on the model's shapes at 1 and 2 threads (bench_gemm: the worst and the geometric
# mean of the shapes), the slowdown of an nvfp4 step with one busy neighbour process
# (`yes >/dev/null`) and no OMP_* variable set, and with --main-job the wall time of
# `./fqt train` with no options (about 4 minutes; needs `./fqt prepare` first).
# Needs: make, OpenBLAS (libopenblas-dev) for the GEMM row, python3-torch for the peer.
# Runs nothing else in parallel; on a shared machine every figure is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 steps=6 main_job=0 rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --main-job) main_job=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--steps S] [--rounds R] [--main-job]" >&2; exit 2 ;;
    esac
done
unset OMP_WAIT_POLICY GOMP_SPINCOUNT OMP_NUM_THREADS FQT_GEMM FQT_QUANT_ISA
make -s bench fqt >/dev/null
py=/usr/bin/python3
[ -x "$py" ] || py=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${nb:-}" ] && kill "$nb" 2>/dev/null || true' EXIT

echo "cpu_vs_torch: $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), threads=$threads steps=$steps, rounds=$rounds"
# A warm-up run (on a VM the first seconds after idle run slow), then fqt and PyTorch
# alternated for `rounds` rounds; each side's best round is the figure.
OMP_NUM_THREADS=$threads build/release/bench/bench_train 2 fp32 >/dev/null
for r in $(seq "$rounds"); do
    OMP_NUM_THREADS=$threads build/release/bench/bench_train "$steps" fp32 nvfp4 | tee -a "$tmp/fqt"
    "$py" bench/torch_peer.py --threads "$threads" --steps "$steps" fp32 nvfp4 | tee -a "$tmp/torch"
done
OMP_NUM_THREADS=2 build/release/bench/bench_gemm 5 | tee "$tmp/gemm"
# OpenBLAS 0.3.21 does not know every AVX-512 CPU (a recent Xeon gets a kernel at a fifth of
# its speed), and an environment may pin an older core type (one machine here set Haswell on
# a Zen 5): where the CPU has AVX-512 the sweep runs again with OpenBLAS's AVX-512 kernel
# unless that is the one already chosen, and each shape's ratio is the lower of the two.
blas_note=""
if [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ] && grep -qw avx512f /proc/cpuinfo; then
    OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 build/release/bench/bench_gemm 5 | tee -a "$tmp/gemm"
    blas_note=" (its kernel ${OPENBLAS_CORETYPE:+as set, $OPENBLAS_CORETYPE, }and its SkylakeX kernel, the lower ratio per shape)"
fi

# One busy neighbour: the same nvfp4 measurement with `yes` spinning on one core.
yes >/dev/null &
nb=$!
# As many rounds as the quiet figure had, best of them, so that both sides are best-of-R.
for r in $(seq "$rounds"); do
    OMP_NUM_THREADS=$threads build/release/bench/bench_train "$steps" nvfp4 | tee -a "$tmp/busy"
done
# For reference, never spinning and libgomp's active spinning under the same neighbour.
OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$threads build/release/bench/bench_train "$steps" nvfp4 | tee "$tmp/busy_passive"
OMP_WAIT_POLICY=active OMP_NUM_THREADS=$threads build/release/bench/bench_train "$steps" nvfp4 | tee "$tmp/busy_active"
kill "$nb"; wait "$nb" 2>/dev/null || true; nb=

main=""
if [ "$main_job" = 1 ]; then
    s=$(date +%s.%N)
    ./fqt train --run-dir "$tmp/main" >/dev/null 2>&1
    main=$(awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
fi

tps() { awk -v r="$2" '$1 == r && $2 ~ /^[0-9]+$/ && $2 > m {m = $2} END {print m}' "$1"; }
tpt() { awk -v r="$2" '$1 == "torch_peer" && $2 == r && $3 > m {m = $3} END {print m}' "$1"; }
f32=$(tps "$tmp/fqt" fp32) f4=$(tps "$tmp/fqt" nvfp4) b4=$(tps "$tmp/busy" nvfp4)
ba=$(tps "$tmp/busy_active" nvfp4) bp=$(tps "$tmp/busy_passive" nvfp4)
t32=$(tpt "$tmp/torch" fp32) t4=$(tpt "$tmp/torch" nvfp4)
# bench_gemm rows: shape thr fqt avx2 ref blas ratio
gemm() { awk -v t="$1" '$2 == t && $7 ~ /x$/ {r = substr($7, 1, length($7) - 1); if (!($1 in q) || r < q[$1]) q[$1] = r}
                        END {for (k in q) {n++; s += log(q[k]); if (min == "" || q[k] < min) min = q[k]}
                             if (n) printf "%.2fx worst, %.2fx geomean over %d shapes", min, exp(s / n), n; else print "n/a"}' "$tmp/gemm"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a"}'; }

echo
echo "| figure | measured | target |"
echo "| --- | --- | --- |"
echo "| fqt fp32 vs PyTorch eager FP32 ($f32 vs $t32 tokens/s) | $(ratio "$f32" "$t32") | >= 1.0x |"
echo "| fqt nvfp4 vs PyTorch NVFP4 qdq emulation ($f4 vs $t4 tokens/s) | $(ratio "$f4" "$t4") | >= 2.0x |"
echo "| fqt nvfp4 vs fqt fp32 | $(ratio "$f4" "$f32") | >= 0.8x |"
echo "| fqt_sgemm_nt vs OpenBLAS$blas_note, 1 thread | $(gemm 1) | >= 0.9x |"
echo "| fqt_sgemm_nt vs OpenBLAS$blas_note, 2 threads | $(gemm 2) | >= 0.9x |"
echo "| one busy neighbour, nvfp4 ($f4 -> $b4 tokens/s, no env var) | $(ratio "$f4" "$b4") slowdown | <= 1.5x |"
echo "| (same, OMP_WAIT_POLICY=passive: $bp tokens/s, one round) | $(ratio "$f4" "$bp") slowdown | for reference |"
echo "| (same, OMP_WAIT_POLICY=active: $ba tokens/s, one round) | $(ratio "$f4" "$ba") slowdown | for reference |"
if [ -n "$main" ]; then
    echo "| ./fqt train, no options | $(printf '%.0f' "$main") s | <= 240 s |"
fi
