#!/bin/bash
# Runtime kernel dispatch from the outside: `basisnet bench` reports the kernel set it ran;
# BN_CPU forces each set this CPU supports (their results are compared with the references
# in test_engine_kernels and test_engine_parity, which run every set); an
# unknown or unsupported value is refused with a warning naming it, and the best set runs.
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
kernels() { "$PY" -c "import json, sys; print(json.load(sys.stdin)['kernels'])"; }

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
