#!/bin/bash
# `basisnet bench --synth-reuse T`: on its fixed image every layer keeps its weights after
# the first run (layers_kept 1, synthesis about 0); without it nothing is kept; a tolerance
# outside 0 - 0.5 is refused with exit 2. At 2 threads the text output says synthesis ran
# ahead on a worker instead of printing a bandwidth.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
bin=$BUILD/basisnet
model=tests/fixtures/random-tiny.bnm
[ -x "$bin" ] || { echo "FAIL: $bin is not built"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
field() { "$PY" -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

kept=$("$bin" bench "$model" --seconds 0.05 --synth-reuse 0.01 --json 2>"$T/err" | field layers_kept) ||
    fail "bench --synth-reuse: $(cat "$T/err")"
[ "$kept" = "1.0" ] || fail "--synth-reuse 0.01 on one image: layers_kept $kept, expected 1.0"
echo "ok: --synth-reuse 0.01 keeps every layer on the fixed image"
kept=$("$bin" bench "$model" --seconds 0.05 --json 2>"$T/err" | field layers_kept) || fail "bench: $(cat "$T/err")"
[ "$kept" = "0.0" ] || fail "reuse off: layers_kept $kept, expected 0.0"
echo "ok: without --synth-reuse nothing is kept"
"$bin" bench "$model" --seconds 0.05 --synth-reuse 0.7 >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -qF -- "--synth-reuse" "$T/out" || fail "--synth-reuse 0.7: exit $rc, $(head -2 "$T/out")"
echo "ok: --synth-reuse 0.7 refused (exit 2)"
"$bin" bench "$model" --seconds 0.05 --threads 2 >"$T/out" 2>&1 || fail "bench --threads 2: $(cat "$T/out")"
grep -q '^synthesis .* by a worker ahead of the convolutions' "$T/out" || fail "--threads 2: $(grep ^synthesis "$T/out")"
grep -q 'GB/s' "$T/out" && fail "--threads 2 printed a bandwidth: $(grep GB/s "$T/out")"
echo "ok: at 2 threads synthesis is reported as waited for, not as a bandwidth"
exit 0
