#!/usr/bin/env bash
# The one .bnm codec (tools/train/basisnet_train/bnm.py, docs/model-format.md): tensors of
# every dtype survive write -> read in both header layouts; the shipped model and the
# random fixture decode (checksum right, tensor set = the architecture's) and re-encode to
# the same bytes; damaged files are refused naming the file; the bench writer's file
# reads back. About 3 s.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d /tmp/bn-codec.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$ROOT"
"$PY" - "$T" <<'PY'
import os, sys
from collections import OrderedDict
import numpy as np
sys.path.insert(0, "tools/train")
sys.path.insert(0, "bench/engine")
from basisnet_train import bnm
T = sys.argv[1]
n = 0


def ok(msg):
    global n
    n += 1
    print("ok   - " + msg)


def expected_tensors(arch):
    names = set()
    for stage in ("light", "specialist"):
        for L in arch[stage]["layers"]:
            if L["op"] in ("conv2d", "linear"):
                names |= {L["name"] + (".bases" if L["synth"] else ".weight"), L["name"] + ".bias"}
            elif L["op"] == "se":
                names |= {"%s.fc%d.%s" % (L["name"], i, w) for i in (1, 2) for w in ("weight", "bias")}
    return names


# 1. round trip: every dtype, both layouts, metadata first or last
rng = np.random.default_rng(1)
tensors = OrderedDict([
    ("a.weight", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)),
    ("a.bases", rng.standard_normal((4, 3, 2, 1, 1)).astype(np.float16)),
    ("input", rng.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)),
    ("b.bias", np.array([1.5], dtype=np.float32))])
meta = OrderedDict(basisnet='{"format_version": 1, "name": "t\u00e9st"}', note="x")
for compact in (True, False):
    for last in (False, True):
        p = os.path.join(T, "rt-%d%d.bnm" % (compact, last))
        bnm.write(p, tensors, meta, compact=compact, metadata_last=last)
        raw = open(p, "rb").read()
        (hlen,) = np.frombuffer(raw[:8], "<u8")
        assert hlen % 8 == 0, "header length %d not padded to 8" % hlen
        m, t = bnm.read(p)
        assert list(t) == list(tensors), (list(t), list(tensors))
        for k, v in tensors.items():
            assert t[k].dtype == v.dtype and t[k].shape == v.shape and np.array_equal(t[k], v), k
        assert m["basisnet"] == meta["basisnet"] and m["note"] == "x"
        h, d = bnm.split(raw, p)
        assert m[bnm.CHECKSUM_KEY] == bnm.data_crc32(d), "checksum of the data section"
        assert bnm.architecture(m)["name"] == "t\u00e9st"
        assert bnm.encode(t, meta, compact, last) == raw, "re-encoding changed the bytes"
        assert not os.path.exists(p + ".tmp")
ok("round trip F32/F16/U8, compact and spaced headers, metadata first and last")

for bad, why in ((np.array([np.nan], np.float32), "NaN/Inf"), (np.zeros((0, 2), np.float32), "bad shape"),
                 (np.zeros(2, np.float64), "unsupported dtype")):
    try:
        bnm.encode({"x": bad})
        sys.exit("FAIL - encode accepted a tensor with %s" % why)
    except bnm.FormatError as e:
        assert why in str(e), e
ok("encode refuses NaN, an empty dimension and float64")

# 2. the shipped model and the random fixture: decode, checksum, tensor set, same bytes
for f in ("models/fmnist-basisnet.bnm", "tests/fixtures/random-tiny.bnm"):
    raw = open(f, "rb").read()
    m, t = bnm.read(f)
    arch = bnm.architecture(m)
    assert arch["format_version"] == 1 and len(arch["labels"]) >= 2, f
    h, d = bnm.split(raw, f)
    want, got = bnm.check_checksum(m, d)
    assert want == got, "%s: data_crc32 %s, data hashes to %s" % (f, want, got)
    assert set(t) == expected_tensors(arch), f
    assert all((v.dtype == np.float32 or (k.endswith(".bases") and v.dtype == np.float16))
               and np.all(np.isfinite(v)) for k, v in t.items()), f
    rest = OrderedDict((k, v) for k, v in m.items() if k != bnm.CHECKSUM_KEY)
    assert bnm.encode(t, rest) == raw, "%s: re-encoding changed the bytes" % f
    assert bnm.pack(h, d) == raw, f
    ok("%s: %d tensors as its architecture names, checksum %s, re-encodes to the same %d bytes"
       % (f, len(t), got, len(raw)))

# 3. damaged files are refused, naming the file and what is wrong
fx = "tests/fixtures/bad-models/"
refused = {"short.bnm": "too short", "header-length.bnm": "bad header length",
           "bad-json.bnm": "not JSON", "not-object.bnm": "not a JSON object",
           "truncated.bnm": "bad data_offsets", "bad-dtype.bnm": "unknown dtype",
           "size-mismatch.bnm": "bad data_offsets", "overlap.bnm": "overlap"}
for name, why in sorted(refused.items()):
    try:
        bnm.read(fx + name)
        sys.exit("FAIL - the codec read %s" % name)
    except bnm.FormatError as e:
        assert name in str(e) and why in str(e), (name, str(e))
m, t = bnm.read(fx + "ok-f16-bases.bnm")
assert any(v.dtype == np.float16 for k, v in t.items() if k.endswith(".bases"))
m, t = bnm.read(fx + "ok-no-checksum.bnm")
assert bnm.CHECKSUM_KEY not in m
ok("%d damaged files refused with file and reason; the F16 and no-checksum variants read"
   % len(refused))

# 4. the bench writer (spaced header, metadata last) reads back through the codec
import bnm as bench_bnm
doc = {"format_version": 1, "name": "bench"}
p = os.path.join(T, "bench.bnm")
bench_bnm.write_bnm(p, doc, tensors)
d2, t2 = bench_bnm.read_bnm(p)
assert d2 == doc and all(np.array_equal(t2[k], v) for k, v in tensors.items())
raw = open(p, "rb").read()
assert raw.rstrip(b"\0").find(b'"__metadata__": {"data_crc32": "') > 0
ok("bench/engine/bnm.py write_bnm -> read_bnm round trip")
print("%d passed, 0 failed" % n)
PY
