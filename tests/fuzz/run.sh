#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [NAME...] — run each libFuzzer harness of build/fuzz (make fuzz)
# for SECONDS, one after another, on one thread, with its corpus in build/fuzz/corpus/NAME
# (seeded from tests/fuzz/seeds/NAME) and crash files in build/fuzz/crashes/NAME. Prints one
# summary line per harness: seconds, executions, crashes.
set -u
secs=${1:?usage: tests/fuzz/run.sh SECONDS [NAME...]}; shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(json safetensors shard vocab recipe metrics)
for n in "${names[@]}"; do
    bin=build/fuzz/fuzz_$n
    [ -x "$bin" ] || { echo "$n: $bin missing (make fuzz)"; continue; }
    corpus=build/fuzz/corpus/$n; crashes=build/fuzz/crashes/$n
    mkdir -p "$corpus" "$crashes"
    [ -d tests/fuzz/seeds/$n ] && cp -n tests/fuzz/seeds/$n/* "$corpus"/ 2>/dev/null
    start=$(date +%s)
    OMP_NUM_THREADS=1 "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$crashes/" "$corpus" >build/fuzz/$n.log 2>&1
    rc=$?
    end=$(date +%s)
    execs=$(grep -oE 'Done [0-9]+ runs' build/fuzz/$n.log | grep -oE '[0-9]+' | tail -n 1)
    ncrash=$(ls "$crashes" | wc -l)
    echo "$n: $((end - start)) s, ${execs:-?} executions, exit $rc, $ncrash crash files"
done
