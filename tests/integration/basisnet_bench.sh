#!/bin/bash
# `basisnet bench` from the outside.
# Runtime kernel dispatch: it reports the kernel set it ran; BN_CPU forces each set this CPU
# supports (their results are compared with the references in test_engine_kernels and
# test_engine_parity, which run every set); an unknown or unsupported value is refused with
# a warning naming it, and the best set runs.
# --synth-reuse T: on its fixed image every layer keeps its weights after the first run
# (layers_kept 1); without it nothing is kept; a tolerance outside 0 - 0.5 is refused with
# exit 2. At 2 threads the text output says synthesis ran ahead on a worker instead of
# printing a bandwidth.
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
kernels() { field kernels; }

best=$("$bin" bench "$model" --seconds 0.05 --json 2>"$T/err" | kernels) || fail "bench: $(cat "$T/err")"
case $best in generic|avx2|avx512) ;; *) fail "unexpected kernel set '$best'";; esac
echo "ok: default kernels on this CPU: $best"
for isa in generic avx2 avx512; do
    got=$(BN_CPU=$isa "$bin" bench "$model" --seconds 0.05 --json 2>"$T/err" | kernels) || fail "BN_CPU=$isa: $(cat "$T/err")"
    if [ "$got" = "$isa" ]; then
        echo "ok: BN_CPU=$isa runs the $isa kernels"
    else
        # only a set above what the CPU has may be refused, with a warning that says so
        [ "$got" = "$best" ] && grep -q "BN_CPU=$isa: this CPU cannot run it" "$T/err" \
            || fail "BN_CPU=$isa ran '$got' ($(cat "$T/err"))"
        echo "ok: BN_CPU=$isa refused on this CPU (runs $got)"
    fi
done
got=$(BN_CPU=sse9 "$bin" bench "$model" --seconds 0.05 --json 2>"$T/err" | kernels) || fail "BN_CPU=sse9: $(cat "$T/err")"
[ "$got" = "$best" ] || fail "BN_CPU=sse9 ran '$got', not the best set '$best'"
grep -q "BN_CPU=sse9 is not one of generic, avx2, avx512, auto" "$T/err" || fail "no warning for BN_CPU=sse9: $(cat "$T/err")"
echo "ok: BN_CPU=sse9 is refused with a warning"

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
