#!/usr/bin/env python3
"""Writes a paper-scale BasisNet-MobileNetV3 model with random weights (for benchmarks):
specialist MobileNetV3-Large-like at 224x224 RGB, 1000 classes, whose inverted-residual
convolutions (expand, depthwise, project) are synthesized from N=8 bases; lightweight
model MobileNetV3-Small-like at 128x128 (bilinear from the normalized 224 image) whose
1024-wide hidden layer also feeds the L*N coefficients. Follows docs/model-format.md.

    /usr/bin/python3 bench/engine/make_mnv3.py OUT.bnm [--bases 8] [--f16-bases] [--golden K]
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bnm  # noqa: E402

# (kernel, expansion, out, SE, act, stride) -- Howard et al., "Searching for MobileNetV3", tables 1-2
LARGE = [(3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
         (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
         (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
         (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
         (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1)]
SMALL = [(3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
         (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
         (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
         (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1)]


def make_div(v, d=8):
    return max(d, int(v + d / 2) // d * d)


class Builder:
    def __init__(self, rng, prefix, in_ch, num_bases, synth):
        self.rng, self.P, self.N, self.synth = rng, prefix, num_bases, synth
        self.layers, self.tensors, self.synth_names = [], {}, []
        self.c = in_ch

    def _w(self, shape, fan_in):
        return (self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)

    def conv(self, name, out, k, s, groups, act, synth=False, split=False):
        cin = self.c
        shape = (out, cin // groups, k, k)
        fan = cin // groups * k * k
        L = {"name": name, "op": "conv2d", "in": cin, "out": out, "kernel": [k, k], "stride": [s, s],
             "padding": [k // 2, k // 2], "groups": groups, "act": act, "synth": synth}
        if synth:
            self.tensors[name + ".bases"] = self._w((self.N,) + shape, fan)
            self.synth_names.append(name)
        else:
            self.tensors[name + ".weight"] = self._w(shape, fan)
        self.tensors[name + ".bias"] = (self.rng.standard_normal(out) * 0.01).astype(np.float32)
        self.layers.append(L)
        self.c = out
        return name

    def se(self, name, sq):
        c = self.c
        self.tensors[name + ".fc1.weight"] = self._w((sq, c), c)
        # biases random, not constant: identical tensors become ONNX Identity nodes that
        # OpenCV DNN 4.6 rejects
        self.tensors[name + ".fc1.bias"] = (self.rng.standard_normal(sq) * 0.01).astype(np.float32)
        self.tensors[name + ".fc2.weight"] = self._w((c, sq), sq)
        self.tensors[name + ".fc2.bias"] = (3.0 + self.rng.standard_normal(c) * 0.01).astype(np.float32)  # gate near 1
        self.layers.append({"name": name, "op": "se", "channels": c, "squeeze": sq, "act": "relu",
                            "gate": "hsigmoid"})

    def linear(self, name, out, act, input_name=None):
        cin = self.c
        L = {"name": name, "op": "linear", "in": cin, "out": out, "act": act, "synth": False}
        if input_name:
            L["input"] = input_name
        self.tensors[name + ".weight"] = self._w((out, cin), cin)
        self.tensors[name + ".bias"] = (self.rng.standard_normal(out) * 0.01).astype(np.float32)
        self.layers.append(L)
        self.c = out
        return name

    def mobilenet(self, blocks, last, hidden, classes):
        P = self.P
        prev = self.conv(P + ".stem", 16, 3, 2, 1, "hswish")
        for i, (k, e, o, se, act, s) in enumerate(blocks):
            b, cin = "%s.b%d" % (P, i), self.c
            if e != cin:
                self.conv(b + ".exp", e, 1, 1, 1, act, self.synth)
            self.conv(b + ".dw", e, k, s, e, act, self.synth)
            if se:
                self.se(b + ".se", make_div(e / 4))
            self.conv(b + ".proj", o, 1, 1, 1, "none", self.synth)
            if s == 1 and cin == o:
                self.layers.append({"name": b + ".add", "op": "add", "inputs": [prev, b + ".proj"], "act": "none"})
                prev = b + ".add"
            else:
                prev = b + ".proj"
        self.conv(P + ".last", last, 1, 1, 1, "hswish")
        self.layers.append({"name": P + ".gap", "op": "gap"})
        hid = self.linear(P + ".head", hidden, "hswish")
        self.linear(P + ".fc", classes, "none")
        return hid


def build(num_bases=8, seed=1):
    rng = np.random.default_rng(seed)
    spec = Builder(rng, "s", 3, num_bases, True)
    spec.mobilenet(LARGE, 960, 1280, 1000)
    L = len(spec.synth_names)
    light = Builder(rng, "l", 3, num_bases, False)
    hid = light.mobilenet(SMALL, 576, 1024, 1000)
    light.c = 1024
    light.linear("l.coef", L * num_bases, "none", input_name=hid)
    # coefficients near zero: alpha close to uniform, as at the start of training
    light.tensors["l.coef.weight"] *= 0.1
    doc = {
        "format_version": 1, "name": "bench-mnv3-large-basisnet-n%d" % num_bases,
        "labels": ["class%d" % i for i in range(1000)],
        "input": {"channels": 3, "height": 224, "width": 224, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225],
                  "light": {"height": 128, "width": 128, "resize": "bilinear"}},
        "num_bases": num_bases,
        "light": {"layers": light.layers, "logits": "l.fc", "coeffs": "l.coef"},
        "specialist": {"layers": spec.layers, "logits": "s.fc"},
        "synth_layers": spec.synth_names,
        "train": {"command": "bench/engine/make_mnv3.py (random weights)", "seed": seed},
    }
    tensors = dict(light.tensors)
    tensors.update(spec.tensors)
    return doc, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--bases", type=int, default=8)
    ap.add_argument("--f16-bases", action="store_true")
    ap.add_argument("--golden", type=int, default=0, help="also write OUT.golden.safetensors with K inputs")
    a = ap.parse_args()
    doc, tensors = build(a.bases)
    if a.f16_bases:  # the golden vectors then come from the half-precision bases too
        tensors = {k: (v.astype(np.float16) if k.endswith(".bases") else v) for k, v in tensors.items()}
    if a.golden:
        rng = np.random.default_rng(7)
        imgs = rng.integers(0, 256, (a.golden, 224, 224, 3), dtype=np.uint8)
        bnm.write_bnm(a.out.replace(".bnm", "") + ".golden.safetensors", None, bnm.golden(doc, tensors, imgs))
    bnm.write_bnm(a.out, doc, tensors)
    print("wrote %s (%.1f MB, %d synthesized layers, N=%d)" % (a.out, os.path.getsize(a.out) / 1e6,
                                                               len(doc["synth_layers"]), a.bases))


if __name__ == "__main__":
    main()
