#!/usr/bin/python3
"""Writes the seeds of fuzz_model (tests/fuzz/corpus/fuzz_model/): small models, so that one
execution costs little and most of the fuzzer's time goes to header variants.

- mini.bnm: the architecture of tests/fixtures/random-tiny.bnm (every op the loader knows:
  conv, depthwise 3x3/5x5 at strides 1/2, squeeze-excite, residual add, act, max/avg pool,
  gap, linear, 7 synthesized layers) with 1-4 channels, an 8x8 input and 2 bases: 9 KB
  instead of 52 KB; mini-f16.bnm: the same with F16 bases; mini-wide.bnm: random-tiny's
  channel counts (the kernels' 16- and 32-lane paths) at 16x16 with 2 bases; micro.bnm: a
  3-layer model (2 KB).
- refusals derived from mini (each for its own reason): truncated data, a missing tensor,
  two tensors overlapping, a tensor of the wrong shape, an unknown op.
Weights are random (seeded); the files are not meant to classify anything.

  /usr/bin/python3 tests/fuzz/make_model_seeds.py [OUT_DIR]
"""
import json
import os
import sys
from collections import OrderedDict

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
from basisnet_train import bnm  # noqa: E402 - the one .bnm codec

CH = {1: 1, 8: 2, 12: 3, 16: 4, 24: 4, 32: 4}  # random-tiny's channel counts -> mini's
WIDE = {c: c for c in CH}                       # mini-wide: random-tiny's own (16/32-lane paths)
N = 2


def mini_arch(name="mini", size=8):
    h, _ = bnm.split(open(os.path.join(ROOT, "tests/fixtures/random-tiny.bnm"), "rb").read())
    a = json.loads(h["__metadata__"][bnm.ARCH_KEY], object_pairs_hook=OrderedDict)
    a["name"], a["labels"], a["num_bases"] = name, ["a", "b"], N
    a["input"].update(height=size, width=size)
    a["input"]["light"].update(height=size // 2, width=size // 2)
    a["calibration"]["val_light_confidence"] = a["calibration"]["val_light_confidence"][::32]
    a["train"] = OrderedDict(command="tests/fuzz/make_model_seeds.py", seed=3, epochs=0)
    a.pop("madds", None)
    return a


def tensors_for(a, rng, half, CH=CH):
    n_synth = len(a["synth_layers"])
    t = OrderedDict()
    for stage in ("light", "specialist"):
        for ly in a[stage]["layers"]:
            if ly["op"] == "conv2d":
                ly["in"], ly["out"] = CH[ly["in"]], CH[ly["out"]]
                if ly["groups"] > 1:
                    ly["groups"] = ly["in"]
                shape = (ly["out"], ly["in"] // ly["groups"]) + tuple(ly["kernel"])
            elif ly["op"] == "linear":
                ly["in"] = CH.get(ly["in"], ly["in"])
                name = ly["name"]
                ly["out"] = 2 if name.endswith(".fc") else n_synth * N if name.endswith(".coef") else CH[ly["out"]]
                shape = (ly["out"], ly["in"])
            elif ly["op"] == "se":
                ly["channels"], ly["squeeze"] = CH[ly["channels"]], max(1, ly["squeeze"] // 4)
                c, s = ly["channels"], ly["squeeze"]
                for k, shp in (("fc1.weight", (s, c)), ("fc1.bias", (s,)), ("fc2.weight", (c, s)),
                               ("fc2.bias", (c,))):
                    t[ly["name"] + "." + k] = rng.standard_normal(shp)
                continue
            else:
                continue
            key = ".bases" if ly["synth"] else ".weight"
            t[ly["name"] + key] = rng.standard_normal(((N,) if ly["synth"] else ()) + shape)
            t[ly["name"] + ".bias"] = rng.standard_normal(ly["out"])
    return OrderedDict((k, v.astype(np.float16 if half and k.endswith(".bases") else np.float32))
                       for k, v in t.items())


def micro():
    a = OrderedDict(format_version=1, name="micro", labels=["a", "b"],
                    input=OrderedDict(channels=1, height=8, width=8, mean=[0.5], std=[0.25],
                                      light=OrderedDict(height=4, width=4, resize="avgpool")),
                    num_bases=N)
    a["light"] = OrderedDict(layers=[
        {"name": "l.gap", "op": "gap"},
        {"name": "l.fc", "op": "linear", "in": 1, "out": 2, "act": "none", "synth": False},
        {"name": "l.coef", "op": "linear", "in": 1, "out": 2, "act": "none", "synth": False, "input": "l.gap"}],
        logits="l.fc", coeffs="l.coef")
    a["specialist"] = OrderedDict(layers=[
        {"name": "s.c0", "op": "conv2d", "in": 1, "out": 4, "kernel": [3, 3], "stride": [2, 2],
         "padding": [1, 1], "groups": 1, "act": "relu", "synth": True},
        {"name": "s.gap", "op": "gap"},
        {"name": "s.fc", "op": "linear", "in": 4, "out": 2, "act": "none", "synth": False}],
        logits="s.fc")
    a["synth_layers"] = ["s.c0"]
    r = np.random.default_rng(1)
    shapes = {"l.fc.weight": (2, 1), "l.fc.bias": (2,), "l.coef.weight": (2, 1), "l.coef.bias": (2,),
              "s.c0.bases": (N, 4, 1, 3, 3), "s.c0.bias": (4,), "s.fc.weight": (2, 4), "s.fc.bias": (2,)}
    return a, OrderedDict((k, r.standard_normal(s).astype(np.float32)) for k, s in shapes.items())


def write(path, arch, tensors):
    bnm.write(path, tensors, {bnm.ARCH_KEY: json.dumps(arch, separators=(",", ":"))})


def refusal(src, dst, edit):
    h, d = bnm.split(open(src, "rb").read(), src)
    h, d = edit(h, bytearray(d))
    meta = h["__metadata__"]
    meta.pop(bnm.CHECKSUM_KEY, None)
    bnm.set_checksum(meta, bytes(d))
    open(dst, "wb").write(bnm.pack(h, d))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fuzz/corpus/fuzz_model")
    os.makedirs(out, exist_ok=True)
    for name, half, ch, size in (("mini.bnm", False, CH, 8), ("mini-f16.bnm", True, CH, 8),
                                 ("mini-wide.bnm", False, WIDE, 16)):
        a = mini_arch(name[:-4], size)
        t = tensors_for(a, np.random.default_rng(3), half, ch)
        write(os.path.join(out, name), a, t)
    write(os.path.join(out, "micro.bnm"), *micro())
    mini = os.path.join(out, "mini.bnm")

    def arch(fn):
        def edit(h, d):
            a = json.loads(h["__metadata__"][bnm.ARCH_KEY], object_pairs_hook=OrderedDict)
            fn(a)
            h["__metadata__"][bnm.ARCH_KEY] = json.dumps(a, separators=(",", ":"))
            return h, d
        return edit

    def unknown_op(a):
        a["specialist"]["layers"][2]["op"] = "conv3d"

    cases = {
        "mini-truncated.bnm": lambda h, d: (h, d[:len(d) // 2]),
        "mini-missing-tensor.bnm": lambda h, d: (h.pop("s.b2.se.fc2.bias"), (h, d))[1],
        "mini-overlap.bnm": lambda h, d: (h["s.stem.bias"].update(data_offsets=h["l.c0.bias"]["data_offsets"]), (h, d))[1],
        "mini-wrong-shape.bnm": lambda h, d: (h["s.fc.bias"].update(shape=[1, 2]), (h, d))[1],
        "mini-unknown-op.bnm": arch(unknown_op),
    }
    for name, edit in cases.items():
        refusal(mini, os.path.join(out, name), edit)
    print("make_model_seeds: wrote %d seeds to %s" % (4 + len(cases), out))


if __name__ == "__main__":
    main()
