#!/bin/bash
# tools/train/bases_f16.py: the converted model stores every *.bases tensor as F16 (and
# nothing else), is smaller, loads, and meets the engine's 1e-4 parity against the golden
# file written beside it on every kernel set (test_engine_parity with BN_PARITY_MODEL); its
# answers on the golden inputs match the F32 model's. Bad input is refused with a message.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
src=tests/fixtures/random-tiny.bnm   # F32 bases (the shipped model's are F16 already)
[ -x "$BUILD/tests/test_engine_parity" ] || fail "$BUILD/tests/test_engine_parity is not built"

"$PY" tools/train/bases_f16.py "$src" "$T/h.bnm" >"$T/out" 2>&1 || fail "conversion: $(cat "$T/out")"
grep -Eq "(^| )([0-9]+) of \2 golden answers unchanged" "$T/out" || fail "golden answers changed: $(cat "$T/out")"
[ -s "$T/h.golden.safetensors" ] || fail "no golden file beside the output"
"$PY" - "$src" "$T/h.bnm" <<'PYEOF' || fail "tensor dtypes"
import json, struct, sys
def header(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__")
    return h, len(raw)
a, na = header(sys.argv[1]); b, nb = header(sys.argv[2])
assert set(a) == set(b), "tensor names differ"
for k in b:
    want = "F16" if k.endswith(".bases") else a[k]["dtype"]
    assert b[k]["dtype"] == want, (k, b[k]["dtype"])
    assert b[k]["shape"] == a[k]["shape"], k
assert any(k.endswith(".bases") for k in b)
assert nb < na * 0.8, (na, nb)
PYEOF
echo "ok: bases in F16, other tensors unchanged, $(stat -c %s "$src") -> $(stat -c %s "$T/h.bnm") bytes"
BN_PARITY_MODEL=$T/h.bnm BN_PARITY_GOLDEN=$T/h.golden.safetensors "$BUILD/tests/test_engine_parity" >"$T/par" 2>&1 \
    || { tail -20 "$T/par"; fail "parity of the converted model"; }
n=$(grep -c "parity $T/h.bnm" "$T/par")
[ "$n" -ge 2 ] || fail "the converted model's parity did not run ($n lines)"
echo "ok: parity within 1e-4 on $n kernel-set/thread runs"
# bad input
"$PY" tools/train/bases_f16.py "$src" "$src" >"$T/e1" 2>&1 && fail "IN == OUT accepted"
grep -q "OUT must differ" "$T/e1" || fail "IN == OUT: $(cat "$T/e1")"
printf 'not a model' >"$T/bad.bnm"
"$PY" tools/train/bases_f16.py "$T/bad.bnm" "$T/o.bnm" >"$T/e2" 2>&1 && fail "garbage accepted"
grep -q "bad.bnm" "$T/e2" || fail "garbage: message does not name the file: $(cat "$T/e2")"
[ ! -e "$T/o.bnm" ] || fail "output written for a bad input"
echo "ok: refusals name the problem"
