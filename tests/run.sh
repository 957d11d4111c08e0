#!/usr/bin/env bash
# Runs every test binary given on the command line, sums their "N passed, N failed"
# lines and ends with the total line. Exits non-zero if any binary failed or crashed.
#
# FQT_TEST_RUNNER (make test TEST_RUNNER=...): a command each binary runs under, e.g.
# "qemu-aarch64 -L /usr/aarch64-linux-gnu" for a cross-compiled build; FQT_BIN then becomes
# a wrapper that runs the CLI under it too (the CLI tests start it through the shell).
set -u
total_pass=0; total_fail=0; bad=0
runner=${FQT_TEST_RUNNER:-}
if [ -n "$runner" ] && [ -n "${FQT_BIN:-}" ]; then
    wrap_dir=$(mktemp -d)
    trap 'rm -rf "$wrap_dir"' EXIT
    # the runner's program by absolute path: CLI tests run it with PATH narrowed to fakes
    prog=${runner%% *}; rest=${runner#"$prog"}
    prog_abs=$(command -v "$prog") || { echo "run.sh: runner $prog not found" >&2; exit 1; }
    printf '#!/bin/sh\nexec %s%s %s "$@"\n' "$prog_abs" "$rest" "$FQT_BIN" > "$wrap_dir/fqt"
    chmod +x "$wrap_dir/fqt"
    export FQT_BIN="$wrap_dir/fqt"
fi
for t in "$@"; do
    name=$(basename "$t")
    out=$($runner "$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20
        echo "  $name: crashed or printed no result line (exit $rc)"
        total_fail=$((total_fail + 1)); bad=1; continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 40
        echo "  $name: FAILED ($line, exit $rc)"; bad=1
    else
        skip=$(printf '%s\n' "$out" | grep -E '^SKIP' | head -n 3)
        [ -n "$skip" ] && printf '%s\n' "$skip"
        echo "  $name: $line"
    fi
done
echo "$total_pass passed, $total_fail failed"
[ "$bad" -eq 0 ]
